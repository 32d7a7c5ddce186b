//! OpenAI-compatible model servers: chat replies ([`OpenAiChat`]) and embeddings
//! ([`OpenAiEmbedder`]), for OpenAI itself and for Ollama, vLLM and llama.cpp behind `/v1`.

mod chat;
mod config;
mod embed;
mod failure;
mod sse;
mod wire;

pub use chat::OpenAiChat;
pub use config::{ApiKey, EmbedConfig, MaxTokensField, OpenAiConfig, RetryPolicy};
pub use embed::OpenAiEmbedder;
