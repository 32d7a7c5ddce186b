//! Twin's language-model adapters, implementing [`twin_engine::ports::Llm`] and
//! [`twin_engine::ports::Embedder`].
//!
//! - [`BuiltinResponder`]: the built-in offline responder, which the api wires in when no model
//!   server is configured and which tests and benchmarks use.
//! - [`OpenAiChat`]: replies streamed from any OpenAI-compatible chat server (OpenAI, Ollama, vLLM,
//!   llama.cpp), with retries before the first text and a [`CircuitBreaker`] per provider.
//! - [`OpenAiEmbedder`]: vectors from an OpenAI-compatible `/embeddings` endpoint.
//!
//! Metrics are named in [`telemetry`]; call [`telemetry::describe_metrics`] once at startup.

mod breaker;
mod builtin;
mod openai;
pub mod telemetry;

pub use breaker::{BreakerState, CircuitBreaker};
pub use builtin::BuiltinResponder;
pub use openai::{ApiKey, EmbedConfig, MaxTokensField, OpenAiChat, OpenAiConfig, OpenAiEmbedder, RetryPolicy};
