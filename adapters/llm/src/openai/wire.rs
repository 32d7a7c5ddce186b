//! The JSON of the OpenAI API, as much of it as Twin reads and writes. Every incoming field is
//! optional: compatible servers leave out `id`, `created`, `model`, even `choices`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use twin_engine::prompt::PromptMessage;

#[derive(Debug, Serialize)]
pub(crate) struct ChatRequest<'a> {
    pub model: &'a str,
    pub messages: &'a [PromptMessage],
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
}

#[derive(Debug, Serialize)]
pub(crate) struct StreamOptions {
    pub include_usage: bool,
}

/// One `chat.completion.chunk`, or an error object sent in its place.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ChatChunk {
    pub choices: Vec<ChunkChoice>,
    pub usage: Option<Usage>,
    pub error: Option<ErrorField>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ChunkChoice {
    pub index: u32,
    pub delta: Option<ChunkDelta>,
    /// Some servers answer `stream: true` with whole messages; read them as one delta.
    pub message: Option<ChunkDelta>,
    pub finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ChunkDelta {
    pub content: Option<String>,
    /// A model's refusal is said to the user like any reply.
    pub refusal: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(default)]
pub(crate) struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// `{"error": …}`: an object on OpenAI and vLLM, a bare string on Ollama.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum ErrorField {
    Object(ErrorBody),
    Text(String),
}

impl ErrorField {
    pub fn body(&self) -> ErrorBody {
        match self {
            ErrorField::Object(body) => body.clone(),
            ErrorField::Text(text) => ErrorBody { message: Some(text.clone()), ..ErrorBody::default() },
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct ErrorBody {
    pub message: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub code: Option<Value>,
}

impl ErrorBody {
    pub fn message(&self) -> String {
        self.message.clone().unwrap_or_else(|| "an error without a message".to_owned())
    }

    /// `type` and `code` together, for classifying the error.
    pub fn kind(&self) -> String {
        let code = match &self.code {
            Some(Value::String(code)) => code.clone(),
            Some(Value::Number(code)) => code.to_string(),
            _ => String::new(),
        };
        format!("{} {code}", self.kind.as_deref().unwrap_or_default())
    }
}

/// An error response body.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ErrorEnvelope {
    pub error: Option<ErrorField>,
}

#[derive(Debug, Serialize)]
pub(crate) struct EmbeddingRequest<'a> {
    pub model: &'a str,
    pub input: &'a [String],
    pub encoding_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<usize>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EmbeddingResponse {
    pub data: Vec<EmbeddingItem>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EmbeddingItem {
    /// Missing on some servers, which then answer in input order.
    #[serde(default)]
    pub index: Option<usize>,
    pub embedding: Vec<f32>,
}
