//! The WhatsApp Cloud API adapter: verifies and parses the webhook Meta posts (`inbound`), renders
//! outbox entries as Graph API `messages` calls (`render`) and makes them (`client`). The webhook
//! route and the outbox loop live in the api crate; this module is the protocol.

pub mod client;
pub mod config;
pub mod inbound;
pub mod render;
pub mod wire;

pub use client::WhatsAppClient;
pub use config::WhatsAppConfig;
pub use inbound::{Routed, handshake, parse, verify_signature};
pub use render::render;
