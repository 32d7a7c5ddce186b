//! The Cloud API's JSON as the adapter reads and writes it: the webhook notification, the send
//! request and response, and the Graph error envelope. Every type tolerates fields it does not name
//! (Meta adds fields without notice), and every field that may be absent defaults.

use serde::{Deserialize, Serialize};

/// One webhook POST. A single delivery can batch several entries, changes, messages and statuses.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Notification {
    /// `whatsapp_business_account` for the WhatsApp webhooks.
    #[serde(default)]
    pub object: String,
    pub entry: Vec<Entry>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Entry {
    /// The WhatsApp Business Account id.
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Change {
    /// `messages` for messages and statuses; other subscribed fields carry other shapes in `value`.
    #[serde(default)]
    pub field: String,
    #[serde(default)]
    pub value: Value,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Value {
    #[serde(default)]
    pub messaging_product: Option<String>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub contacts: Vec<Contact>,
    #[serde(default)]
    pub messages: Vec<Message>,
    #[serde(default)]
    pub statuses: Vec<Status>,
    /// Errors about the change itself (not one message), e.g. an unsupported webhook.
    #[serde(default)]
    pub errors: Vec<ErrorDetail>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub display_phone_number: String,
    /// The business number the change is for: how a webhook is routed to its creator.
    #[serde(default)]
    pub phone_number_id: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Contact {
    #[serde(default)]
    pub profile: Option<Profile>,
    #[serde(default)]
    pub wa_id: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Profile {
    #[serde(default)]
    pub name: Option<String>,
}

/// A message a user sent. Exactly one of the content fields is set, named by `type`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Message {
    /// The user's number (`wa_id`).
    #[serde(default)]
    pub from: String,
    /// The `wamid`: unique per message, the dedup key.
    pub id: String,
    /// Unix seconds, as a string.
    #[serde(default)]
    pub timestamp: String,
    /// `text`, `interactive`, `button`, `image`, `audio`, `video`, `document`, `sticker`,
    /// `location`, `contacts`, `reaction`, or `unsupported`/others Meta adds.
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub text: Option<Text>,
    #[serde(default)]
    pub interactive: Option<InteractiveReply>,
    /// A template's quick-reply button was pressed.
    #[serde(default)]
    pub button: Option<ButtonReply>,
    #[serde(default)]
    pub image: Option<Media>,
    #[serde(default)]
    pub audio: Option<Media>,
    #[serde(default)]
    pub video: Option<Media>,
    #[serde(default)]
    pub document: Option<Media>,
    #[serde(default)]
    pub sticker: Option<Media>,
    #[serde(default)]
    pub location: Option<Location>,
    /// Shared contact cards; only their count matters to the twin.
    #[serde(default)]
    pub contacts: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    pub reaction: Option<Reaction>,
    /// Set when the user replied to (quoted) a message.
    #[serde(default)]
    pub context: Option<Context>,
    #[serde(default)]
    pub errors: Vec<ErrorDetail>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Text {
    #[serde(default)]
    pub body: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct InteractiveReply {
    /// `button_reply` or `list_reply` (or `nfm_reply` for flows, which the twin does not send).
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub button_reply: Option<Reply>,
    #[serde(default)]
    pub list_reply: Option<Reply>,
}

/// A pressed reply button or picked list row: `id` is what the render put there.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Reply {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ButtonReply {
    #[serde(default)]
    pub payload: String,
    #[serde(default)]
    pub text: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Media {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub caption: Option<String>,
    #[serde(default)]
    pub mime_type: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub filename: Option<String>,
    /// Audio: a voice note rather than an audio file.
    #[serde(default)]
    pub voice: Option<bool>,
    #[serde(default)]
    pub animated: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Location {
    #[serde(default)]
    pub latitude: Option<f64>,
    #[serde(default)]
    pub longitude: Option<f64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Reaction {
    #[serde(default)]
    pub message_id: String,
    /// Absent or empty when the user removed their reaction.
    #[serde(default)]
    pub emoji: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Context {
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
}

/// What became of a message the business sent.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Status {
    /// The `wamid` the send returned.
    pub id: String,
    /// `sent`, `delivered`, `read`, `failed` (and `deleted`, `warning` that the twin ignores).
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub timestamp: String,
    #[serde(default)]
    pub recipient_id: String,
    #[serde(default)]
    pub errors: Vec<ErrorDetail>,
}

/// An error as webhooks report it (and inside the Graph error envelope).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub error_data: Option<ErrorData>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorData {
    #[serde(default)]
    pub details: Option<String>,
}

/// `POST /{phone_number_id}/messages`. `content` is flattened: `{"type": "text", "text": {…}}` etc.
#[derive(Debug, Clone, Serialize)]
pub struct SendRequest {
    pub messaging_product: &'static str,
    pub recipient_type: &'static str,
    pub to: String,
    #[serde(flatten)]
    pub content: SendContent,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SendContent {
    Text { text: SendText },
    Interactive { interactive: Interactive },
    Template { template: Template },
}

#[derive(Debug, Clone, Serialize)]
pub struct SendText {
    /// Off: a link in a twin's reply should not turn into a large card.
    pub preview_url: bool,
    pub body: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Interactive {
    /// Up to 3 reply buttons.
    Button { body: InteractiveBody, action: ButtonAction },
    /// Up to 10 rows behind one button.
    List { body: InteractiveBody, action: ListAction },
}

#[derive(Debug, Clone, Serialize)]
pub struct InteractiveBody {
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ButtonAction {
    pub buttons: Vec<Button>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Button {
    /// Always `reply`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub reply: ButtonSpec,
}

#[derive(Debug, Clone, Serialize)]
pub struct ButtonSpec {
    pub id: String,
    pub title: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListAction {
    /// The label of the button that opens the list.
    pub button: String,
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Section {
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub id: String,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Template {
    pub name: String,
    pub language: Language,
}

#[derive(Debug, Clone, Serialize)]
pub struct Language {
    pub code: String,
}

/// `POST /{phone_number_id}/messages` with `status: read`: the blue ticks for a user's message.
#[derive(Debug, Clone, Serialize)]
pub struct MarkRead<'a> {
    pub messaging_product: &'static str,
    pub status: &'static str,
    pub message_id: &'a str,
}

/// A 2xx answer to a send.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SendResponse {
    #[serde(default)]
    pub messaging_product: Option<String>,
    #[serde(default)]
    pub contacts: Vec<SentContact>,
    #[serde(default)]
    pub messages: Vec<SentMessage>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SentContact {
    #[serde(default)]
    pub input: String,
    #[serde(default)]
    pub wa_id: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SentMessage {
    pub id: String,
}

/// A non-2xx answer: `{"error": {…}}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorEnvelope {
    pub error: GraphError,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct GraphError {
    #[serde(default)]
    pub message: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub error_subcode: Option<i64>,
    #[serde(default)]
    pub error_data: Option<ErrorData>,
    #[serde(default)]
    pub fbtrace_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_send_serializes_with_its_type_beside_the_content() {
        let request = SendRequest {
            messaging_product: "whatsapp",
            recipient_type: "individual",
            to: "4915112345678".into(),
            content: SendContent::Text { text: SendText { preview_url: false, body: "Hi".into() } },
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            serde_json::json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "4915112345678",
                "type": "text",
                "text": {"preview_url": false, "body": "Hi"}
            })
        );
    }

    #[test]
    fn unknown_fields_are_ignored_and_absent_ones_default() {
        let message: Message =
            serde_json::from_str(r#"{"id": "wamid.1", "type": "poll", "poll": {"x": 1}, "brand_new": true}"#).unwrap();
        assert_eq!(message.id, "wamid.1");
        assert_eq!(message.kind, "poll");
        assert!(message.text.is_none());
        assert!(message.from.is_empty());
    }

    #[test]
    fn the_graph_error_envelope_parses_with_its_details() {
        let envelope: ErrorEnvelope = serde_json::from_str(
            r#"{"error": {"message": "(#131047) Re-engagement message", "type": "OAuthException", "code": 131047,
                "error_subcode": 2494010, "error_data": {"messaging_product": "whatsapp", "details": "24h"},
                "fbtrace_id": "Ab"}}"#,
        )
        .unwrap();
        assert_eq!(envelope.error.code, 131047);
        assert_eq!(envelope.error.error_subcode, Some(2494010));
        assert_eq!(envelope.error.error_data.and_then(|d| d.details).as_deref(), Some("24h"));
    }
}
