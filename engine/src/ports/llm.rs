//! The language-model port: one reply, streamed as text deltas.

use futures::stream::BoxStream;

use crate::prompt::ReplyRequest;

/// Deltas of one reply, in order; the reply is their concatenation.
pub type ReplyStream = BoxStream<'static, Result<String, LlmError>>;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The model server could not be reached or failed; the reply may be retried later.
    #[error("the language model is unavailable: {0}")]
    Unavailable(String),
    /// The model server asked us to slow down.
    #[error("the language model is rate limited; retry after {retry_after_ms} ms")]
    RateLimited { retry_after_ms: u64 },
    /// The request was refused (bad request, content policy); retrying will not help.
    #[error("the language model refused the request: {0}")]
    Refused(String),
}

#[async_trait::async_trait]
pub trait Llm: Send + Sync + 'static {
    /// Starts generating a reply. Called from a task of its own, never inside an actor handler.
    async fn reply(&self, request: ReplyRequest) -> Result<ReplyStream, LlmError>;
}
