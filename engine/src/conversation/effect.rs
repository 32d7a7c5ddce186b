//! What a step asks the world to do, in order.

use crate::channel::OutboxEntry;
use crate::ids::StreamId;
use crate::ports::{LiveEvent, Outbound, Recipient, Record, ScheduledNudge};
use crate::prompt::ReplyRequest;

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Make these records durable in one commit. Later effects of the same step wait for it; if it
    /// fails they are skipped and the conversation is reloaded from the store.
    Persist(Vec<Record>),
    /// A frame for the conversation's clients.
    Send {
        to: Recipient,
        out: Outbound,
    },
    /// Generate a reply outside the actor; its deltas and end come back as events.
    StartReply(Box<ReplyRequest>),
    /// Stop generating a reply; its late events are ignored anyway.
    CancelReply(StreamId),
    Publish(LiveEvent),
    /// These nudge rows are committed: the scheduler may hold them in its wheel.
    Schedule(Vec<ScheduledNudge>),
    /// These outbox rows are committed: the outbox may send them now (it would find them on its
    /// next scan anyway).
    Dispatch(Vec<OutboxEntry>),
}
