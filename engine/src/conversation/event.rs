//! What can happen to a conversation, in the order its mailbox delivers it.

use serde::{Deserialize, Serialize};

use crate::channel::{Arrival, ChannelAddress};
use crate::ids::{ClientMsgId, NudgeId, ProgramId, SessionId, StreamId};
use crate::message::Score;

/// Serializable: in a cluster an event travels to the node that owns its conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// The user sent text; `client_id` is their idempotency key. `channel` is where they wrote
    /// (`None`: the web chat); what the twin says next goes out there.
    UserMessage { client_id: ClientMsgId, text: String, session: Option<SessionId>, channel: Option<Arrival> },
    /// A provider said the user blocked (`false`) or unblocked (`true`) the twin on a channel.
    Reachability { address: ChannelAddress, reachable: bool },
    /// A channel identity was just linked to this user (a one-time code): the user is greeted there.
    Linked { address: ChannelAddress },
    /// Someone sent a link code on this channel that is unknown or expired: they are told so there.
    LinkRefused { address: ChannelAddress },
    /// A piece of the reply being generated.
    ReplyDelta { stream: StreamId, text: String },
    /// The reply is complete; `text` is all of it. `consistency` is its score against the
    /// creator's persona, computed on the reply's task (`TwinSnapshot::style`) so the conversation's
    /// handler stays cheap; `None` when it was not scored.
    ReplyFinished { stream: StreamId, text: String, consistency: Option<Score> },
    /// The reply failed; `partial` is what had streamed before (empty when nothing had).
    ReplyFailed { stream: StreamId, reason: String, partial: String },
    /// The conversation was just loaded (first use, passivation, or a restart after a crash).
    Recovered,
    /// The scheduler claimed this nudge's row: it is due.
    NudgeDue { id: NudgeId },
    /// Handling this nudge failed (a bug): forget it, settled as skipped; a program timer is held
    /// so the program resumes when the user writes.
    NudgeAbandoned { id: NudgeId },
    /// Enrol the user in the latest version of this program (an explicit call, not a trigger).
    Enrol { program: ProgramId },
    /// A creator or agent (`by`, their email) takes the conversation over: the twin stops at once.
    TakeOver { by: String },
    /// The human hands the conversation back to the twin.
    Release { by: String },
    /// A human writes to the user (taking the conversation over if nobody holds it).
    HumanMessage { by: String, text: String, client_id: Option<ClientMsgId> },
    /// Draft approval for this conversation: on, off, or (`None`) the creator's default.
    SetDrafts { drafts: Option<bool> },
    /// A human decides on the pending draft of `stream`.
    ResolveDraft { stream: StreamId, action: DraftAction, by: String },
    /// Preview conversations only: the earliest pending nudge or program timer fires now, as if
    /// the clock had reached it.
    FastForward,
}

/// What a human does with the twin's proposed reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DraftAction {
    /// Send it as the twin wrote it.
    Approve,
    /// Send this text instead (stored as the human's message).
    Edit(String),
    /// Send nothing.
    Reject,
}
