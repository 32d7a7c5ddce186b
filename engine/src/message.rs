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
    /// For the twin's generated replies: how consistent the reply is with the creator's persona
    /// (`persona::consistency`), so a creator can see when the twin drifts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<Score>,
    pub created_at: Timestamp,
}

/// A score in [0, 1], kept in thousandths so that messages stay comparable (`Eq`); serialized as a
/// number such as `0.742`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Score(u16);

impl Score {
    /// Clamps to [0, 1]; NaN is 0.
    pub fn new(value: f32) -> Self {
        let clamped = if value.is_nan() { 0.0 } else { value.clamp(0.0, 1.0) };
        Self((clamped * 1000.0).round() as u16)
    }

    pub fn value(self) -> f32 {
        f32::from(self.0) / 1000.0
    }

    pub fn thousandths(self) -> u16 {
        self.0
    }

    pub fn from_thousandths(value: u16) -> Self {
        Self(value.min(1000))
    }
}

impl Serialize for Score {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(f64::from(self.0) / 1000.0)
    }
}

impl<'de> Deserialize<'de> for Score {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(deserializer)?;
        if !(0.0..=1.0).contains(&value) {
            return Err(serde::de::Error::custom(format!("a score must be between 0 and 1, not {value}")));
        }
        Ok(Self::new(value as f32))
    }
}

/// One answer offered to the user: `value` is what the program stores, `label` what the user sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub value: String,
    pub label: String,
}
