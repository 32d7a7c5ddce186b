//! [`SentenceBertEmbedder`]: a BERT-family sentence-transformers model (all-MiniLM-L6-v2 and its
//! kin) run in process on the CPU, with mean pooling and L2 normalisation, behind the knowledge
//! [`Embedder`] port.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};
use tokio::sync::Semaphore;
use twin_engine::ports::{EmbedError, Embedder, EmbedderId};

use crate::folder::{LoadError, ModelFolder, read_json};
use crate::pooling::mean_pool_normalised;

/// Texts per model run, and what [`Embedder::max_batch`] reports.
const MAX_BATCH: usize = 32;

/// Model runs at once. One run already keeps every core busy (the matrix products are
/// multi-threaded), so a second one would only make both slower and double the memory.
const CONCURRENT_RUNS: usize = 1;

/// Embeds texts with a sentence-transformers BERT model (e.g. all-MiniLM-L6-v2: 384 dimensions).
///
/// Texts longer than the model's maximum length (256 word pieces for all-MiniLM-L6-v2) are cut,
/// as sentence-transformers cuts them. Cheap to share: clone the `Arc` it usually lives in.
pub struct SentenceBertEmbedder {
    /// `st:<folder name>` and the model's hidden size.
    id: EmbedderId,
    model: Arc<Model>,
    /// Limits model runs to [`CONCURRENT_RUNS`]; a permit is held until the blocking run ends,
    /// even when the caller stops waiting for it.
    runs: Arc<Semaphore>,
}

/// What one blocking run needs.
struct Model {
    bert: BertModel,
    /// Truncating to the model's maximum length and padding to the longest text of a batch.
    tokenizer: Tokenizer,
}

impl SentenceBertEmbedder {
    /// Loads a sentence-transformers folder: `config.json`, `tokenizer.json` and
    /// `model.safetensors`, and if present `sentence_bert_config.json` (maximum length) and
    /// `1_Pooling/config.json` (which must ask for mean pooling). Reads the ~90 MB of weights:
    /// call it once at startup, off the async runtime or before it starts.
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        let folder = ModelFolder::open(dir)?;
        let config: Config = read_json(&folder.config)?;
        if let Some(model_type) = config.model_type.as_deref()
            && model_type != "bert"
        {
            return Err(LoadError::Unsupported {
                dir: dir.to_path_buf(),
                reason: format!("config.json names a {model_type:?} model; only \"bert\" models are run"),
            });
        }
        // Positions past the model's table do not exist, whatever the sentence-transformers setting says.
        let max_length = folder.max_seq_length.min(config.max_position_embeddings);
        let tokenizer = load_tokenizer(&folder, max_length)?;

        let weights = std::fs::read(&folder.weights)
            .map_err(|source| LoadError::Read { path: folder.weights.clone(), source })?;
        let vars = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|source| LoadError::Weights { path: folder.weights.clone(), source })?;
        let bert = BertModel::load(vars, &config)
            .map_err(|source| LoadError::Weights { path: folder.weights.clone(), source })?;

        let id = EmbedderId::new(format!("st:{}", folder.name), config.hidden_size);
        tracing::info!(embedder = %id.key(), max_length, "embedding model loaded");
        Ok(Self { id, model: Arc::new(Model { bert, tokenizer }), runs: Arc::new(Semaphore::new(CONCURRENT_RUNS)) })
    }
}

fn load_tokenizer(folder: &ModelFolder, max_length: usize) -> Result<Tokenizer, LoadError> {
    let bad = |source| LoadError::Tokenizer { path: folder.tokenizer.clone(), source };
    let mut tokenizer = Tokenizer::from_file(&folder.tokenizer).map_err(bad)?;
    // tokenizer.json of all-MiniLM-L6-v2 says "cut at 128, pad everything to 128"; what
    // sentence-transformers really does is cut at max_seq_length and pad to the longest text.
    let truncation = TruncationParams { max_length, ..tokenizer.get_truncation().cloned().unwrap_or_default() };
    tokenizer.with_truncation(Some(truncation)).map_err(bad)?;
    let padding = PaddingParams {
        strategy: PaddingStrategy::BatchLongest,
        pad_to_multiple_of: None,
        ..tokenizer.get_padding().cloned().unwrap_or_default()
    };
    tokenizer.with_padding(Some(padding));
    Ok(tokenizer)
}

#[async_trait::async_trait]
impl Embedder for SentenceBertEmbedder {
    fn id(&self) -> &EmbedderId {
        &self.id
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut vectors = Vec::with_capacity(texts.len());
        // Callers should split at max_batch; a longer slice still works, one run per batch.
        for batch in texts.chunks(MAX_BATCH) {
            let permit = Arc::clone(&self.runs)
                .acquire_owned()
                .await
                .map_err(|_| EmbedError::Unavailable("the embedding model was shut down".into()))?;
            let model = Arc::clone(&self.model);
            let batch = batch.to_vec();
            let embedded = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                model.run(batch)
            })
            .await
            .map_err(|err| EmbedError::Unavailable(format!("the embedding model run panicked: {err}")))??;
            vectors.extend(embedded);
        }
        Ok(vectors)
    }
}

impl Model {
    /// Tokenises, runs the transformer and pools: blocking, CPU-bound work.
    fn run(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let started = Instant::now();
        let count = texts.len();
        let encodings = self
            .tokenizer
            .encode_batch(texts, true)
            .map_err(|err| EmbedError::Refused(format!("the text could not be tokenised: {err}")))?;
        let Some(tokens) = encodings.first().map(|encoding| encoding.len()) else {
            return Ok(Vec::new());
        };
        let ids: Vec<u32> = encodings.iter().flat_map(|encoding| encoding.get_ids().iter().copied()).collect();
        let mask: Vec<u32> =
            encodings.iter().flat_map(|encoding| encoding.get_attention_mask().iter().copied()).collect();

        let vectors = self.forward(ids, mask, count, tokens).map_err(|err| {
            tracing::error!(error = %err, texts = count, tokens, "embedding model run failed");
            EmbedError::Unavailable(format!("the embedding model failed: {err}"))
        })?;
        tracing::debug!(texts = count, tokens, elapsed_ms = started.elapsed().as_millis() as u64, "texts embedded");
        Ok(vectors)
    }

    fn forward(
        &self,
        ids: Vec<u32>,
        mask: Vec<u32>,
        texts: usize,
        tokens: usize,
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let device = &self.bert.device;
        let ids = Tensor::from_vec(ids, (texts, tokens), device)?;
        let mask = Tensor::from_vec(mask, (texts, tokens), device)?;
        // Single-sentence inputs: every token is of segment 0.
        let segments = ids.zeros_like()?;
        let hidden = self.bert.forward(&ids, &segments, Some(&mask))?;
        mean_pool_normalised(&hidden, &mask)?.to_vec2::<f32>()
    }
}
