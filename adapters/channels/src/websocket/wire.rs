//! Frames of the chat protocol: parsing what clients send (with the error code each mistake
//! earns) and encoding what the server sends.

use serde::Serialize;
use serde_json::Value;
use twin_engine::message::Choice;
use twin_engine::ports::{ErrorCode, Outbound};
use twin_engine::{ClientMsgId, Message, Seq};

/// A text frame larger than this gets a `too_large` error; the connection stays.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// The transport closes with 1009 above this (tungstenite treats its own limit as fatal).
pub const TRANSPORT_LIMIT_BYTES: usize = 1024 * 1024;
/// Messages per `resume` batch when the client names no limit, and the most it may ask for.
pub const RESUME_DEFAULT_LIMIT: u32 = 100;
pub const RESUME_MAX_LIMIT: u32 = 500;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    Message {
        id: ClientMsgId,
        text: String,
    },
    /// The answer to a question with choices. Until programs exist it is handled as the user
    /// saying `value`.
    Choice {
        id: ClientMsgId,
        value: String,
    },
    Resume {
        after: Seq,
        limit: u32,
    },
    Ping,
}

/// Why a client frame was refused; becomes an `error` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub code: ErrorCode,
    pub message: String,
    /// The frame's `id`, when it had a readable one.
    pub id: Option<String>,
}

impl FrameError {
    fn new(code: ErrorCode, message: impl Into<String>, id: Option<&str>) -> Self {
        Self { code, message: message.into(), id: id.map(str::to_owned) }
    }

    pub fn too_large(len: usize) -> Self {
        Self::new(ErrorCode::TooLarge, format!("frame of {len} bytes exceeds the limit of {MAX_FRAME_BYTES}"), None)
    }

    pub fn binary() -> Self {
        Self::new(ErrorCode::BinaryNotSupported, "binary frames are not supported; send JSON text frames", None)
    }
}

pub fn decode(text: &str) -> Result<ClientFrame, FrameError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(FrameError::too_large(text.len()));
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| FrameError::new(ErrorCode::BadJson, format!("not valid JSON: {e}"), None))?;
    let Value::Object(object) = value else {
        return Err(FrameError::new(ErrorCode::BadJson, "a frame must be a JSON object", None));
    };
    let raw_id = object.get("id").and_then(Value::as_str);
    let kind = match object.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(_) => return Err(FrameError::new(ErrorCode::InvalidField, "`type` must be a string", raw_id)),
        None => return Err(FrameError::new(ErrorCode::MissingField, "missing field `type`", raw_id)),
    };
    let string = |field: &str| -> Result<&str, FrameError> {
        match object.get(field) {
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(_) => Err(FrameError::new(ErrorCode::InvalidField, format!("`{field}` must be a string"), raw_id)),
            None => Err(FrameError::new(ErrorCode::MissingField, format!("missing field `{field}`"), raw_id)),
        }
    };
    let client_id = || -> Result<ClientMsgId, FrameError> {
        let id = string("id")?;
        ClientMsgId::parse(id).map_err(|e| FrameError::new(ErrorCode::InvalidField, format!("`id` {e}"), None))
    };
    match kind {
        "message" => Ok(ClientFrame::Message { id: client_id()?, text: string("text")?.to_owned() }),
        "choice" => Ok(ClientFrame::Choice { id: client_id()?, value: string("value")?.to_owned() }),
        "resume" => {
            let after = match object.get("after") {
                Some(v) => v.as_u64().ok_or_else(|| {
                    FrameError::new(ErrorCode::InvalidField, "`after` must be a non-negative integer", None)
                })?,
                None => return Err(FrameError::new(ErrorCode::MissingField, "missing field `after`", None)),
            };
            let limit = match object.get("limit") {
                None | Some(Value::Null) => RESUME_DEFAULT_LIMIT,
                Some(v) => match v.as_u64() {
                    Some(n) if (1..=u64::from(RESUME_MAX_LIMIT)).contains(&n) => n as u32,
                    _ => {
                        return Err(FrameError::new(
                            ErrorCode::InvalidField,
                            format!("`limit` must be an integer from 1 to {RESUME_MAX_LIMIT}"),
                            None,
                        ));
                    }
                },
            };
            Ok(ClientFrame::Resume { after: Seq(after), limit })
        }
        "ping" => Ok(ClientFrame::Ping),
        other => Err(FrameError::new(ErrorCode::UnknownType, format!("unknown frame type `{other}`"), raw_id)),
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ServerFrame<'a> {
    Ack {
        id: &'a str,
        seq: u64,
    },
    Message {
        seq: u64,
        text: &'a str,
        origin: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        stream: Option<&'a str>,
        #[serde(skip_serializing_if = "<[Choice]>::is_empty")]
        choices: &'a [Choice],
    },
    Delta {
        stream: &'a str,
        text: &'a str,
    },
    Resumed {
        up_to: u64,
        more: bool,
    },
    Error {
        code: &'static str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
    },
    Pong,
}

fn to_json(frame: &ServerFrame<'_>) -> String {
    // Serialising these plain structs cannot fail: no maps with non-string keys, no custom impls.
    serde_json::to_string(frame)
        .unwrap_or_else(|_| r#"{"type":"error","code":"internal","message":"encoding failed"}"#.to_owned())
}

pub fn encode(out: &Outbound) -> String {
    match out {
        Outbound::Ack { client_id, seq } => to_json(&ServerFrame::Ack { id: client_id.as_str(), seq: seq.0 }),
        Outbound::Message(message) => encode_message(message),
        Outbound::Delta { stream, text } => to_json(&ServerFrame::Delta { stream: stream.as_str(), text }),
        Outbound::Error { code, message, client_id } => {
            encode_error(*code, message, client_id.as_ref().map(|c| c.as_str()))
        }
    }
}

pub fn encode_message(message: &Message) -> String {
    to_json(&ServerFrame::Message {
        seq: message.seq.0,
        text: &message.text,
        origin: message.origin.as_str(),
        id: message.client_id.as_ref().map(|c| c.as_str()),
        stream: message.stream.as_ref().map(|s| s.as_str()),
        choices: &message.choices,
    })
}

pub fn encode_error(code: ErrorCode, message: &str, id: Option<&str>) -> String {
    to_json(&ServerFrame::Error { code: code.as_str(), message, id })
}

pub fn encode_frame_error(error: &FrameError) -> String {
    encode_error(error.code, &error.message, error.id.as_deref())
}

pub fn encode_resumed(up_to: Seq, more: bool) -> String {
    to_json(&ServerFrame::Resumed { up_to: up_to.0, more })
}

pub fn encode_pong() -> String {
    to_json(&ServerFrame::Pong)
}

#[cfg(test)]
mod tests {
    use super::*;
    use twin_engine::{ConversationId, CreatorId, Origin, StreamId, Timestamp};
    use uuid::Uuid;

    fn code(text: &str) -> ErrorCode {
        decode(text).unwrap_err().code
    }

    #[test]
    fn client_frames_decode() {
        assert_eq!(
            decode(r#"{"type":"message","id":"c1","text":"hi"}"#),
            Ok(ClientFrame::Message { id: ClientMsgId::parse("c1").unwrap(), text: "hi".into() })
        );
        assert_eq!(
            decode(r#"{"type":"resume","after":3}"#),
            Ok(ClientFrame::Resume { after: Seq(3), limit: RESUME_DEFAULT_LIMIT })
        );
        assert_eq!(
            decode(r#"{"type":"resume","after":0,"limit":5}"#),
            Ok(ClientFrame::Resume { after: Seq(0), limit: 5 })
        );
        assert_eq!(decode(r#"{"type":"ping"}"#), Ok(ClientFrame::Ping));
        assert!(matches!(decode(r#"{"type":"choice","id":"c2","value":"yes"}"#), Ok(ClientFrame::Choice { .. })));
    }

    #[test]
    fn each_mistake_gets_its_code() {
        let table = [
            ("not json", ErrorCode::BadJson),
            ("[1,2]", ErrorCode::BadJson),
            (r#"{"id":"c1"}"#, ErrorCode::MissingField),
            (r#"{"type":7}"#, ErrorCode::InvalidField),
            (r#"{"type":"shout"}"#, ErrorCode::UnknownType),
            (r#"{"type":"message","id":"c1"}"#, ErrorCode::MissingField),
            (r#"{"type":"message","text":"hi"}"#, ErrorCode::MissingField),
            (r#"{"type":"message","id":"","text":"hi"}"#, ErrorCode::InvalidField),
            (r#"{"type":"message","id":"c1","text":5}"#, ErrorCode::InvalidField),
            (r#"{"type":"resume"}"#, ErrorCode::MissingField),
            (r#"{"type":"resume","after":-1}"#, ErrorCode::InvalidField),
            (r#"{"type":"resume","after":0,"limit":100000}"#, ErrorCode::InvalidField),
        ];
        for (frame, expected) in table {
            assert_eq!(code(frame), expected, "{frame}");
        }
        let big = format!(r#"{{"type":"message","id":"c1","text":"{}"}}"#, "x".repeat(MAX_FRAME_BYTES));
        assert_eq!(code(&big), ErrorCode::TooLarge);
    }

    #[test]
    fn an_error_names_the_frame_id_when_it_could_be_read() {
        assert_eq!(decode(r#"{"type":"message","id":"c9"}"#).unwrap_err().id.as_deref(), Some("c9"));
    }

    #[test]
    fn server_frames_encode_as_the_contract_says() {
        let ack = Outbound::Ack { client_id: ClientMsgId::parse("c1").unwrap(), seq: Seq(4) };
        assert_eq!(encode(&ack), r#"{"type":"ack","id":"c1","seq":4}"#);
        let message = Message {
            conversation: ConversationId(Uuid::nil()),
            creator: CreatorId(Uuid::nil()),
            seq: Seq(5),
            origin: Origin::Twin,
            text: "Hello \"you\"".into(),
            client_id: None,
            stream: Some(StreamId::parse("r4").unwrap()),
            choices: Vec::new(),
            consistency: None,
            created_at: Timestamp(0),
        };
        assert_eq!(
            encode_message(&message),
            r#"{"type":"message","seq":5,"text":"Hello \"you\"","origin":"twin","stream":"r4"}"#
        );
        assert_eq!(encode_resumed(Seq(5), false), r#"{"type":"resumed","up_to":5,"more":false}"#);
        assert_eq!(encode_pong(), r#"{"type":"pong"}"#);
        assert_eq!(
            encode_error(ErrorCode::TooLarge, "big", Some("c1")),
            r#"{"type":"error","code":"too_large","message":"big","id":"c1"}"#
        );
    }
}
