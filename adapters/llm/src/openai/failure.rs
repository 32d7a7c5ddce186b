//! Why a call to an OpenAI-compatible server failed, and what to do about it: retry, wait out a
//! rate limit, or give up. Shared by chat and embeddings.

use std::time::Duration;

use rand::Rng as _;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::config::RetryPolicy;
use super::wire::ErrorBody;

/// Used when a rate limit names no wait.
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Failure {
    /// 429, or an error object saying so; `wait` as the server asked.
    RateLimited { wait: Duration, message: String },
    /// Connect errors, timeouts, 5xx, a stream cut short: worth another attempt.
    Unavailable(String),
    /// 4xx other than 429: the same request would fail again.
    Refused(String),
}

impl Failure {
    /// Whether this says the provider is down (for the circuit breaker), rather than that it
    /// answered with a no.
    pub fn is_outage(&self) -> bool {
        matches!(self, Failure::Unavailable(_))
    }

    /// A short label for metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            Failure::RateLimited { .. } => "rate_limited",
            Failure::Unavailable(_) => "unavailable",
            Failure::Refused(_) => "refused",
        }
    }

    /// The failure of a non-success HTTP response.
    pub fn from_status(status: StatusCode, headers: &HeaderMap, body: &str) -> Self {
        let message = error_message(status, body);
        if status == StatusCode::TOO_MANY_REQUESTS {
            let wait = retry_after(headers).or_else(|| wait_in_message(&message)).unwrap_or(DEFAULT_RATE_LIMIT_WAIT);
            return Failure::RateLimited { wait, message };
        }
        if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
            return Failure::Unavailable(message);
        }
        Failure::Refused(message)
    }

    /// The failure an `{"error": …}` object in a stream stands for. Servers put no status on it,
    /// so its `type`/`code` decide; an unknown error is taken for a server fault.
    pub fn from_error_object(error: &ErrorBody) -> Self {
        let message = error.message();
        let kind = error.kind().to_ascii_lowercase();
        if kind.contains("rate_limit") || kind.contains("rate limit") {
            let wait = wait_in_message(&message).unwrap_or(DEFAULT_RATE_LIMIT_WAIT);
            return Failure::RateLimited { wait, message };
        }
        if kind.contains("invalid_request") || kind.contains("content_filter") || kind.contains("content_policy") {
            return Failure::Refused(message);
        }
        Failure::Unavailable(message)
    }

    pub fn from_transport(error: &reqwest::Error) -> Self {
        // `reqwest::Error`'s display leaves out the cause (connection refused, …): walk the chain.
        let mut message = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Failure::Unavailable(message)
    }
}

impl Failure {
    /// The port's error, naming the provider.
    pub fn into_llm(self, provider: &str) -> twin_engine::ports::LlmError {
        use twin_engine::ports::LlmError;
        match self {
            Failure::RateLimited { wait, .. } => LlmError::RateLimited { retry_after_ms: millis(wait) },
            Failure::Unavailable(message) => LlmError::Unavailable(format!("{provider}: {message}")),
            Failure::Refused(message) => LlmError::Refused(format!("{provider}: {message}")),
        }
    }

    pub fn into_embed(self, provider: &str) -> twin_engine::ports::EmbedError {
        use twin_engine::ports::EmbedError;
        match self {
            Failure::RateLimited { wait, .. } => EmbedError::RateLimited { retry_after_ms: millis(wait) },
            Failure::Unavailable(message) => EmbedError::Unavailable(format!("{provider}: {message}")),
            Failure::Refused(message) => EmbedError::Refused(format!("{provider}: {message}")),
        }
    }

    /// The message, for logs.
    pub fn message(&self) -> &str {
        match self {
            Failure::RateLimited { message, .. } | Failure::Unavailable(message) | Failure::Refused(message) => message,
        }
    }

    /// Whether another attempt may help under `policy`: outages always, a rate limit only when the
    /// wait it asks for is short.
    pub fn is_retryable(&self, policy: &RetryPolicy) -> bool {
        match self {
            Failure::Unavailable(_) => true,
            Failure::RateLimited { wait, .. } => *wait <= policy.max_rate_limit_wait,
            Failure::Refused(_) => false,
        }
    }

    /// The pause before retry number `retry`: what a rate limit asked for, else the backoff.
    pub fn pause(&self, policy: &RetryPolicy, retry: u32) -> Duration {
        match self {
            Failure::RateLimited { wait, .. } => *wait,
            _ => backoff(policy, retry),
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The server's own words when the body is an OpenAI error object, else the status and the start
/// of the body.
fn error_message(status: StatusCode, body: &str) -> String {
    match serde_json::from_str::<super::wire::ErrorEnvelope>(body) {
        Ok(super::wire::ErrorEnvelope { error: Some(error) }) => format!("{status}: {}", error.body().message()),
        _ => {
            let body = body.trim();
            let cut = body.char_indices().nth(300).map_or(body.len(), |(i, _)| i);
            if body.is_empty() { status.to_string() } else { format!("{status}: {}", &body[..cut]) }
        }
    }
}

/// `retry-after-ms` (OpenAI) or `Retry-After` in seconds. An HTTP date is not honoured (no model
/// server sends one), the body or the default applies instead.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return duration_from_secs(ms / 1000.0);
    }
    header("retry-after").and_then(|v| v.parse::<f64>().ok()).and_then(duration_from_secs)
}

/// "… Please try again in 385ms." / "… in 1.2s." / "… in 20 seconds", as OpenAI words it.
fn wait_in_message(message: &str) -> Option<Duration> {
    let lower = message.to_ascii_lowercase();
    let rest = &lower[lower.find("try again in")? + "try again in".len()..];
    let rest = rest.trim_start();
    let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    let number: f64 = rest[..number_end].trim_end_matches('.').parse().ok()?;
    let unit = rest[number_end..].trim_start();
    if unit.starts_with("ms") || unit.starts_with("millisecond") {
        duration_from_secs(number / 1000.0)
    } else if unit.starts_with('s') {
        duration_from_secs(number)
    } else if unit.starts_with('m') {
        duration_from_secs(number * 60.0)
    } else {
        None
    }
}

fn duration_from_secs(secs: f64) -> Option<Duration> {
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// The pause before retry number `retry` (from 0): exponential, capped, with jitter so callers
/// that failed together do not come back together. Between half and all of the nominal pause.
pub(crate) fn backoff(policy: &RetryPolicy, retry: u32) -> Duration {
    let nominal = policy.backoff.saturating_mul(2u32.saturating_pow(retry.min(16))).min(policy.max_backoff);
    nominal.mul_f64(rand::rng().random_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    const RATE_LIMIT_BODY: &str = include_str!("../../tests/fixtures/openai_error_429_rate_limit.json");

    #[test]
    fn a_429_waits_as_the_retry_after_header_says() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("2"));
        let failure = Failure::from_status(StatusCode::TOO_MANY_REQUESTS, &headers, RATE_LIMIT_BODY);
        let Failure::RateLimited { wait, message } = failure else { panic!("not rate limited: {failure:?}") };
        assert_eq!(wait, Duration::from_secs(2));
        assert!(message.contains("Rate limit reached for gpt-4o-mini"), "{message}");
    }

    #[test]
    fn a_429_without_a_header_waits_as_the_body_says() {
        let failure = Failure::from_status(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), RATE_LIMIT_BODY);
        assert!(matches!(failure, Failure::RateLimited { wait, .. } if wait == Duration::from_millis(385)));
    }

    #[test]
    fn statuses_map_to_retry_or_refuse() {
        let headers = HeaderMap::new();
        for status in [500, 502, 503, 504, 408] {
            let status = StatusCode::from_u16(status).expect("a status");
            assert!(matches!(Failure::from_status(status, &headers, "oops"), Failure::Unavailable(_)), "{status}");
        }
        for status in [400, 401, 403, 404, 422] {
            let status = StatusCode::from_u16(status).expect("a status");
            assert!(matches!(Failure::from_status(status, &headers, ""), Failure::Refused(_)), "{status}");
        }
    }

    #[test]
    fn waits_are_read_from_openai_wording() {
        assert_eq!(wait_in_message("Please try again in 1.5s."), Some(Duration::from_millis(1500)));
        assert_eq!(wait_in_message("Please try again in 20 seconds"), Some(Duration::from_secs(20)));
        assert_eq!(wait_in_message("try again later"), None);
    }

    #[test]
    fn backoff_grows_and_stays_under_the_cap() {
        let policy = RetryPolicy {
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            ..RetryPolicy::default()
        };
        assert!(backoff(&policy, 0) <= Duration::from_millis(100));
        assert!(backoff(&policy, 1) >= Duration::from_millis(100));
        assert!(backoff(&policy, 10) <= Duration::from_millis(300));
    }
}
