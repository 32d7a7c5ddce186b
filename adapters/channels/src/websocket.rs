//! The WebSocket chat channel (`/v1/chat`): the wire protocol of CONTRACT.md and the hub that
//! hands conversation frames to the sockets connected to them. The axum route lives in the api
//! crate; this module holds everything that is protocol, not HTTP plumbing.

pub mod hub;
pub mod wire;

pub use hub::{Frame, SessionHub, SessionQueue};
