//! The delivery port: frames for the clients of a conversation (sockets today, channels later).

use serde::{Deserialize, Serialize};

use crate::ids::{ClientMsgId, ConversationId, Seq, SessionId, StreamId};
use crate::message::Message;

/// Who in a conversation gets a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Recipient {
    /// Every connected session of the conversation's user.
    User,
    /// Only the session that sent the event (an `ack`, an error about its own frame).
    Session(SessionId),
}

/// Error codes a client sees; stable names are in CONTRACT.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    BadJson,
    UnknownType,
    MissingField,
    InvalidField,
    TooLarge,
    BinaryNotSupported,
    RateLimited,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::MissingField => "missing_field",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::BinaryNotSupported => "binary_not_supported",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

/// One frame for a client.
/// Serializable: in a cluster a frame travels back to the node that holds the socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outbound {
    /// The client's message is durable at `seq`.
    Ack {
        client_id: ClientMsgId,
        seq: Seq,
    },
    /// A durable message.
    Message(Message),
    /// A preview of a reply being generated; not durable.
    Delta {
        stream: StreamId,
        text: String,
    },
    Error {
        code: ErrorCode,
        message: String,
        client_id: Option<ClientMsgId>,
    },
}

pub trait Delivery: Send + Sync + 'static {
    /// Hands a frame to the conversation's connected clients. Never blocks: a client that cannot
    /// keep up is the adapter's to handle (it drops previews, or disconnects so the client resumes).
    fn deliver(&self, conversation: ConversationId, to: Recipient, out: Outbound);
}
