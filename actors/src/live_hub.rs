//! LiveHub: per-creator broadcast of live events. Publishing is a map lookup and, only when somebody
//! watches, a non-blocking broadcast send; a slow watcher lags (and is told so by the receiver), it
//! never holds up a conversation.

use dashmap::DashMap;
use tokio::sync::broadcast;
use twin_engine::CreatorId;
use twin_engine::ports::{LiveEvent, LivePublisher};

/// Events a watcher may fall behind by before it is told it lagged (the default).
pub const LIVE_BUFFER: usize = 1024;

pub struct LiveHub {
    channels: DashMap<CreatorId, broadcast::Sender<LiveEvent>>,
    buffer: usize,
}

impl Default for LiveHub {
    fn default() -> Self {
        Self::with_buffer(LIVE_BUFFER)
    }
}

impl LiveHub {
    pub fn new() -> Self {
        Self::default()
    }

    /// A hub whose watchers may fall behind by `buffer` events (at least 1).
    pub fn with_buffer(buffer: usize) -> Self {
        Self { channels: DashMap::new(), buffer: buffer.max(1) }
    }

    /// Starts watching one creator's conversations.
    pub fn subscribe(&self, creator: CreatorId) -> broadcast::Receiver<LiveEvent> {
        self.channels.entry(creator).or_insert_with(|| broadcast::channel(self.buffer).0).subscribe()
    }
}

impl LivePublisher for LiveHub {
    fn publish(&self, event: LiveEvent) {
        let creator = event.creator;
        let Some(sender) = self.channels.get(&creator) else { return };
        if sender.send(event).is_err() {
            // Nobody watches any more: drop the channel so idle creators cost nothing.
            drop(sender);
            self.channels.remove_if(&creator, |_, s| s.receiver_count() == 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twin_engine::ports::LiveEventKind;
    use twin_engine::{ConversationId, StreamId};
    use uuid::Uuid;

    fn event(creator: CreatorId) -> LiveEvent {
        LiveEvent {
            creator,
            conversation: ConversationId(Uuid::nil()),
            kind: LiveEventKind::ReplyStarted { stream: StreamId::parse("r1").expect("valid") },
        }
    }

    #[test]
    fn a_watcher_sees_only_its_creators_events_and_unwatched_creators_cost_nothing() {
        let hub = LiveHub::new();
        let a = CreatorId(Uuid::from_u128(1));
        let b = CreatorId(Uuid::from_u128(2));
        hub.publish(event(a));
        assert!(hub.channels.is_empty());
        let mut rx = hub.subscribe(a);
        hub.publish(event(b));
        hub.publish(event(a));
        assert_eq!(rx.try_recv().map(|e| e.creator), Ok(a));
        assert!(rx.try_recv().is_err());
        drop(rx);
        hub.publish(event(a));
        assert!(hub.channels.is_empty());
    }
}
