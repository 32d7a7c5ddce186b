//! Twin's channel adapters: how end users reach their conversations. The WebSocket chat protocol,
//! and the Telegram Bot API and WhatsApp Cloud API adapters, each in the same rooms (`config`,
//! `wire`, `inbound`, `client`), over the shapes in [`channel`] that the inbox and outbox share.

pub mod channel;
pub mod outbox;
pub mod secret;
pub mod split;
pub mod telegram;
pub mod websocket;
pub mod whatsapp;

pub use channel::{
    Content, InboundEvent, InboundItem, Part, ProviderClient, SendError, Sender, SentPart, WebhookError,
};
pub use secret::{Secret, SecretError, SecretSource};
