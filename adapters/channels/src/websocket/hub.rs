//! SessionHub: which sockets are connected to which conversation, and the non-blocking hand-off of
//! frames to them (the `Delivery` port for the web channel).
//!
//! Overload policy: each socket has a bounded queue. A preview (`delta`) that does not fit is
//! dropped; anything durable that does not fit disconnects that socket (its queue is closed), and
//! the client resumes from its last seq. No conversation ever waits for a socket.
//!
//! Frames are encoded once, here, and shared by every session that gets them: a socket's queue
//! holds pointers to text (an idle socket's queue costs a few hundred bytes, not kilobytes).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use tokio::sync::mpsc;
use twin_engine::ports::{Delivery, Outbound, Recipient};
use twin_engine::{ConversationId, SessionId};

/// Frames a socket may have queued before previews are dropped and durable frames disconnect it.
pub const SESSION_QUEUE: usize = 128;

pub struct SessionHub {
    sessions: DashMap<ConversationId, Vec<(SessionId, mpsc::Sender<Frame>)>>,
    next: AtomicU64,
}

/// One encoded text frame of the chat protocol.
pub type Frame = Arc<str>;

impl Default for SessionHub {
    fn default() -> Self {
        Self { sessions: DashMap::new(), next: AtomicU64::new(1) }
    }
}

impl SessionHub {
    pub fn new() -> Self {
        Self::default()
    }

    /// Connects a socket to a conversation. The receiver ends (`None`) if the socket fell behind.
    pub fn register(&self, conversation: ConversationId) -> (SessionId, mpsc::Receiver<Frame>) {
        let id = SessionId(self.next.fetch_add(1, Ordering::Relaxed));
        let (sender, receiver) = mpsc::channel(SESSION_QUEUE);
        self.sessions.entry(conversation).or_default().push((id, sender));
        (id, receiver)
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
            match sender.try_send(frame.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) if preview => true,
                // Full with a durable frame: drop the sender so the socket closes and resumes.
                Err(_) => false,
            }
        });
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
        let (a, mut rx_a) = hub.register(conversation);
        let (_b, mut rx_b) = hub.register(conversation);
        hub.deliver(conversation, Recipient::Session(a), ack(1));
        hub.deliver(conversation, Recipient::User, ack(2));
        assert_eq!(&*rx_a.try_recv().unwrap(), super::super::wire::encode(&ack(1)));
        assert_eq!(&*rx_a.try_recv().unwrap(), super::super::wire::encode(&ack(2)));
        assert_eq!(&*rx_b.try_recv().unwrap(), super::super::wire::encode(&ack(2)));
        assert!(rx_b.try_recv().is_err());
    }

    #[test]
    fn a_full_queue_drops_previews_and_disconnects_on_durable_frames() {
        let hub = SessionHub::new();
        let conversation = ConversationId(Uuid::from_u128(1));
        let (_, mut rx) = hub.register(conversation);
        for n in 0..SESSION_QUEUE as u64 {
            hub.deliver(conversation, Recipient::User, ack(n));
        }
        let delta = Outbound::Delta { stream: StreamId::parse("r1").unwrap(), text: "x".into() };
        hub.deliver(conversation, Recipient::User, delta);
        assert_eq!(hub.connected(), 1, "a dropped preview keeps the socket");
        hub.deliver(conversation, Recipient::User, ack(999));
        assert_eq!(hub.connected(), 0, "a durable frame that does not fit disconnects");
        let mut received = 0;
        while rx.try_recv().is_ok() {
            received += 1;
        }
        assert_eq!(received, SESSION_QUEUE, "what was queued is still delivered before the close");
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
