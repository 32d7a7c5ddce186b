//! Twin's channel adapters: how end users reach their conversations. Today the WebSocket chat
//! protocol; Telegram and WhatsApp join with the channels issue, in the same rooms.

pub mod websocket;
