//! Replies from an OpenAI-compatible chat server (`POST {base}/chat/completions`, streamed as
//! server-sent events), behind a circuit breaker. The conversation's reply task calls
//! [`OpenAiChat::reply`] through the [`Llm`] port.
//!
//! A small client over reqwest with our own SSE decoder, not async-openai: its typed chunks fail
//! on servers that leave out `id`/`created`/`model`, and with its `byot` escape hatch we would be
//! parsing `serde_json::Value`s ourselves anyway, while still not seeing the status, headers and
//! timing that the retry rules below need. Those need, per attempt: the HTTP status and
//! `Retry-After`, a deadline for the first text (not just for the headers), an idle timeout between
//! chunks, and error objects sent as SSE data.
//!
//! Until the first text arrives nothing has reached the caller, so failures are retried (outages
//! with exponential backoff and jitter, short rate limits after the wait they ask for). Once text
//! was yielded a failure ends the stream with an `Err` and is never retried: the caller would see
//! the reply twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::{StreamExt as _, TryStreamExt as _};
use reqwest::header::CONTENT_TYPE;
use tracing::{debug, info, warn};
use twin_engine::ports::{Llm, LlmError, ReplyStream};
use twin_engine::prompt::{self, ReplyRequest, TokenBudget};

use super::config::{MaxTokensField, OpenAiConfig, endpoint};
use super::failure::Failure;
use super::sse::{SseDecoder, SseEvent};
use super::wire::{ChatChunk, ChatRequest, StreamOptions, Usage};
use crate::breaker::CircuitBreaker;
use crate::telemetry;

/// A chat model on an OpenAI-compatible server. Cheap to clone; clones share the connection pool
/// and the circuit breaker.
#[derive(Clone)]
pub struct OpenAiChat {
    inner: Arc<Inner>,
}

struct Inner {
    config: OpenAiConfig,
    /// `{base_url}/chat/completions`.
    url: String,
    http: reqwest::Client,
    breaker: CircuitBreaker,
    /// Set when the server refused `stream_options`; from then on it is left out.
    usage_refused: AtomicBool,
}

impl std::fmt::Debug for OpenAiChat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiChat").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl OpenAiChat {
    /// A client for `config`. Fails only when the HTTP client cannot be built (TLS set-up).
    pub fn new(config: OpenAiConfig) -> Result<Self, LlmError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| LlmError::Unavailable(format!("{}: cannot build an HTTP client: {e}", config.name)))?;
        let breaker = CircuitBreaker::new(config.breaker_threshold, config.breaker_cool_down);
        let url = endpoint(&config.base_url, "chat/completions");
        Ok(Self { inner: Arc::new(Inner { config, url, http, breaker, usage_refused: AtomicBool::new(false) }) })
    }

    pub fn config(&self) -> &OpenAiConfig {
        &self.inner.config
    }

    /// The provider's circuit breaker, for health reports.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.inner.breaker
    }
}

#[async_trait::async_trait]
impl Llm for OpenAiChat {
    async fn reply(&self, request: ReplyRequest) -> Result<ReplyStream, LlmError> {
        let inner = &self.inner;
        let config = &inner.config;
        let provider = config.name.as_str();
        if let Err(wait) = inner.breaker.try_acquire(Instant::now()) {
            telemetry::request(provider, "circuit_open");
            return Err(LlmError::Unavailable(format!(
                "{provider}: circuit open after repeated failures; next try in {} ms",
                wait.as_millis()
            )));
        }

        let settings = &request.model;
        let model = settings.model.clone().unwrap_or_else(|| config.model.clone());
        let reply_tokens = settings.max_reply_tokens.unwrap_or(config.max_reply_tokens);
        let budget = TokenBudget {
            context: settings.context_tokens.unwrap_or(config.context_tokens) as usize,
            reply: reply_tokens as usize,
        };
        let messages = prompt::assemble(&request, budget);
        let temperature = settings.temperature.or(config.temperature);

        let started = Instant::now();
        let mut retry = 0;
        loop {
            let include_usage = config.include_usage && !inner.usage_refused.load(Ordering::Relaxed);
            let body = ChatRequest {
                model: &model,
                messages: &messages,
                stream: true,
                stream_options: include_usage.then_some(StreamOptions { include_usage: true }),
                temperature,
                max_tokens: (config.max_tokens_field == MaxTokensField::MaxTokens).then_some(reply_tokens),
                max_completion_tokens: (config.max_tokens_field == MaxTokensField::MaxCompletionTokens)
                    .then_some(reply_tokens),
            };
            let failure = match inner.attempt(&body).await {
                Ok(opened) => {
                    inner.breaker.record_success();
                    let first_token = started.elapsed();
                    if opened.first.is_some() {
                        telemetry::first_token(provider, first_token);
                    }
                    debug!(
                        provider,
                        model = %model,
                        first_token_ms = first_token.as_millis() as u64,
                        retries = retry,
                        "reply streaming"
                    );
                    return Ok(opened.into_stream(Arc::clone(&self.inner), model));
                }
                Err(failure) => failure,
            };
            if include_usage && refuses_stream_options(&failure) {
                // Not a retry: the request was wrong for this server, not the server down.
                warn!(provider, error = failure.message(), "the server refuses stream_options; asking without usage");
                inner.usage_refused.store(true, Ordering::Relaxed);
                continue;
            }
            if failure.is_retryable(&config.retry) && retry < config.retry.max_retries {
                let pause = failure.pause(&config.retry, retry);
                warn!(
                    provider,
                    model = %model,
                    retry = retry + 1,
                    pause_ms = pause.as_millis() as u64,
                    error = failure.message(),
                    "reply failed before its first text; retrying"
                );
                tokio::time::sleep(pause).await;
                retry += 1;
                continue;
            }
            if failure.is_outage() {
                inner.breaker.record_failure(Instant::now());
            } else {
                inner.breaker.record_success();
            }
            telemetry::request(provider, failure.outcome());
            warn!(provider, model = %model, retries = retry, error = failure.message(), "reply failed");
            return Err(failure.into_llm(provider));
        }
    }
}

/// A 400 naming `stream_options`: servers that predate it refuse the whole request.
fn refuses_stream_options(failure: &Failure) -> bool {
    matches!(failure, Failure::Refused(message) if message.to_ascii_lowercase().contains("stream_options"))
}

impl Inner {
    /// One request, up to its first text (or its end, for an empty reply), within the first-token
    /// timeout.
    async fn attempt(&self, body: &ChatRequest<'_>) -> Result<Opened, Failure> {
        let deadline = tokio::time::Instant::now() + self.config.first_token_timeout;
        let too_slow =
            || Failure::Unavailable(format!("no text within {} ms", self.config.first_token_timeout.as_millis()));
        let mut builder = self.http.post(&self.url).json(body);
        if let Some(key) = &self.config.api_key {
            builder = builder.bearer_auth(key.expose());
        }
        let response = tokio::time::timeout_at(deadline, builder.send())
            .await
            .map_err(|_| too_slow())?
            .map_err(|e| Failure::from_transport(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        if !status.is_success() {
            let text = tokio::time::timeout_at(deadline, response.text()).await.ok().and_then(Result::ok);
            return Err(Failure::from_status(status, &headers, &text.unwrap_or_default()));
        }

        let is_json =
            headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
        let mut reader = if is_json {
            // A server that ignored `stream: true` sends the whole completion at once.
            let bytes = tokio::time::timeout_at(deadline, response.bytes())
                .await
                .map_err(|_| too_slow())?
                .map_err(|e| Failure::from_transport(&e))?;
            let data = String::from_utf8_lossy(&bytes).into_owned();
            let events = vec![SseEvent { event: None, data }, SseEvent { event: None, data: "[DONE]".to_owned() }];
            ChunkReader::new(stream::empty().boxed(), events)
        } else {
            ChunkReader::new(response.bytes_stream().boxed(), Vec::new())
        };

        match tokio::time::timeout_at(deadline, reader.step()).await {
            Err(_) => Err(too_slow()),
            Ok(Err(failure)) => Err(failure),
            Ok(Ok(Step::Text(text))) => Ok(Opened { reader, first: Some(text), ended: false }),
            Ok(Ok(Step::Done)) => Ok(Opened { reader, first: None, ended: true }),
            Ok(Ok(Step::Eof)) if reader.finish_reason.is_some() => Ok(Opened { reader, first: None, ended: true }),
            Ok(Ok(Step::Eof)) => Err(Failure::Unavailable("the reply was cut short before any text".to_owned())),
        }
    }
}

/// A request that got its first text (or ended properly without any).
struct Opened {
    reader: ChunkReader,
    first: Option<String>,
    /// `[DONE]` (or the end with a finish reason) was already read.
    ended: bool,
}

impl Opened {
    fn into_stream(self, inner: Arc<Inner>, model: String) -> ReplyStream {
        let streaming = Streaming {
            inner,
            model,
            reader: self.reader,
            first: self.first,
            ended: self.ended,
            finished: false,
            started: Instant::now(),
        };
        stream::unfold(streaming, |mut s| async move {
            let item = s.next().await?;
            Some((item, s))
        })
        .boxed()
    }
}

/// The rest of a reply, yielded to the caller. Records the outcome once, whichever way it ends.
struct Streaming {
    inner: Arc<Inner>,
    model: String,
    reader: ChunkReader,
    first: Option<String>,
    /// The server said the reply is complete.
    ended: bool,
    /// The outcome is recorded; nothing more is yielded.
    finished: bool,
    started: Instant,
}

impl Streaming {
    async fn next(&mut self) -> Option<Result<String, LlmError>> {
        if self.finished {
            return None;
        }
        if let Some(text) = self.first.take() {
            return Some(Ok(text));
        }
        if self.ended {
            self.succeed();
            return None;
        }
        let idle = self.inner.config.idle_timeout;
        let failure = match tokio::time::timeout(idle, self.reader.step()).await {
            Ok(Ok(Step::Text(text))) => return Some(Ok(text)),
            Ok(Ok(Step::Done)) => {
                self.succeed();
                return None;
            }
            Ok(Ok(Step::Eof)) if self.reader.finish_reason.is_some() => {
                self.succeed();
                return None;
            }
            Ok(Ok(Step::Eof)) => Failure::Unavailable("the reply was cut short".to_owned()),
            Ok(Err(failure)) => failure,
            Err(_) => Failure::Unavailable(format!("the reply stalled: no data for {} ms", idle.as_millis())),
        };
        Some(Err(self.fail(failure)))
    }

    fn succeed(&mut self) {
        self.finished = true;
        let provider = self.inner.config.name.as_str();
        telemetry::request(provider, "ok");
        let usage = self.reader.usage.unwrap_or_default();
        if self.reader.usage.is_some() {
            telemetry::tokens(provider, usage.prompt_tokens, usage.completion_tokens);
        }
        info!(
            provider,
            model = %self.model,
            prompt_tokens = usage.prompt_tokens,
            completion_tokens = usage.completion_tokens,
            finish_reason = self.reader.finish_reason.as_deref().unwrap_or("done"),
            stream_ms = self.started.elapsed().as_millis() as u64,
            "reply finished"
        );
    }

    fn fail(&mut self, failure: Failure) -> LlmError {
        self.finished = true;
        let provider = self.inner.config.name.as_str();
        if failure.is_outage() {
            self.inner.breaker.record_failure(Instant::now());
        }
        telemetry::request(provider, "interrupted");
        warn!(provider, model = %self.model, error = failure.message(), "reply failed after its first text");
        failure.into_llm(provider)
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        if !self.finished {
            telemetry::request(&self.inner.config.name, "cancelled");
        }
    }
}

/// What the next events of a reply amount to.
#[derive(Debug)]
enum Step {
    /// Text of the first choice.
    Text(String),
    /// `data: [DONE]`.
    Done,
    /// The connection ended without `[DONE]`.
    Eof,
}

/// Reads chat chunks off the response body and keeps what they said about the whole reply.
struct ChunkReader {
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    decoder: SseDecoder,
    /// Decoded events not yet read.
    pending: std::collections::VecDeque<SseEvent>,
    eof: bool,
    finish_reason: Option<String>,
    usage: Option<Usage>,
}

impl ChunkReader {
    fn new(body: BoxStream<'static, reqwest::Result<Bytes>>, pending: Vec<SseEvent>) -> Self {
        Self {
            body,
            decoder: SseDecoder::default(),
            pending: pending.into(),
            eof: false,
            finish_reason: None,
            usage: None,
        }
    }

    /// Reads events until one carries text or the reply ends. Cancel-safe: dropped halfway (on a
    /// timeout) it loses nothing that was read.
    async fn step(&mut self) -> Result<Step, Failure> {
        loop {
            let Some(event) = self.next_event().await? else {
                return Ok(Step::Eof);
            };
            let data = event.data.trim();
            if data == "[DONE]" {
                return Ok(Step::Done);
            }
            if data.is_empty() {
                continue;
            }
            let chunk: ChatChunk = match serde_json::from_str(data) {
                Ok(chunk) => chunk,
                Err(_) if event.event.as_deref() == Some("error") => {
                    return Err(Failure::Unavailable(data.to_owned()));
                }
                Err(e) => {
                    warn!(error = %e, data = %truncate(data), "skipping a chunk that is not JSON");
                    continue;
                }
            };
            if let Some(error) = &chunk.error {
                return Err(Failure::from_error_object(&error.body()));
            }
            if let Some(usage) = chunk.usage {
                self.usage = Some(usage);
            }
            let mut text = String::new();
            // One reply is asked for (`n` unset); other choices would be a server's quirk.
            for choice in chunk.choices.iter().filter(|c| c.index == 0) {
                for part in [&choice.delta, &choice.message].into_iter().flatten() {
                    text.extend(part.content.as_deref());
                    text.extend(part.refusal.as_deref());
                }
                if let Some(reason) = &choice.finish_reason {
                    self.finish_reason = Some(reason.clone());
                }
            }
            if !text.is_empty() {
                return Ok(Step::Text(text));
            }
        }
    }

    async fn next_event(&mut self) -> Result<Option<SseEvent>, Failure> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            if self.eof {
                return Ok(None);
            }
            match self.body.try_next().await {
                Ok(Some(bytes)) => self.pending.extend(self.decoder.push(&bytes)),
                Ok(None) => {
                    self.eof = true;
                    self.pending.extend(self.decoder.finish());
                }
                Err(e) => return Err(Failure::from_transport(&e)),
            }
        }
    }
}

fn truncate(text: &str) -> &str {
    let cut = text.char_indices().nth(200).map_or(text.len(), |(i, _)| i);
    &text[..cut]
}
