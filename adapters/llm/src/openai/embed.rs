//! Embeddings from an OpenAI-compatible server (`POST {base}/embeddings`), for the knowledge
//! indexer and retrieval through the [`Embedder`] port. A plain JSON request per batch, with the
//! same failure rules as chat: 429 waits if short, outages retry with backoff, 4xx gives up.

use std::time::Instant;

use reqwest::StatusCode;
use tracing::{debug, warn};
use twin_engine::ports::{EmbedError, Embedder, EmbedderId};

use super::config::{EmbedConfig, endpoint};
use super::failure::Failure;
use super::wire::{EmbeddingRequest, EmbeddingResponse};
use crate::telemetry;

/// The text embedded once at [`OpenAiEmbedder::connect`] to learn the model's dimensions.
const PROBE_TEXT: &str = "dimension probe";

#[derive(Debug, Clone)]
pub struct OpenAiEmbedder {
    config: EmbedConfig,
    /// `{base_url}/embeddings`.
    url: String,
    http: reqwest::Client,
    /// `openai:{model}` and the dimensions the probe returned.
    id: EmbedderId,
}

impl OpenAiEmbedder {
    /// Connects to the server and embeds one probe text to learn the vectors' size.
    pub async fn connect(config: EmbedConfig) -> Result<Self, EmbedError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| EmbedError::Unavailable(format!("{}: cannot build an HTTP client: {e}", config.name)))?;
        let url = endpoint(&config.base_url, "embeddings");
        let mut embedder = Self { id: EmbedderId::new(format!("openai:{}", config.model), 0), config, url, http };
        let probe = embedder.request(&[PROBE_TEXT.to_owned()]).await?;
        let dimensions = probe.first().map_or(0, Vec::len);
        if dimensions == 0 {
            return Err(EmbedError::Unavailable(format!(
                "{}: the probe came back without a vector",
                embedder.config.name
            )));
        }
        embedder.id.dimensions = dimensions;
        debug!(provider = %embedder.config.name, model = %embedder.config.model, dimensions, "embedder connected");
        Ok(embedder)
    }

    /// One request with retries; vectors in input order, as the server sent them.
    async fn request(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let provider = self.config.name.as_str();
        let policy = &self.config.retry;
        let mut retry = 0;
        loop {
            let failure = match self.attempt(texts).await {
                Ok(vectors) => {
                    telemetry::embed_request(provider, "ok", texts.len());
                    return Ok(vectors);
                }
                Err(failure) => failure,
            };
            if failure.is_retryable(policy) && retry < policy.max_retries {
                let pause = failure.pause(policy, retry);
                warn!(provider, retry = retry + 1, error = failure.message(), "embedding failed; retrying");
                tokio::time::sleep(pause).await;
                retry += 1;
                continue;
            }
            telemetry::embed_request(provider, failure.outcome(), texts.len());
            warn!(provider, retries = retry, error = failure.message(), "embedding failed");
            return Err(failure.into_embed(provider));
        }
    }

    async fn attempt(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, Failure> {
        let body = EmbeddingRequest {
            model: &self.config.model,
            input: texts,
            encoding_format: "float",
            dimensions: self.config.dimensions,
        };
        let mut builder = self.http.post(&self.url).json(&body);
        if let Some(key) = &self.config.api_key {
            builder = builder.bearer_auth(key.expose());
        }
        let started = Instant::now();
        let response = builder.send().await.map_err(|e| Failure::from_transport(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.map_err(|e| Failure::from_transport(&e))?;
        if status != StatusCode::OK {
            return Err(Failure::from_status(status, &headers, &text));
        }
        let parsed: EmbeddingResponse = serde_json::from_str(&text)
            .map_err(|e| Failure::Unavailable(format!("an embeddings response that does not parse: {e}")))?;
        debug!(texts = texts.len(), ms = started.elapsed().as_millis() as u64, "embedded");
        in_input_order(parsed, texts.len())
    }
}

/// The vectors ordered by their `index` (servers may answer out of order), exactly one per input.
fn in_input_order(response: EmbeddingResponse, expected: usize) -> Result<Vec<Vec<f32>>, Failure> {
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; expected];
    for (position, item) in response.data.into_iter().enumerate() {
        let index = item.index.unwrap_or(position);
        match slots.get_mut(index) {
            Some(slot @ None) => *slot = Some(item.embedding),
            _ => return Err(Failure::Unavailable(format!("an embedding with an unexpected index {index}"))),
        }
    }
    slots
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| Failure::Unavailable(format!("fewer embeddings than the {expected} texts sent")))
}

/// Scales `vector` to length 1 (a zero vector stays zero).
fn normalise(mut vector: Vec<f32>) -> Vec<f32> {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}

#[async_trait::async_trait]
impl Embedder for OpenAiEmbedder {
    fn id(&self) -> &EmbedderId {
        &self.id
    }

    fn max_batch(&self) -> usize {
        self.config.max_batch.max(1)
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let dimensions = self.id.dimensions;
        let mut out = vec![vec![0.0; dimensions]; texts.len()];
        // Servers refuse empty input; a text with nothing to embed keeps the zero vector.
        let wanted: Vec<usize> = (0..texts.len()).filter(|&i| !texts[i].trim().is_empty()).collect();
        for batch in wanted.chunks(self.max_batch()) {
            let inputs: Vec<String> = batch.iter().map(|&i| texts[i].clone()).collect();
            let vectors = self.request(&inputs).await?;
            for (&i, vector) in batch.iter().zip(vectors) {
                if vector.len() != dimensions {
                    return Err(EmbedError::Unavailable(format!(
                        "{}: a vector of {} dimensions, expected {dimensions}",
                        self.config.name,
                        vector.len()
                    )));
                }
                out[i] = normalise(vector);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::wire::EmbeddingItem;

    #[test]
    fn vectors_are_put_in_input_order_by_index() {
        let response = EmbeddingResponse {
            data: vec![
                EmbeddingItem { index: Some(1), embedding: vec![1.0] },
                EmbeddingItem { index: Some(0), embedding: vec![0.0] },
            ],
        };
        assert_eq!(in_input_order(response, 2), Ok(vec![vec![0.0], vec![1.0]]));
    }

    #[test]
    fn a_missing_or_repeated_index_is_an_error() {
        let twice = EmbeddingResponse {
            data: vec![
                EmbeddingItem { index: Some(0), embedding: vec![1.0] },
                EmbeddingItem { index: Some(0), embedding: vec![0.0] },
            ],
        };
        assert!(in_input_order(twice, 2).is_err());
        let short = EmbeddingResponse { data: vec![EmbeddingItem { index: Some(0), embedding: vec![1.0] }] };
        assert!(in_input_order(short, 2).is_err());
    }

    #[test]
    fn normalised_vectors_have_length_one() {
        let v = normalise(vec![3.0, 4.0]);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        assert_eq!(normalise(vec![0.0, 0.0]), vec![0.0, 0.0]);
    }
}
