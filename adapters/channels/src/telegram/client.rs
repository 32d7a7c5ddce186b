//! Calls to the Bot API for one creator's bot: the outbox's sends ([`ProviderClient`]) and the few
//! other methods the server needs (answering button presses, typing, the webhook, edits).
//!
//! The bot token is part of every URL, so no error built here quotes a URL or a transport error
//! with its URL, and every message is scrubbed of the token before it leaves.

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use twin_engine::channel::{ChannelKind, OutboxBody};

use super::config::TelegramConfig;
use super::render::{self, chat_id, markdown_to_html};
use super::wire::ApiResponse;
use crate::channel::{Part, ProviderClient, SendError, SentPart};
use crate::secret::Secret;

/// Per call; a send that takes longer is retried by the outbox rather than held.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// When a 429 does not say how long to wait.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// The update kinds the webhook is subscribed to: the ones `inbound` maps.
pub const ALLOWED_UPDATES: [&str; 4] = ["message", "edited_message", "callback_query", "my_chat_member"];

#[derive(Debug, Clone)]
pub struct TelegramClient {
    http: reqwest::Client,
    config: Arc<TelegramConfig>,
    timeout: Duration,
}

impl TelegramClient {
    pub fn new(http: reqwest::Client, config: Arc<TelegramConfig>) -> Self {
        Self { http, config, timeout: REQUEST_TIMEOUT }
    }

    /// The same client with another per-call timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn config(&self) -> &TelegramConfig {
        &self.config
    }

    /// Calls `method` with a JSON `body`; its `result` when Telegram answered `ok`.
    pub async fn call(&self, method: &str, body: &Value) -> Result<Value, SendError> {
        let url = format!("{}/bot{}/{method}", self.config.api_base, self.config.bot_token.expose());
        let outcome = self.call_url(&url, body).await;
        outcome.map_err(|error| redact(error, &self.config.bot_token))
    }

    async fn call_url(&self, url: &str, body: &Value) -> Result<Value, SendError> {
        let response = self.http.post(url).timeout(self.timeout).json(body).send().await.map_err(transport_error)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport_error)?;
        let answer = serde_json::from_slice::<ApiResponse>(&bytes).ok();
        match answer {
            Some(answer) if answer.ok && status.is_success() => Ok(answer.result.unwrap_or(Value::Null)),
            answer => Err(classify(status, answer)),
        }
    }

    /// Stops the spinner on the button the user pressed.
    pub async fn answer_callback_query(&self, id: &str) -> Result<(), SendError> {
        self.call("answerCallbackQuery", &json!({ "callback_query_id": id })).await.map(drop)
    }

    /// Shows `action` (`typing`) in the chat for a few seconds or until the next message.
    pub async fn send_chat_action(&self, chat: &str, action: &str) -> Result<(), SendError> {
        self.call("sendChatAction", &json!({ "chat_id": chat_id(chat), "action": action })).await.map(drop)
    }

    /// Points the bot's updates at `url`, which Telegram will call with `secret` in
    /// [`SECRET_HEADER`](super::config::SECRET_HEADER).
    pub async fn set_webhook(&self, url: &str, secret: &Secret) -> Result<(), SendError> {
        let body = json!({ "url": url, "secret_token": secret.expose(), "allowed_updates": ALLOWED_UPDATES });
        self.call("setWebhook", &body).await.map(drop)
    }

    /// The bot's username, which group chats address it by.
    pub async fn get_me(&self) -> Result<Option<String>, SendError> {
        let me = self.call("getMe", &json!({})).await?;
        Ok(me.get("username").and_then(Value::as_str).map(str::to_owned))
    }

    /// Replaces the text of a message the bot sent (formatted as [`render`] formats). Editing to the
    /// same text is not an error. The text must fit one message: an edit cannot be split.
    pub async fn edit_message_text(&self, chat: &str, message_id: &str, text: &str) -> Result<(), SendError> {
        let message_id: i64 = message_id
            .parse()
            .map_err(|_| SendError::Rejected(format!("not a Telegram message id: {message_id:?}")))?;
        let body = json!({
            "chat_id": chat_id(chat), "message_id": message_id, "text": markdown_to_html(text), "parse_mode": "HTML",
        });
        match self.call("editMessageText", &body).await {
            Err(SendError::Rejected(description)) if description.contains("message is not modified") => Ok(()),
            outcome => outcome.map(drop),
        }
    }
}

#[async_trait::async_trait]
impl ProviderClient for TelegramClient {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Telegram
    }

    fn render(&self, chat: &str, body: &OutboxBody) -> Vec<Part> {
        render::render(chat, body)
    }

    async fn send(&self, part: &Part) -> Result<SentPart, SendError> {
        let message = self.call(part.method, &part.body).await?;
        let provider_message_id = message.get("message_id").and_then(Value::as_i64).map(|id| id.to_string());
        Ok(SentPart { provider_message_id })
    }
}

/// What the outbox does with an answer that was not `ok`.
fn classify(status: StatusCode, answer: Option<ApiResponse>) -> SendError {
    let Some(answer) = answer else {
        return match status {
            StatusCode::TOO_MANY_REQUESTS => {
                SendError::RateLimited { retry_after: DEFAULT_RETRY_AFTER, whole_sender: false }
            }
            status => SendError::Transient(format!("unreadable answer from Telegram (HTTP {})", status.as_u16())),
        };
    };
    let code = answer.error_code.unwrap_or_else(|| status.as_u16());
    let description = answer.description.unwrap_or_else(|| format!("HTTP {code}"));
    let parameters = answer.parameters.unwrap_or_default();
    match code {
        429 => SendError::RateLimited {
            retry_after: parameters.retry_after.map_or(DEFAULT_RETRY_AFTER, Duration::from_secs),
            whole_sender: false,
        },
        // Blocked by the user, user deactivated, bot kicked from the group.
        403 => SendError::Unreachable(description),
        400 if let Some(chat) = parameters.migrate_to_chat_id => {
            SendError::Rejected(format!("{description} (the group is now the supergroup {chat})"))
        }
        400 if description.to_ascii_lowercase().contains("chat not found") => SendError::Unreachable(description),
        400..=499 => SendError::Rejected(description),
        _ => SendError::Transient(description),
    }
}

/// A failed request, without its URL (which holds the token) but with its causes.
fn transport_error(error: reqwest::Error) -> SendError {
    if error.is_timeout() {
        return SendError::Transient("the request to Telegram timed out".to_owned());
    }
    let error = error.without_url();
    let mut message = format!("the request to Telegram failed: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    SendError::Transient(message)
}

/// The error with the token cut out of its message, whatever put it there.
fn redact(error: SendError, token: &Secret) -> SendError {
    let scrub = |message: String| message.replace(token.expose(), "<bot token>");
    match error {
        SendError::Unreachable(message) => SendError::Unreachable(scrub(message)),
        SendError::WindowClosed(message) => SendError::WindowClosed(scrub(message)),
        SendError::Transient(message) => SendError::Transient(scrub(message)),
        SendError::Rejected(message) => SendError::Rejected(scrub(message)),
        rate_limited @ SendError::RateLimited { .. } => rate_limited,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(json: &str) -> Option<ApiResponse> {
        Some(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn answers_map_to_what_the_outbox_does_next() {
        let cases = [
            (
                StatusCode::TOO_MANY_REQUESTS,
                answer(r#"{"ok":false,"error_code":429,"description":"Too Many Requests","parameters":{"retry_after":41}}"#),
                SendError::RateLimited { retry_after: Duration::from_secs(41), whole_sender: false },
            ),
            (
                StatusCode::TOO_MANY_REQUESTS,
                answer(r#"{"ok":false,"error_code":429,"description":"Too Many Requests"}"#),
                SendError::RateLimited { retry_after: Duration::from_secs(1), whole_sender: false },
            ),
            (
                StatusCode::FORBIDDEN,
                answer(r#"{"ok":false,"error_code":403,"description":"Forbidden: user is deactivated"}"#),
                SendError::Unreachable("Forbidden: user is deactivated".into()),
            ),
            (
                StatusCode::BAD_REQUEST,
                answer(r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#),
                SendError::Unreachable("Bad Request: chat not found".into()),
            ),
            (
                StatusCode::BAD_REQUEST,
                answer(
                    r#"{"ok":false,"error_code":400,"description":"Bad Request: group chat was upgraded to a supergroup chat","parameters":{"migrate_to_chat_id":-1001234}}"#,
                ),
                SendError::Rejected(
                    "Bad Request: group chat was upgraded to a supergroup chat (the group is now the supergroup -1001234)"
                        .into(),
                ),
            ),
            (
                StatusCode::BAD_REQUEST,
                answer(r#"{"ok":false,"error_code":400,"description":"Bad Request: can't parse entities"}"#),
                SendError::Rejected("Bad Request: can't parse entities".into()),
            ),
            (
                StatusCode::UNAUTHORIZED,
                answer(r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#),
                SendError::Rejected("Unauthorized".into()),
            ),
            (
                StatusCode::BAD_GATEWAY,
                answer(r#"{"ok":false,"error_code":502,"description":"Bad Gateway"}"#),
                SendError::Transient("Bad Gateway".into()),
            ),
            (
                StatusCode::BAD_GATEWAY,
                None,
                SendError::Transient("unreadable answer from Telegram (HTTP 502)".into()),
            ),
            (
                StatusCode::TOO_MANY_REQUESTS,
                None,
                SendError::RateLimited { retry_after: Duration::from_secs(1), whole_sender: false },
            ),
        ];
        for (status, answer, expected) in cases {
            assert_eq!(classify(status, answer), expected);
        }
    }

    #[test]
    fn redaction_removes_the_token_from_every_message() {
        let token = Secret::new("123:SeCrEt");
        let error = redact(SendError::Transient("POST https://x/bot123:SeCrEt/sendMessage failed".into()), &token);
        assert_eq!(error, SendError::Transient("POST https://x/bot<bot token>/sendMessage failed".into()));
    }
}
