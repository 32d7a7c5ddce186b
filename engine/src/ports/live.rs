//! The live-event port: what creators watching their conversations see.

use crate::ids::{ConversationId, CreatorId, StreamId};
use crate::message::Message;

#[derive(Debug, Clone, PartialEq)]
pub struct LiveEvent {
    pub creator: CreatorId,
    pub conversation: ConversationId,
    pub kind: LiveEventKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LiveEventKind {
    /// A message became durable (either direction).
    Message(Message),
    ReplyStarted {
        stream: StreamId,
    },
    ReplyFailed {
        stream: StreamId,
        reason: String,
    },
}

pub trait LivePublisher: Send + Sync + 'static {
    /// Publishes to the creator's watchers. Never blocks and costs next to nothing when nobody
    /// watches.
    fn publish(&self, event: LiveEvent);
}
