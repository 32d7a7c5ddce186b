//! What goes out on a provider channel: one outbox entry per durable message for a Telegram or
//! WhatsApp user, written in the same commit as the message (so a committed message is always
//! sent, after a crash too), plus the pure rules of retrying a send.

use serde::{Deserialize, Serialize};

use super::ChannelAddress;
use crate::ids::{ConversationId, CreatorId, Seq};
use crate::message::Choice;
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub creator: CreatorId,
    pub conversation: ConversationId,
    /// The message this sends; one entry per message, so `(conversation, seq)` is its key.
    pub seq: Seq,
    pub address: ChannelAddress,
    pub body: OutboxBody,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutboxBody {
    /// The message's text with its choices (buttons).
    Text {
        text: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        choices: Vec<Choice>,
    },
    /// An approved template (WhatsApp, outside the customer-service window).
    Template { name: String, language: String },
}

/// Where a send stands. Telegram reports nothing after `sent`; WhatsApp reports `delivered`,
/// `read` and late failures through its status webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    Sent,
    Delivered,
    Read,
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Sent => "sent",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Read => "read",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "pending" => DeliveryState::Pending,
            "sent" => DeliveryState::Sent,
            "delivered" => DeliveryState::Delivered,
            "read" => DeliveryState::Read,
            "failed" => DeliveryState::Failed,
            _ => return None,
        })
    }

    /// Status reports can arrive out of order (a `read` before its `delivered`): a state only ever
    /// moves forward, and `failed` is final.
    pub fn advance(self, reported: DeliveryState) -> DeliveryState {
        match (self, reported) {
            (DeliveryState::Failed, _) => DeliveryState::Failed,
            (_, DeliveryState::Failed) => DeliveryState::Failed,
            (current, reported) => current.max(reported),
        }
    }
}

/// Attempts after which a send that keeps failing for transient reasons is given up (`failed`);
/// with the delays of [`retry_delay_ms`] that is about two hours of provider outage.
pub const MAX_ATTEMPTS: u32 = 20;

/// How long to wait after the `attempts`-th failed attempt (1-based): 1 s doubling to a 10-minute
/// ceiling, so an outage is retried often at first and then steadily.
pub fn retry_delay_ms(attempts: u32) -> i64 {
    const FIRST_MS: i64 = 1_000;
    const CEILING_MS: i64 = 10 * 60 * 1_000;
    let doublings = attempts.saturating_sub(1).min(20);
    (FIRST_MS << doublings).min(CEILING_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_only_moves_forward_and_failed_is_final() {
        use DeliveryState::*;
        assert_eq!(Read.advance(Delivered), Read);
        assert_eq!(Sent.advance(Read), Read);
        assert_eq!(Delivered.advance(Failed), Failed);
        assert_eq!(Failed.advance(Read), Failed);
    }

    #[test]
    fn retries_back_off_from_a_second_to_ten_minutes() {
        assert_eq!(retry_delay_ms(1), 1_000);
        assert_eq!(retry_delay_ms(2), 2_000);
        assert_eq!(retry_delay_ms(5), 16_000);
        assert_eq!(retry_delay_ms(30), 600_000);
        let total: i64 = (1..MAX_ATTEMPTS).map(retry_delay_ms).sum();
        assert!((3_600_000..4 * 3_600_000).contains(&total), "about two hours in all: {total} ms");
    }
}
