//! What a step asks the world to do, in order.

use serde::{Deserialize, Serialize};

use crate::channel::OutboxEntry;
use crate::ids::{NudgeId, Seq, StreamId};
use crate::ports::{LiveEvent, Outbound, Recipient, Record, ScheduledNudge};
use crate::prompt::ReplyRequest;
use crate::time::Timestamp;

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
    /// The outcome of a human's command (takeover, a human message, a draft decision), for whoever
    /// waits for it: after the commit before it, so an answer means the change is durable.
    Answer(Answer),
}

/// What a human's command came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// Done; `seq` is the message it stored, if any.
    Done { seq: Option<Seq> },
    /// A preview fast-forward fired this nudge (`None`: nothing was pending).
    FastForwarded { nudge: Option<(NudgeId, Timestamp)> },
    /// Refused, and nothing changed: the draft is no longer pending, the text is invalid…
    Refused { conflict: bool, reason: String },
}
