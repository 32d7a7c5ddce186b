//! The durable message: what a conversation stores and what a client sees as final.

use serde::{Deserialize, Serialize};

use crate::ids::{ClientMsgId, ConversationId, CreatorId, Seq, StreamId};
use crate::time::Timestamp;

/// Who authored a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The end user.
    User,
    /// The twin's generated reply.
    Twin,
    /// Text of a coaching program step.
    Program,
    /// A proactive nudge.
    Nudge,
    /// The creator or an agent who took the conversation over.
    Human,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::User => "user",
            Origin::Twin => "twin",
            Origin::Program => "program",
            Origin::Nudge => "nudge",
            Origin::Human => "human",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "user" => Origin::User,
            "twin" => Origin::Twin,
            "program" => Origin::Program,
            "nudge" => Origin::Nudge,
            "human" => Origin::Human,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub conversation: ConversationId,
    /// The tenant; every stored row carries it so row-level security can hold.
    pub creator: CreatorId,
    pub seq: Seq,
    pub origin: Origin,
    pub text: String,
    /// The client's idempotency key, for user messages.
    pub client_id: Option<ClientMsgId>,
    /// The reply stream that produced this message, for generated replies.
    pub stream: Option<StreamId>,
    /// Buttons offered with a program question, in order; empty for most messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<Choice>,
    pub created_at: Timestamp,
}

/// One answer offered to the user: `value` is what the program stores, `label` what the user sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub value: String,
    pub label: String,
}
