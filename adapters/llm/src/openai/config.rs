//! Settings of the OpenAI-compatible adapters, one struct per adapter. The api fills them from its
//! own configuration; every field has a default a local Ollama works with.

use std::fmt;
use std::time::Duration;

/// A bearer token. Never printed: `Debug` shows that a key is set, not the key.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// Which request field carries the reply's token limit. OpenAI's current API wants
/// `max_completion_tokens` (reasoning models refuse `max_tokens`); older compatible servers only
/// know `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaxTokensField {
    #[default]
    MaxTokens,
    MaxCompletionTokens,
}

/// How often and how patiently a request is retried before anything reached the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `max_retries + 1` attempts at most).
    pub max_retries: u32,
    /// The first backoff; doubled per retry, capped at `max_backoff`, with jitter.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// A rate limit asking to wait longer than this is returned to the caller instead of waited out.
    pub max_rate_limit_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(4),
            max_rate_limit_wait: Duration::from_secs(10),
        }
    }
}

/// An OpenAI-compatible chat server (OpenAI, Ollama, vLLM, llama.cpp).
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// Names the provider in logs and metrics (`provider` label), e.g. `ollama`.
    pub name: String,
    /// The API root, e.g. `http://localhost:11434/v1`; `/chat/completions` is appended.
    pub base_url: String,
    /// The model used when the creator names none.
    pub model: String,
    pub api_key: Option<ApiKey>,
    /// The temperature used when the creator sets none; `None` leaves it to the server.
    pub temperature: Option<f32>,
    /// The reply's token limit when the creator sets none.
    pub max_reply_tokens: u32,
    pub max_tokens_field: MaxTokensField,
    /// The model's context size when the creator sets none; the prompt is fitted into it.
    pub context_tokens: u32,
    /// Ask for a final usage chunk (`stream_options.include_usage`). Dropped by itself for the rest
    /// of the process when a server refuses it.
    pub include_usage: bool,
    pub connect_timeout: Duration,
    /// From sending the request to the first text of the reply, per attempt.
    pub first_token_timeout: Duration,
    /// The longest silence between two chunks once the reply is streaming.
    pub idle_timeout: Duration,
    pub retry: RetryPolicy,
    /// Consecutive failed requests (each counted once, after its retries) that open the circuit.
    pub breaker_threshold: u32,
    /// How long an open circuit fails fast before letting a probe through.
    pub breaker_cool_down: Duration,
}

impl OpenAiConfig {
    /// A config with the defaults for everything but the server and the model.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            name: "openai".to_owned(),
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            temperature: None,
            max_reply_tokens: 1024,
            max_tokens_field: MaxTokensField::default(),
            context_tokens: 8192,
            include_usage: true,
            connect_timeout: Duration::from_secs(5),
            first_token_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            breaker_threshold: 5,
            breaker_cool_down: Duration::from_secs(30),
        }
    }
}

/// An OpenAI-compatible embeddings endpoint.
#[derive(Debug, Clone)]
pub struct EmbedConfig {
    /// Names the provider in logs and metrics.
    pub name: String,
    /// The API root; `/embeddings` is appended.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<ApiKey>,
    /// Sent as `dimensions` for models that can shorten their vectors; `None` takes the model's.
    pub dimensions: Option<usize>,
    /// The most texts per request.
    pub max_batch: usize,
    pub connect_timeout: Duration,
    /// For a whole request, response included.
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
}

impl EmbedConfig {
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            name: "openai".to_owned(),
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            dimensions: None,
            max_batch: 32,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

/// `base` with `path` appended, whether or not `base` ends with a slash.
pub(crate) fn endpoint(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
}
