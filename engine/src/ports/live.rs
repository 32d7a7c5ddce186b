//! The live-event port: what creators watching their conversations see.

use crate::ids::{ConversationId, CreatorId, NudgeId, ProgramId, StepId, StreamId};
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
    /// A reply failed; `partial` is the text the user saw streaming before it did (not stored as a
    /// message: it is marked here, for the creator, as cut off).
    ReplyFailed {
        stream: StreamId,
        reason: String,
        partial: String,
    },
    Enrolled {
        program: ProgramId,
        version: u32,
    },
    StepEntered {
        program: ProgramId,
        step: StepId,
        kind: &'static str,
    },
    StepLeft {
        program: ProgramId,
        step: StepId,
    },
    ProgramFinished {
        program: ProgramId,
    },
    AnswerInvalid {
        step: StepId,
        attempts: u32,
        gave_up: bool,
    },
    /// A condition failed at run time; the program took its stated path (see `program::cursor`).
    ConditionFailed {
        step: StepId,
        error: String,
    },
    HandoffRequested {
        step: StepId,
    },
    NudgeScheduled {
        id: NudgeId,
        due_at: crate::time::Timestamp,
        kind: &'static str,
    },
    NudgeFired {
        id: NudgeId,
    },
    /// The policy moved the nudge (quiet hours, daily cap) to `until`.
    NudgeDeferred {
        id: NudgeId,
        until: crate::time::Timestamp,
        reason: &'static str,
    },
    NudgeSkipped {
        id: NudgeId,
        reason: &'static str,
    },
    /// The user opted out of (or back into) nudges.
    NudgesOptedOut {
        opted_out: bool,
    },
}

pub trait LivePublisher: Send + Sync + 'static {
    /// Publishes to the creator's watchers. Never blocks and costs next to nothing when nobody
    /// watches.
    fn publish(&self, event: LiveEvent);
}
