//! The durable part of a conversation besides its messages: where the user is in a program, what
//! they answered, which nudges are pending and how many went out today. Stored as JSON next to the
//! conversation's version, written by the same commit as the messages that changed it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::channel::Reach;
use crate::ids::{NudgeId, ProgramId, Seq, StepId, StreamId};
use crate::message::Score;
use crate::program::Enrolment;
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConversationState {
    /// The program the user is walking through, pinned to the version it started on.
    pub enrolment: Option<Enrolment>,
    /// Programs this user finished (id and version), so first contact does not start them again.
    pub finished: Vec<(ProgramId, u32)>,
    /// Nudges written to the store and not settled yet, earliest first.
    pub nudges: Vec<PendingNudge>,
    /// Numbers the next nudge id ([`NudgeId::of`]); never reused.
    pub nudge_counter: u64,
    pub audience: AudienceState,
    /// A program timer that fell due while nudges were not allowed (opted out, unreachable); the
    /// program resumes from it when the user writes next.
    pub held: Option<NudgeKind>,
    /// The user was enrolled in a program at some point; first contact enrols only once.
    pub ever_enrolled: bool,
    /// An inactivity nudge went out and the user has not written since: no further one until they do.
    pub nudged_since_user: bool,
    /// The last user message that was handled without a twin reply (the program took it as an
    /// answer, it was STOP/START, or a human holds the conversation). After a reload such a
    /// message is not "unanswered", so no reply is started for it.
    pub handled_up_to: Seq,
    /// The channels the user wrote from, most recent first: where the twin's messages go.
    pub reach: Reach,
    /// Who steers the conversation: a human who took it over, draft approval, a pending draft.
    pub control: Control,
}

/// Human control of a conversation (the live view's takeover and draft approval).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Control {
    /// The account (by email) that took the conversation over; while set the twin neither replies
    /// nor moves the program, and nudges wait.
    pub held_by: Option<String>,
    pub held_since: Option<Timestamp>,
    /// Draft approval for this conversation; `None` follows the creator's `replies.drafts`.
    pub drafts: Option<bool>,
    /// The twin's reply waiting for approval (draft mode), at most one: a newer one supersedes it.
    pub draft: Option<Draft>,
}

impl Control {
    /// Whether replies wait for approval: this conversation's setting, else the creator's.
    pub fn drafting(&self, creator_default: bool) -> bool {
        self.drafts.unwrap_or(creator_default)
    }
}

/// A reply the twin proposed in draft mode; nothing reached the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Draft {
    pub stream: StreamId,
    pub text: String,
    pub consistency: Option<Score>,
    pub created_at: Timestamp,
}

/// Facts about the user that the nudge policy needs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AudienceState {
    /// IANA name the user gave (a `timezone` question); the creator's default otherwise.
    pub timezone: Option<String>,
    /// The user sent STOP (or the like); no nudges until START.
    pub opted_out: bool,
    /// A channel said the user blocked the twin; no nudges until they write again.
    pub unreachable: bool,
    /// Nudges sent on one local date (`YYYY-MM-DD` in the user's timezone) for the daily cap.
    pub sent_on: Option<(chrono::NaiveDate, u32)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingNudge {
    pub id: NudgeId,
    pub due_at: Timestamp,
    pub kind: NudgeKind,
}

/// Why a nudge exists; decides what happens when it falls due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NudgeKind {
    /// A program step waits for the clock (`wait`, a `task` check-in, a `handoff` timeout). Only
    /// valid while the enrolment is still in that entry of that step.
    Step { step: StepId, entry: u64 },
    /// The user has not written for a while.
    Inactivity,
}

/// Answers and variables of an enrolment, as JSON values of the condition language.
pub type Variables = BTreeMap<String, serde_json::Value>;
