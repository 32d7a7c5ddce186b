//! The knowledge ports: turning text into vectors ([`Embedder`]) and finding a creator's nearest
//! chunks ([`VectorIndex`]).
//!
//! Chunk text is not stored in the index: chunks are cut deterministically from the stored
//! documents, and a vector is keyed by (document path, the document's content hash, chunk ordinal).
//! A hit whose hash no longer matches the document is stale and ignored, so an index that lags an
//! edit can never quote text the creator removed.

use serde::{Deserialize, Serialize};

use crate::ids::CreatorId;

/// Which embedder produced a vector. Vectors of different embedders are never compared: changing
/// the embedder re-embeds the knowledge.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EmbedderId {
    /// e.g. `hashed-ngrams-v1`, `minilm:all-MiniLM-L6-v2`, `openai:text-embedding-3-small`.
    pub name: String,
    pub dimensions: usize,
}

impl EmbedderId {
    pub fn new(name: impl Into<String>, dimensions: usize) -> Self {
        Self { name: name.into(), dimensions }
    }

    /// One string naming the embedder and its size, as stored next to vectors.
    pub fn key(&self) -> String {
        format!("{}/{}", self.name, self.dimensions)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The embedding server (or local model) could not be reached or failed; retry later.
    #[error("the embedder is unavailable: {0}")]
    Unavailable(String),
    #[error("the embedder is rate limited; retry after {retry_after_ms} ms")]
    RateLimited { retry_after_ms: u64 },
    /// The input was refused (too long, bad request); retrying the same input will not help.
    #[error("the embedder refused the input: {0}")]
    Refused(String),
}

#[async_trait::async_trait]
pub trait Embedder: Send + Sync + 'static {
    fn id(&self) -> &EmbedderId;

    /// The most texts one [`Embedder::embed`] call takes; callers split larger inputs.
    fn max_batch(&self) -> usize {
        32
    }

    /// One vector per text, in order, each of `id().dimensions` and L2-normalised (so a dot product
    /// is the cosine similarity). An all-zero vector is allowed for a text with nothing to embed.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// Which chunk a vector belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChunkKey {
    /// The document's path inside the bundle's `knowledge/` folder.
    pub document: String,
    /// The content hash of the document the chunk was cut from.
    pub content_hash: String,
    /// The chunk's position in its document, from 0.
    pub ordinal: u32,
}

/// A chunk found for a query vector. `score` is the cosine similarity, in [-1, 1]: 1 is the same
/// direction, 0 unrelated.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorHit {
    pub key: ChunkKey,
    pub score: f32,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("the vector index is unavailable: {0}")]
    Unavailable(String),
    /// A vector of the wrong size, or another request the index refuses.
    #[error("the vector index refused the request: {0}")]
    Invalid(String),
}

/// Vectors per creator. Every call names its creator, and an implementation must never return
/// another creator's chunks, whatever the query.
#[async_trait::async_trait]
pub trait VectorIndex: Send + Sync + 'static {
    /// Replaces every vector of `document` (any content hash) with `vectors` (ordinal, vector).
    async fn replace_document(
        &self,
        creator: CreatorId,
        embedder: &EmbedderId,
        document: &str,
        content_hash: &str,
        vectors: &[(u32, Vec<f32>)],
    ) -> Result<(), IndexError>;

    /// Removes every vector of the creator's documents not in `keep` (documents deleted from the
    /// bundle) and of other embedders than `embedder`.
    async fn retain_documents(
        &self,
        creator: CreatorId,
        embedder: &EmbedderId,
        keep: &[String],
    ) -> Result<(), IndexError>;

    /// Removes every vector of the creator, of every embedder (GDPR erasure of the creator).
    /// `retain_documents(creator, embedder, &[])` does the same for the index's current contract,
    /// but needs an embedder and, on a vector server, creates that embedder's collection if it is
    /// missing; this needs neither.
    async fn remove_creator(&self, creator: CreatorId) -> Result<(), IndexError>;

    /// The `limit` chunks of `creator` most similar to `query`, best first.
    async fn search(
        &self,
        creator: CreatorId,
        embedder: &EmbedderId,
        query: &[f32],
        limit: usize,
    ) -> Result<Vec<VectorHit>, IndexError>;
}

/// Where the ingestion of one document stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IngestState {
    /// Chunks are being embedded; `chunks_done` of `chunks_total` are.
    Embedding,
    /// Every chunk of this content is in the vector index.
    Ready,
    /// The last attempt failed (`error` says why); it is tried again on the next ingestion.
    Failed,
}

impl IngestState {
    pub fn as_str(self) -> &'static str {
        match self {
            IngestState::Embedding => "embedding",
            IngestState::Ready => "ready",
            IngestState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "embedding" => Some(IngestState::Embedding),
            "ready" => Some(IngestState::Ready),
            "failed" => Some(IngestState::Failed),
            _ => None,
        }
    }
}

/// The ingestion status of one knowledge document: which content, by which embedder and chunker,
/// how far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentStatus {
    pub document: String,
    pub content_hash: String,
    /// [`EmbedderId::key`] of the embedder the vectors come from.
    pub embedder: String,
    /// The chunker version the chunks were cut with.
    pub chunker: u32,
    pub state: IngestState,
    pub chunks_done: u32,
    pub chunks_total: u32,
    pub error: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub updated_at: i64,
}

/// The store's side of knowledge: ingestion status per document, and the vectors of the embedded
/// index (unused when a vector server holds them). A document's status and vectors go when the
/// document is removed from the creator.
#[async_trait::async_trait]
pub trait KnowledgeStore: Send + Sync + 'static {
    async fn ingestion(&self, creator: CreatorId) -> Result<Vec<DocumentStatus>, crate::ports::StoreError>;

    /// Records `status` for its document; a document no longer stored is ignored.
    async fn set_ingestion(&self, creator: CreatorId, status: &DocumentStatus) -> Result<(), crate::ports::StoreError>;

    /// Every stored vector of the creator by `embedder` (an [`EmbedderId::key`]).
    async fn vectors(
        &self,
        creator: CreatorId,
        embedder: &str,
    ) -> Result<Vec<(ChunkKey, Vec<f32>)>, crate::ports::StoreError>;

    /// Replaces the vectors of one document (all embedders) with `vectors` of `embedder`.
    async fn replace_vectors(
        &self,
        creator: CreatorId,
        embedder: &str,
        document: &str,
        content_hash: &str,
        vectors: &[(u32, Vec<f32>)],
    ) -> Result<(), crate::ports::StoreError>;

    /// Deletes the creator's vectors of other embedders and of documents not in `keep`.
    async fn retain_vectors(
        &self,
        creator: CreatorId,
        embedder: &str,
        keep: &[String],
    ) -> Result<(), crate::ports::StoreError>;
}
