//! SessionHub: which sockets are connected to which conversation, and the non-blocking hand-off of
//! frames to them (the `Delivery` port for the web channel).
//!
//! Overload policy: each socket has a bounded queue. A preview (`delta`) that does not fit is
//! dropped; anything durable that does not fit disconnects that socket (its queue is closed), and
//! the client resumes from its last seq. No conversation ever waits for a socket.
//!
//! Frames are encoded once, here, and shared by every session that gets them: a socket's queue
//! holds pointers to text (an idle socket's queue costs a few hundred bytes, not kilobytes).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use dashmap::DashMap;
use tokio::sync::Notify;
use twin_engine::ports::{Delivery, Outbound, Recipient};
use twin_engine::{ConversationId, SessionId};

/// Frames a socket may have queued before previews are dropped and durable frames disconnect it.
pub const SESSION_QUEUE: usize = 128;

pub struct SessionHub {
    sessions: DashMap<ConversationId, Vec<(SessionId, Arc<SessionQueue>)>>,
    next: AtomicU64,
}

/// One encoded text frame of the chat protocol.
pub type Frame = Arc<str>;

/// One socket's bounded queue of frames. The hub pushes without waiting; the socket's task pops.
/// (A tokio channel would do the same but allocates a 32-slot block per socket up front; this
/// allocates nothing until a frame arrives, which matters with many idle sockets.)
#[derive(Default)]
pub struct SessionQueue {
    state: Mutex<QueueState>,
    ready: Notify,
}

#[derive(Default)]
struct QueueState {
    frames: VecDeque<Frame>,
    closed: bool,
}

enum Push {
    Queued,
    Full,
    Closed,
}

impl SessionQueue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // The lock is never held across a panic point that could leave the queue inconsistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, frame: Frame) -> Push {
        let mut state = self.lock();
        if state.closed {
            return Push::Closed;
        }
        if state.frames.len() >= SESSION_QUEUE {
            return Push::Full;
        }
        state.frames.push_back(frame);
        drop(state);
        self.ready.notify_one();
        Push::Queued
    }

    /// No more frames will be queued; what is queued is still handed out first.
    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    /// The next frame, or `None` once the queue is closed and empty. Cancel-safe: a frame is only
    /// taken out of the queue when it is returned.
    pub async fn recv(&self) -> Option<Frame> {
        loop {
            {
                let mut state = self.lock();
                if let Some(frame) = state.frames.pop_front() {
                    return Some(frame);
                }
                if state.closed {
                    return None;
                }
            }
            // A push between the check above and this wait leaves a permit: no wake-up is lost.
            self.ready.notified().await;
        }
    }
}

impl Default for SessionHub {
    fn default() -> Self {
        // A random start: in a cluster a frame names its session, and the sessions of different
        // nodes must not share ids (two counters from random 64-bit starts do not meet).
        Self { sessions: DashMap::new(), next: AtomicU64::new(rand::random::<u64>() >> 1) }
    }
}

impl SessionHub {
    pub fn new() -> Self {
        Self::default()
    }

    /// Connects a socket to a conversation. Its queue ends (`None`) if the socket fell behind.
    pub fn register(&self, conversation: ConversationId) -> (SessionId, Arc<SessionQueue>) {
        let id = SessionId(self.next.fetch_add(1, Ordering::Relaxed));
        let queue = Arc::new(SessionQueue::default());
        self.sessions.entry(conversation).or_default().push((id, queue.clone()));
        (id, queue)
    }

    pub fn unregister(&self, conversation: ConversationId, session: SessionId) {
        if let Some(mut sessions) = self.sessions.get_mut(&conversation) {
            sessions.retain(|(id, _)| *id != session);
        }
        self.sessions.remove_if(&conversation, |_, sessions| sessions.is_empty());
    }

    pub fn connected(&self) -> usize {
        self.sessions.iter().map(|s| s.len()).sum()
    }
}

impl Delivery for SessionHub {
    fn deliver(&self, conversation: ConversationId, to: Recipient, out: Outbound) {
        let Some(mut sessions) = self.sessions.get_mut(&conversation) else { return };
        let preview = matches!(out, Outbound::Delta { .. });
        let mut frame: Option<Frame> = None;
        sessions.retain(|(id, sender)| {
            if let Recipient::Session(target) = to
                && target != *id
            {
                return true;
            }
            let frame = frame.get_or_insert_with(|| Arc::from(super::wire::encode(&out)));
            match sender.push(frame.clone()) {
                Push::Queued => true,
                Push::Full if preview => true,
                // Full with a durable frame: close the queue so the socket closes and resumes.
                Push::Full => {
                    sender.close();
                    false
                }
                Push::Closed => false,
            }
        });
    }
}

#[cfg(test)]
impl SessionQueue {
    fn try_recv(&self) -> Option<Frame> {
        self.lock().frames.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twin_engine::{ClientMsgId, Seq, StreamId};
    use uuid::Uuid;

    fn ack(n: u64) -> Outbound {
        Outbound::Ack { client_id: ClientMsgId::parse("c").unwrap(), seq: Seq(n) }
    }

    #[test]
    fn frames_reach_the_addressed_session_or_every_session_of_the_conversation() {
        let hub = SessionHub::new();
        let conversation = ConversationId(Uuid::from_u128(1));
        let (a, rx_a) = hub.register(conversation);
        let (_b, rx_b) = hub.register(conversation);
        hub.deliver(conversation, Recipient::Session(a), ack(1));
        hub.deliver(conversation, Recipient::User, ack(2));
        assert_eq!(&*rx_a.try_recv().unwrap(), super::super::wire::encode(&ack(1)));
        assert_eq!(&*rx_a.try_recv().unwrap(), super::super::wire::encode(&ack(2)));
        assert_eq!(&*rx_b.try_recv().unwrap(), super::super::wire::encode(&ack(2)));
        assert!(rx_b.try_recv().is_none());
    }

    #[test]
    fn a_full_queue_drops_previews_and_disconnects_on_durable_frames() {
        let hub = SessionHub::new();
        let conversation = ConversationId(Uuid::from_u128(1));
        let (_, rx) = hub.register(conversation);
        for n in 0..SESSION_QUEUE as u64 {
            hub.deliver(conversation, Recipient::User, ack(n));
        }
        let delta = Outbound::Delta { stream: StreamId::parse("r1").unwrap(), text: "x".into() };
        hub.deliver(conversation, Recipient::User, delta);
        assert_eq!(hub.connected(), 1, "a dropped preview keeps the socket");
        hub.deliver(conversation, Recipient::User, ack(999));
        assert_eq!(hub.connected(), 0, "a durable frame that does not fit disconnects");
        let mut received = 0;
        while rx.try_recv().is_some() {
            received += 1;
        }
        assert_eq!(received, SESSION_QUEUE, "what was queued is still delivered before the close");
        assert!(rx.lock().closed, "and then the socket learns it must reconnect");
    }

    #[tokio::test]
    async fn a_waiting_socket_is_woken_by_a_frame_and_by_the_close() {
        let queue = Arc::new(SessionQueue::default());
        let waiter = tokio::spawn({
            let queue = queue.clone();
            async move { (queue.recv().await, queue.recv().await) }
        });
        tokio::task::yield_now().await;
        assert!(matches!(queue.push(Arc::from("a")), Push::Queued));
        queue.close();
        let (first, second) = waiter.await.unwrap();
        assert_eq!(first.as_deref(), Some("a"));
        assert_eq!(second, None);
        assert!(matches!(queue.push(Arc::from("b")), Push::Closed));
    }

    #[test]
    fn unregistering_the_last_session_forgets_the_conversation() {
        let hub = SessionHub::new();
        let conversation = ConversationId(Uuid::from_u128(1));
        let (a, _rx) = hub.register(conversation);
        hub.unregister(conversation, a);
        assert!(hub.sessions.is_empty());
    }
}
