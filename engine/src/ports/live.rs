//! The live-event port: what creators watching their conversations see.

use crate::channel::{ChannelAddress, ChannelKind, DeliveryState};
use crate::ids::{ConversationId, CreatorId, NudgeId, ProgramId, Seq, StepId, StreamId};
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
    /// A provider reported what became of a message the twin sent (`seq`).
    Delivery {
        seq: Seq,
        channel: ChannelKind,
        state: DeliveryState,
        error: Option<String>,
    },
    /// The user edited a message they sent on a provider channel; the stored turn is unchanged.
    MessageEdited {
        channel: ChannelKind,
        provider_message_id: String,
        text: String,
    },
    /// A provider said the user blocked (`false`) or unblocked the twin on a channel.
    Reachability {
        address: ChannelAddress,
        reachable: bool,
    },
    /// A channel identity was linked to this user (with a one-time code).
    ChannelLinked {
        address: ChannelAddress,
    },
    /// A piece of the reply being generated (the user sees it too unless drafts are on).
    Delta {
        stream: StreamId,
        text: String,
    },
    /// A human (`by`, an account's email) took the conversation over.
    TakenOver {
        by: String,
        at: crate::time::Timestamp,
    },
    /// The human handed the conversation back to the twin.
    Released {
        by: String,
    },
    /// Draft mode: the twin proposes this reply; nothing reached the user.
    DraftProposed {
        stream: StreamId,
        text: String,
        consistency: Option<crate::message::Score>,
    },
    /// The pending draft was `approved`, `edited`, `rejected` or `superseded` (by a newer draft).
    DraftResolved {
        stream: StreamId,
        outcome: &'static str,
        by: Option<String>,
    },
    /// Draft approval for this conversation is now on or off.
    DraftsMode {
        drafts: bool,
    },
    /// The first event of a new conversation.
    ConversationStarted,
    /// The conversation went idle and left memory; the next event brings it back.
    ConversationIdle,
}

pub trait LivePublisher: Send + Sync + 'static {
    /// Publishes to the creator's watchers. Never blocks and costs next to nothing when nobody
    /// watches.
    fn publish(&self, event: LiveEvent);
}
