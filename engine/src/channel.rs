//! Messaging channels as the conversation sees them: where a user can be reached (web, Telegram,
//! WhatsApp), which of their channels a message goes out on, and each creator's channel settings
//! (`channels.toml`). The adapters in `twin-channels` speak the providers' protocols; the rules of
//! who is reached where live here, pure.

mod config;
mod outbox;
mod pace;
mod reach;

pub use config::{ChannelsConfig, SecretRef, TelegramSettings, TemplateRef, WhatsAppSettings};
pub use outbox::{DeliveryState, MAX_ATTEMPTS, OutboxBody, OutboxEntry, retry_delay_ms};
pub use pace::{Pacer, Rate};
pub use reach::{Contact, MAX_CONTACTS, Reach};

use serde::{Deserialize, Serialize};

/// A way to reach an end user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// The chat socket (`/v1/chat`): whoever is connected gets the frames; history on `resume`.
    Web,
    Telegram,
    #[serde(rename = "whatsapp")]
    WhatsApp,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Web => "web",
            ChannelKind::Telegram => "telegram",
            ChannelKind::WhatsApp => "whatsapp",
        }
    }

    /// How a user would name it.
    pub fn label(self) -> &'static str {
        match self {
            ChannelKind::Web => "web",
            ChannelKind::Telegram => "Telegram",
            ChannelKind::WhatsApp => "WhatsApp",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "web" => ChannelKind::Web,
            "telegram" => ChannelKind::Telegram,
            "whatsapp" => ChannelKind::WhatsApp,
            _ => return None,
        })
    }

    /// Free-form messages are accepted only this long after the user last wrote on the channel
    /// (WhatsApp's customer-service window); `None`: always.
    pub fn service_window_ms(self) -> Option<i64> {
        match self {
            ChannelKind::WhatsApp => Some(24 * 60 * 60 * 1000),
            ChannelKind::Web | ChannelKind::Telegram => None,
        }
    }
}

/// Where on a provider channel a user is written to: a Telegram chat id, a WhatsApp number
/// (`wa_id`). Web has no address (`chat` is empty): its frames go to the connected sockets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChannelAddress {
    pub kind: ChannelKind,
    pub chat: String,
}

impl ChannelAddress {
    pub fn web() -> Self {
        Self { kind: ChannelKind::Web, chat: String::new() }
    }

    pub fn new(kind: ChannelKind, chat: impl Into<String>) -> Self {
        Self { kind, chat: chat.into() }
    }

    /// A provider channel, reached through the outbox (not a socket).
    pub fn is_provider(&self) -> bool {
        self.kind != ChannelKind::Web
    }
}

/// Where a user message came from on a provider channel, and the inbox row that holds it: the
/// conversation marks the row processed in the same commit as the message, so a webhook delivery
/// is turned into a turn exactly once, across crashes too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrival {
    pub address: ChannelAddress,
    /// The inbox row (`ports::InboxRow::id`); `None` when the message did not come through the inbox.
    pub inbox: Option<i64>,
}

impl std::fmt::Display for ChannelAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.chat.is_empty() {
            f.write_str(self.kind.as_str())
        } else {
            write!(f, "{}:{}", self.kind.as_str(), self.chat)
        }
    }
}
