//! The outbound side: posts rendered parts to `{api_base}/{phone_number_id}/messages` with the
//! creator's access token and maps the Graph API's answers to what the outbox does next.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use twin_engine::channel::{ChannelKind, OutboxBody};

use super::config::WhatsAppConfig;
use super::render::{self, METHOD};
use super::wire::{ErrorEnvelope, GraphError, MarkRead, SendResponse};
use crate::channel::{Part, ProviderClient, SendError, SentPart};

/// A call that has not answered by then is retried: the Graph API answers sends in well under a
/// second, so waiting longer only holds up the outbox.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Throughput limit of the business number (130429, or a bare HTTP 429): Meta meters it per second,
/// so a short pause suffices.
pub const THROUGHPUT_RETRY: Duration = Duration::from_secs(2);
/// Account-level limits (80007, app call limit 4, spam limit 131048) are metered over longer
/// windows; retrying every two seconds would only extend them.
pub const ACCOUNT_LIMIT_RETRY: Duration = Duration::from_secs(60);
/// Pair rate limit (131056): about one message every 6 seconds to the same user.
pub const PAIR_RETRY: Duration = Duration::from_secs(6);

pub struct WhatsAppClient {
    http: reqwest::Client,
    config: Arc<WhatsAppConfig>,
}

impl WhatsAppClient {
    pub fn new(http: reqwest::Client, config: Arc<WhatsAppConfig>) -> Self {
        Self { http, config }
    }

    /// Marks a user's message as read (their blue ticks), e.g. when the twin starts answering it.
    pub fn config(&self) -> &WhatsAppConfig {
        &self.config
    }

    pub async fn mark_read(&self, message_id: &str) -> Result<(), SendError> {
        let body = MarkRead { messaging_product: "whatsapp", status: "read", message_id };
        let body = serde_json::to_value(&body).map_err(|e| SendError::Rejected(format!("unserializable: {e}")))?;
        self.post(METHOD, &body).await.map(|_| ())
    }

    fn url(&self, method: &str) -> String {
        format!("{}/{}/{}", self.config.api_base, self.config.phone_number_id, method)
    }

    /// One call; the 2xx body on success.
    async fn post(&self, method: &str, body: &serde_json::Value) -> Result<Vec<u8>, SendError> {
        let response = self
            .http
            .post(self.url(method))
            .bearer_auth(self.config.access_token.expose())
            .timeout(REQUEST_TIMEOUT)
            .json(body)
            .send()
            .await
            .map_err(|e| SendError::Transient(self.redact(&network_error(&e))))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let bytes = response.bytes().await.map_err(|e| SendError::Transient(self.redact(&network_error(&e))))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let graph = serde_json::from_slice::<ErrorEnvelope>(&bytes).ok().map(|envelope| envelope.error);
        let error = classify(status, graph.as_ref(), retry_after);
        tracing::warn!(
            status = status.as_u16(),
            code = graph.as_ref().map(|g| g.code),
            fbtrace_id = graph.as_ref().and_then(|g| g.fbtrace_id.as_deref()),
            "whatsapp send refused"
        );
        Err(self.redact_error(error))
    }

    /// The token is sent in a header and neither reqwest nor Graph echo it, but an error string ends
    /// up in logs and the database: make sure of it.
    fn redact(&self, text: &str) -> String {
        let token = self.config.access_token.expose();
        if token.is_empty() { text.to_owned() } else { text.replace(token, "<redacted>") }
    }

    fn redact_error(&self, error: SendError) -> SendError {
        match error {
            SendError::Unreachable(m) => SendError::Unreachable(self.redact(&m)),
            SendError::WindowClosed(m) => SendError::WindowClosed(self.redact(&m)),
            SendError::Transient(m) => SendError::Transient(self.redact(&m)),
            SendError::Rejected(m) => SendError::Rejected(self.redact(&m)),
            limited @ SendError::RateLimited { .. } => limited,
        }
    }
}

#[async_trait::async_trait]
impl ProviderClient for WhatsAppClient {
    fn kind(&self) -> ChannelKind {
        ChannelKind::WhatsApp
    }

    fn render(&self, chat: &str, body: &OutboxBody) -> Vec<Part> {
        render::render(chat, body)
    }

    async fn send(&self, part: &Part) -> Result<SentPart, SendError> {
        let bytes = self.post(part.method, &part.body).await?;
        // The message was accepted: an answer we cannot read must not make the outbox send it twice.
        let provider_message_id = match serde_json::from_slice::<SendResponse>(&bytes) {
            Ok(response) => response.messages.into_iter().next().map(|m| m.id),
            Err(error) => {
                tracing::warn!(%error, "whatsapp accepted a message with an unreadable answer");
                None
            }
        };
        Ok(SentPart { provider_message_id })
    }
}

/// What the outbox does after a refused call, by the Graph error code first (Meta advises building
/// on codes, not titles) and the HTTP status otherwise:
///
/// - Rate limits: 130429 (number throughput), HTTP 429 → whole number, [`THROUGHPUT_RETRY`] (or the
///   `Retry-After` given); 80007 (account), 4 (app calls), 131048 (spam limit) → whole number,
///   [`ACCOUNT_LIMIT_RETRY`]; 131056 (pair limit) → this user only, [`PAIR_RETRY`].
/// - 131047 (re-engagement: more than 24 hours since the user wrote) → window closed.
/// - Unreachable: 131026 (undeliverable: not a WhatsApp number, terms not accepted, an old app;
///   Meta reports a block by the user this way too), 131030 (not in a test number's allowed list).
/// - Transient: 1 (unknown, possibly a server error), 2 (service temporarily unavailable), 131000
///   (something went wrong), 131016 (service overloaded), 133004 (server temporarily unavailable),
///   any 5xx, an unreadable answer that is not 4xx.
/// - Everything else is rejected for good, notably 190/0/HTTP 401 (bad or expired token), 3/10/2xx
///   (permissions), 100/131008/131009 (bad parameters), 131049 (Meta withheld a marketing message
///   for ecosystem health), 131050 (the user stopped marketing messages) and 130472 (experiment):
///   the user stays reachable for ordinary replies, so none of these marks them unreachable.
pub fn classify(status: StatusCode, error: Option<&GraphError>, retry_after: Option<Duration>) -> SendError {
    let describe = || match error {
        Some(e) => {
            let details = e.error_data.as_ref().and_then(|d| d.details.as_deref());
            match details {
                Some(details) => format!("HTTP {} code {}: {}: {details}", status.as_u16(), e.code, e.message),
                None => format!("HTTP {} code {}: {}", status.as_u16(), e.code, e.message),
            }
        }
        None => format!("HTTP {}", status.as_u16()),
    };
    let whole =
        |after: Duration| SendError::RateLimited { retry_after: retry_after.unwrap_or(after), whole_sender: true };
    match error.map(|e| e.code) {
        Some(130429) => whole(THROUGHPUT_RETRY),
        Some(80007 | 4 | 131048) => whole(ACCOUNT_LIMIT_RETRY),
        Some(131056) => SendError::RateLimited { retry_after: retry_after.unwrap_or(PAIR_RETRY), whole_sender: false },
        Some(131047) => SendError::WindowClosed(describe()),
        Some(131026 | 131030) => SendError::Unreachable(describe()),
        Some(1 | 2 | 131000 | 131016 | 133004) => SendError::Transient(describe()),
        _ if status == StatusCode::TOO_MANY_REQUESTS => whole(THROUGHPUT_RETRY),
        _ if status.is_server_error() => SendError::Transient(describe()),
        _ if status.is_client_error() => SendError::Rejected(describe()),
        // A 1xx/3xx answer to a POST: not the Graph API speaking (a proxy?); try again later.
        _ => SendError::Transient(describe()),
    }
}

/// `Retry-After` in seconds, when the answer has one.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok()?;
    Some(Duration::from_secs(seconds))
}

/// A failed call in words, without its URL's query (there is none, but the URL is not news either).
fn network_error(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut text = format!("{kind}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::whatsapp::wire::ErrorData;

    fn graph(code: i64) -> GraphError {
        GraphError {
            message: format!("(#{code}) something"),
            code,
            error_data: Some(ErrorData { details: Some("why".into()) }),
            ..GraphError::default()
        }
    }

    fn by_code(status: u16, code: i64) -> SendError {
        classify(StatusCode::from_u16(status).unwrap(), Some(&graph(code)), None)
    }

    #[test]
    fn rate_limits_say_how_long_and_whose() {
        assert_eq!(by_code(400, 130429), SendError::RateLimited { retry_after: THROUGHPUT_RETRY, whole_sender: true });
        assert_eq!(
            by_code(400, 80007),
            SendError::RateLimited { retry_after: ACCOUNT_LIMIT_RETRY, whole_sender: true }
        );
        assert_eq!(by_code(400, 131056), SendError::RateLimited { retry_after: PAIR_RETRY, whole_sender: false });
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, None, Some(Duration::from_secs(9))),
            SendError::RateLimited { retry_after: Duration::from_secs(9), whole_sender: true }
        );
    }

    #[test]
    fn codes_map_to_what_the_outbox_does_next() {
        assert_eq!(
            by_code(400, 131047),
            SendError::WindowClosed("HTTP 400 code 131047: (#131047) something: why".into())
        );
        assert!(matches!(by_code(400, 131026), SendError::Unreachable(_)));
        assert!(matches!(by_code(400, 131030), SendError::Unreachable(_)));
        assert!(matches!(by_code(401, 190), SendError::Rejected(_)));
        assert!(matches!(by_code(400, 100), SendError::Rejected(_)));
        assert!(matches!(by_code(400, 131049), SendError::Rejected(_)));
        assert!(matches!(by_code(500, 131000), SendError::Transient(_)));
        assert!(matches!(by_code(503, 131016), SendError::Transient(_)));
        assert!(matches!(by_code(400, 2), SendError::Transient(_)));
        assert!(matches!(classify(StatusCode::BAD_GATEWAY, None, None), SendError::Transient(_)));
        assert_eq!(classify(StatusCode::UNAUTHORIZED, None, None), SendError::Rejected("HTTP 401".into()));
        assert!(matches!(classify(StatusCode::NOT_FOUND, None, None), SendError::Rejected(_)));
    }
}
