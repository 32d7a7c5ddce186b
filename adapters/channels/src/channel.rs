//! What every messaging provider adapter (Telegram, WhatsApp) produces and consumes, so the webhook
//! inbox, the identity mapping and the outbox are written once for all of them.
//!
//! In: a verified webhook body becomes [`InboundItem`]s, each with the provider's dedup key.
//! Out: an outbox entry is rendered into provider API calls ([`Part`]s) and sent one by one through
//! a [`ProviderClient`], whose errors are already mapped to what the outbox does next.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use twin_engine::channel::{ChannelKind, DeliveryState, OutboxBody};

/// One thing a webhook delivery said, with the key that makes it processed once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundItem {
    /// The provider's id of this item, prefixed by its kind: `tg:update:<update_id>`,
    /// `wa:msg:<wamid>`, `wa:status:<wamid>:<status>`.
    pub dedup_key: String,
    pub event: InboundEvent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InboundEvent {
    /// The user wrote something that is a turn of the conversation. `text` is what the twin reads:
    /// the message text, the value of the button they pressed, or a described placeholder for media
    /// and reactions.
    Message { from: Sender, message_id: String, text: String, content: Content },
    /// The user edited an earlier message: not a new turn.
    Edited { from: Sender, message_id: String, text: String },
    /// The user blocked (`false`) or unblocked (`true`) the twin.
    Reachability { from: Sender, reachable: bool },
    /// What became of a message the twin sent (`provider_message_id` as the send returned it).
    Status { recipient: String, provider_message_id: String, state: DeliveryState, error: Option<String> },
}

/// What kind of turn a [`InboundEvent::Message`] is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Content {
    Text,
    /// A button or list row was picked; `text` is its value. Telegram's callback queries must be
    /// answered (`callback_id`).
    Choice {
        callback_id: Option<String>,
    },
    /// Telegram `/start` (optionally `/start PAYLOAD` from a deep link `t.me/bot?start=PAYLOAD`).
    Start {
        payload: Option<String>,
    },
    /// A photo, voice note, document…: `text` describes it (with its caption, if any).
    Media {
        media: String,
    },
    /// A reaction to a message; `text` describes it.
    Reaction {
        to_message_id: String,
        emoji: Option<String>,
    },
}

/// Who wrote, as the provider names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    /// The person: a Telegram user id, a WhatsApp number (`wa_id`). Their channel identity.
    pub user: String,
    /// Where replies go: the Telegram chat id (a group's for group messages), the WhatsApp number.
    pub chat: String,
    /// Their display name, if the provider gave one.
    pub name: Option<String>,
}

/// One provider API call of a rendered message (a long text is several).
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// Telegram: the Bot API method (`sendMessage`); WhatsApp: `messages`.
    pub method: &'static str,
    /// The JSON body of the call.
    pub body: serde_json::Value,
}

/// What the provider answered to a part that was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentPart {
    /// The provider's id of the message (Telegram `message_id`, WhatsApp `wamid`), for status
    /// reports and edits.
    pub provider_message_id: Option<String>,
}

/// A send that was not accepted, mapped to what the outbox does next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Wait, then try again (`429` with `retry_after`, WhatsApp 130429/131056/80007). With
    /// `whole_sender` the limit is the bot's or number's, not this chat's.
    #[error("rate limited for {retry_after:?}")]
    RateLimited { retry_after: Duration, whole_sender: bool },
    /// The user cannot be reached here (blocked the bot, deactivated, not a WhatsApp number): mark
    /// them unreachable on this channel and stop.
    #[error("the user cannot be reached: {0}")]
    Unreachable(String),
    /// Free-form messages are refused outside the customer-service window (WhatsApp 131047).
    #[error("the customer-service window is closed: {0}")]
    WindowClosed(String),
    /// The network or the provider failed (timeouts, 5xx): retry with back-off.
    #[error("the provider failed: {0}")]
    Transient(String),
    /// The provider refused the request for good (a bad request, a bad token): record it as failed.
    #[error("the provider refused the message: {0}")]
    Rejected(String),
}

/// A provider's outbound side, as the outbox uses it.
#[async_trait::async_trait]
pub trait ProviderClient: Send + Sync + 'static {
    fn kind(&self) -> ChannelKind;

    /// The API calls that deliver `body` to `chat`, in order: split at the provider's length limit
    /// on sentence boundaries, escaped for its formatting, choices as its buttons. Pure.
    fn render(&self, chat: &str, body: &OutboxBody) -> Vec<Part>;

    /// Makes one call.
    async fn send(&self, part: &Part) -> Result<SentPart, SendError>;
}

/// A webhook that could not be accepted. Nothing of it was stored or processed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// Missing or wrong secret token / signature: 401 (Telegram) or 403 (WhatsApp).
    #[error("the request is not signed by the provider")]
    Unauthenticated,
    /// Not JSON, or not the provider's shape at all: 400.
    #[error("malformed body: {0}")]
    Malformed(String),
}
