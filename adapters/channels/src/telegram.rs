//! The Telegram Bot API channel: a creator's bot receives updates on a webhook (`inbound`) and the
//! outbox sends the twin's messages through `client`, rendered by `render` (HTML, split, buttons).

pub mod client;
pub mod config;
pub mod inbound;
pub mod render;
pub mod wire;

pub use client::TelegramClient;
pub use config::TelegramConfig;
