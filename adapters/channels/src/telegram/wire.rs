//! The Bot API's JSON as Telegram sends it (webhook `Update`s) and answers it (the `{ok, result}`
//! envelope). Only the fields the adapter reads are typed; unknown fields and update kinds parse.

use serde::Deserialize;
use serde_json::Value;

/// One webhook delivery. Exactly one of the optional fields is set by Telegram; kinds the adapter
/// does not handle (channel posts, inline queries, polls…) leave all of these `None`.
#[derive(Debug, Clone, Deserialize)]
pub struct Update {
    /// Increasing, and the same on every retry of a delivery: the dedup key.
    pub update_id: i64,
    #[serde(default)]
    pub message: Option<Message>,
    #[serde(default)]
    pub edited_message: Option<Message>,
    #[serde(default)]
    pub callback_query: Option<CallbackQuery>,
    #[serde(default)]
    pub my_chat_member: Option<ChatMemberUpdated>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub message_id: i64,
    /// Absent for messages sent on behalf of a channel.
    #[serde(default)]
    pub from: Option<User>,
    pub chat: Chat,
    #[serde(default)]
    pub date: i64,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub caption: Option<String>,
    /// Entities of `text`; offsets and lengths count UTF-16 code units.
    #[serde(default)]
    pub entities: Vec<MessageEntity>,
    /// Entities of `caption`; offsets and lengths count UTF-16 code units.
    #[serde(default)]
    pub caption_entities: Vec<MessageEntity>,
    #[serde(default)]
    pub reply_to_message: Option<Box<Message>>,
    // Media: only their presence (and a detail or two for the placeholder text) matters here.
    #[serde(default)]
    pub photo: Option<Value>,
    #[serde(default)]
    pub voice: Option<Value>,
    #[serde(default)]
    pub video: Option<Value>,
    #[serde(default)]
    pub video_note: Option<Value>,
    #[serde(default)]
    pub audio: Option<Value>,
    #[serde(default)]
    pub document: Option<Value>,
    #[serde(default)]
    pub sticker: Option<Value>,
    #[serde(default)]
    pub animation: Option<Value>,
    #[serde(default)]
    pub location: Option<Value>,
    #[serde(default)]
    pub contact: Option<Value>,
    #[serde(default)]
    pub poll: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: i64,
    #[serde(default)]
    pub is_bot: bool,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub language_code: Option<String>,
}

impl User {
    /// `first_name`, with `last_name` if there is one; `None` when both are blank.
    pub fn display_name(&self) -> Option<String> {
        let name = match &self.last_name {
            Some(last) if !last.trim().is_empty() => format!("{} {}", self.first_name.trim(), last.trim()),
            _ => self.first_name.trim().to_owned(),
        };
        let name = name.trim().to_owned();
        (!name.is_empty()).then_some(name)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Chat {
    pub id: i64,
    /// `private`, `group`, `supergroup` or `channel`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub username: Option<String>,
}

impl Chat {
    pub fn is_private(&self) -> bool {
        self.kind == "private"
    }

    pub fn is_group(&self) -> bool {
        matches!(self.kind.as_str(), "group" | "supergroup")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MessageEntity {
    /// `mention`, `bot_command`, `bold`, `url`…
    #[serde(rename = "type")]
    pub kind: String,
    /// In UTF-16 code units, not bytes or characters.
    pub offset: usize,
    /// In UTF-16 code units.
    pub length: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CallbackQuery {
    /// To be answered with `answerCallbackQuery`, or the user's button keeps spinning.
    pub id: String,
    pub from: User,
    /// The message with the button; absent when it is too old or was sent in inline mode.
    #[serde(default)]
    pub message: Option<Message>,
    /// The button's `callback_data`; absent for game buttons.
    #[serde(default)]
    pub data: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatMemberUpdated {
    pub chat: Chat,
    pub from: User,
    #[serde(default)]
    pub date: i64,
    pub new_chat_member: ChatMember,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatMember {
    /// `creator`, `administrator`, `member`, `restricted`, `left` or `kicked`.
    pub status: String,
}

/// Every Bot API answer: `result` when `ok`, otherwise `description` and `error_code`.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiResponse {
    pub ok: bool,
    #[serde(default)]
    pub result: Option<Value>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub error_code: Option<u16>,
    #[serde(default)]
    pub parameters: Option<ResponseParameters>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResponseParameters {
    /// Seconds to wait before the next request (with a 429).
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// The group became a supergroup with this id; the old id no longer works.
    #[serde(default)]
    pub migrate_to_chat_id: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_of_an_unknown_kind_still_parses() {
        let update: Update =
            serde_json::from_str(r#"{"update_id": 9, "inline_query": {"id": "1", "query": "x"}, "extra": 1}"#).unwrap();
        assert_eq!(update.update_id, 9);
        assert!(update.message.is_none() && update.callback_query.is_none());
    }

    #[test]
    fn display_names_join_first_and_last_name() {
        let user: User =
            serde_json::from_str(r#"{"id": 1, "is_bot": false, "first_name": "Maria", "last_name": "Keller"}"#)
                .unwrap();
        assert_eq!(user.display_name().as_deref(), Some("Maria Keller"));
        let user: User = serde_json::from_str(r#"{"id": 1, "first_name": "Lucía"}"#).unwrap();
        assert_eq!(user.display_name().as_deref(), Some("Lucía"));
    }

    #[test]
    fn an_error_envelope_carries_its_parameters() {
        let answer: ApiResponse = serde_json::from_str(
            r#"{"ok": false, "error_code": 429, "description": "Too Many Requests", "parameters": {"retry_after": 7}}"#,
        )
        .unwrap();
        assert!(!answer.ok);
        assert_eq!(answer.error_code, Some(429));
        assert_eq!(answer.parameters.unwrap().retry_after, Some(7));
    }
}
