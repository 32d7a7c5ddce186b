//! Where one user is in one program version: the cursor's durable state, kept in the conversation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::conversation::Variables;
use crate::ids::{ProgramId, StepId};
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enrolment {
    pub program: ProgramId,
    /// The version the user started on; later versions never change a running enrolment.
    pub version: u32,
    pub step: StepId,
    /// Counts step entries over the enrolment; a step's nudge carries the entry it was made for, so a
    /// nudge left over from an earlier visit of the same step is recognised as stale.
    pub entry: u64,
    pub phase: Phase,
    pub enrolled_at: Timestamp,
    pub entered_at: Timestamp,
    /// Invalid answers given to the current question.
    #[serde(default)]
    pub attempts: u32,
    /// User messages in the current `chat` step.
    #[serde(default)]
    pub turns: u32,
    /// Variables set by questions (`save_as`), as condition-language JSON values.
    #[serde(default)]
    pub vars: Variables,
    /// Answers by step id, for `answer("step")`.
    #[serde(default)]
    pub answers: BTreeMap<StepId, serde_json::Value>,
    /// The user message being handled, for `last_message`; only set during `on_user_text`.
    #[serde(skip)]
    pub(super) handling: Option<String>,
}

/// What the current step is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// An answer to a question (or a pick from a message's choices).
    Answer,
    /// The clock: a `wait`, or a `task` before its check-in. The user may chat with the twin meanwhile.
    Clock,
    /// A `task` check-in was sent; the next user message is its answer.
    CheckIn,
    /// Free conversation with the twin in a `chat` step.
    Chat,
    /// A human was asked for; the twin stays silent.
    Handoff,
}
