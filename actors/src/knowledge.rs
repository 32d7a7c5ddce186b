//! Knowledge at run time: the ingestion job that embeds a creator's documents into the vector
//! index (in the background, with a status per document), and retrieval for one reply (the query
//! embedded and searched in the creator's vectors, fused with the twin's lexical index).
//!
//! Neither runs inside an actor handler: ingestion is a task of its own per creator, retrieval
//! runs on the reply's task before the model is called.

use std::sync::Arc;

use twin_engine::CreatorId;
use twin_engine::knowledge::{
    CHUNKER_VERSION, ChunkOptions, KnowledgeDocument, Passage, Ranking, Relevance, Retrieved, chunk_document,
};
use twin_engine::ports::{DocumentStatus, Embedder, EmbedderId, IngestState, KnowledgeStore, VectorIndex};
use twin_engine::twin::TwinSnapshot;

use crate::metrics as m;

/// The knowledge ports, together: how text becomes vectors, where vectors are searched, and where
/// ingestion records its progress.
#[derive(Clone)]
pub struct KnowledgePorts {
    pub embedder: Arc<dyn Embedder>,
    pub index: Arc<dyn VectorIndex>,
    pub store: Arc<dyn KnowledgeStore>,
}

/// What one ingestion run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Documents embedded in this run.
    pub embedded: usize,
    /// Documents whose content was already in the index with this embedder and chunker: free.
    pub unchanged: usize,
    /// Documents that failed (their status says why); they are tried again on the next run.
    pub failed: usize,
    pub chunks: usize,
}

/// Milliseconds since the Unix epoch, for status rows (bookkeeping only).
fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Embeds every document of `creator` whose current content is not yet in the index with the
/// configured embedder and chunker, then drops the vectors of removed documents. `progress` is
/// told each status as it is recorded (the CLI draws a bar from it).
///
/// A document that fails is recorded as failed and the others go on; the store being unreachable
/// ends the run with that error.
pub async fn ingest(
    ports: &KnowledgePorts,
    creator: CreatorId,
    documents: &[KnowledgeDocument],
    mut progress: impl FnMut(&DocumentStatus) + Send,
) -> Result<IngestReport, twin_engine::ports::StoreError> {
    let embedder = ports.embedder.id().clone();
    let embedder_key = embedder.key();
    let known = ports.store.ingestion(creator).await?;
    let mut report = IngestReport::default();
    for document in documents {
        let content_hash = document.content_hash();
        let ready = known.iter().find(|s| {
            s.document == document.path
                && s.content_hash == content_hash
                && s.embedder == embedder_key
                && s.chunker == CHUNKER_VERSION
                && s.state == IngestState::Ready
        });
        if let Some(ready) = ready {
            report.unchanged += 1;
            progress(ready);
            continue;
        }
        let chunks = chunk_document(document, &ChunkOptions::default());
        let mut status = DocumentStatus {
            document: document.path.clone(),
            content_hash: content_hash.clone(),
            embedder: embedder_key.clone(),
            chunker: CHUNKER_VERSION,
            state: IngestState::Embedding,
            chunks_done: 0,
            chunks_total: u32::try_from(chunks.len()).unwrap_or(u32::MAX),
            error: None,
            updated_at: now_millis(),
        };
        ports.store.set_ingestion(creator, &status).await?;
        progress(&status);

        let mut vectors = Vec::with_capacity(chunks.len());
        let mut failure = None;
        for batch in chunks.chunks(ports.embedder.max_batch().max(1)) {
            let texts: Vec<String> = batch.iter().map(|c| c.embedding_text()).collect();
            match ports.embedder.embed(&texts).await {
                Ok(embedded) if embedded.len() == batch.len() => {
                    vectors.extend(batch.iter().map(|c| c.ordinal).zip(embedded));
                    status.chunks_done = u32::try_from(vectors.len()).unwrap_or(u32::MAX);
                    status.updated_at = now_millis();
                    ports.store.set_ingestion(creator, &status).await?;
                    progress(&status);
                }
                Ok(embedded) => {
                    failure =
                        Some(format!("the embedder returned {} vectors for {} texts", embedded.len(), batch.len()));
                    break;
                }
                Err(error) => {
                    failure = Some(error.to_string());
                    break;
                }
            }
        }
        if failure.is_none()
            && let Err(error) =
                ports.index.replace_document(creator, &embedder, &document.path, &content_hash, &vectors).await
        {
            failure = Some(error.to_string());
        }
        status.updated_at = now_millis();
        match failure {
            None => {
                status.state = IngestState::Ready;
                report.embedded += 1;
                report.chunks += vectors.len();
                metrics::counter!(m::KNOWLEDGE_CHUNKS_EMBEDDED).increment(vectors.len() as u64);
            }
            Some(error) => {
                tracing::warn!(%creator, document = %document.path, %error, "could not ingest a knowledge document");
                status.state = IngestState::Failed;
                status.error = Some(error);
                report.failed += 1;
            }
        }
        ports.store.set_ingestion(creator, &status).await?;
        progress(&status);
    }
    let keep: Vec<String> = documents.iter().map(|d| d.path.clone()).collect();
    if let Err(error) = ports.index.retain_documents(creator, &embedder, &keep).await {
        tracing::warn!(%creator, %error, "could not drop the vectors of removed documents; they are ignored as stale");
    }
    Ok(report)
}

/// The passages a reply to `query` draws on: the query embedded and searched among the creator's
/// vectors, fused with the twin's lexical ranking, and none at all when the best of them is too
/// weak to be about the question ([`relevance`]), so the twin says it has nothing rather than
/// quote something unrelated. When the embedder or the index fails, the lexical ranking alone
/// answers (logged): a reply never waits on a broken vector server.
pub async fn retrieve(ports: &KnowledgePorts, twin: &TwinSnapshot, query: &str, limit: usize) -> Vec<Passage> {
    if limit == 0 || twin.knowledge.is_empty() {
        return Vec::new();
    }
    let started = std::time::Instant::now();
    let embedder = ports.embedder.id().clone();
    let candidates = limit.saturating_mul(4).max(8);
    let hits = match ports.embedder.embed(&[query.to_owned()]).await {
        Ok(mut vectors) if vectors.len() == 1 => {
            let vector = vectors.swap_remove(0);
            match ports.index.search(twin.creator, &embedder, &vector, candidates).await {
                Ok(hits) => hits,
                Err(error) => {
                    tracing::warn!(creator = %twin.creator, %error, "vector search failed; lexical retrieval only");
                    Vec::new()
                }
            }
        }
        Ok(vectors) => {
            tracing::warn!(creator = %twin.creator, got = vectors.len(), "the embedder returned no single vector; lexical retrieval only");
            Vec::new()
        }
        Err(error) => {
            tracing::warn!(creator = %twin.creator, %error, "query embedding failed; lexical retrieval only");
            Vec::new()
        }
    };
    let passages = if twin.knowledge.relevant(query, &hits, &relevance(&embedder)) {
        twin.knowledge.retrieve_ranked(query, &hits, limit, ranking(&embedder)).iter().map(Retrieved::passage).collect()
    } else {
        Vec::new()
    };
    metrics::histogram!(m::RETRIEVAL_SECONDS).record(started.elapsed().as_secs_f64());
    passages
}

/// How the two rankings combine, per embedder, as measured on `engine/tests/data/retrieval`: a
/// sentence-transformers model ranks better alone (all-MiniLM-L6-v2 hit@3 0.81 alone, 0.62 fused
/// with BM25 by reciprocal rank fusion, which gives the weaker ranking equal say), while the hashed
/// embedder and BM25 are equally weak and fused (hit@3 0.38, within noise of either alone).
pub fn ranking(embedder: &EmbedderId) -> Ranking {
    if is_hashed(embedder) { Ranking::Hybrid } else { Ranking::Vector }
}

fn is_hashed(embedder: &EmbedderId) -> bool {
    embedder.name.starts_with(twin_engine::knowledge::hashed::HASHED_EMBEDDER_NAME)
}

/// When retrieved material counts as being about the question, per embedder: cosine scores mean
/// different things for different models. Calibrated on `engine/tests/data/retrieval` (the
/// numbers are in `docs/KNOWLEDGE.md`); an unknown embedder gets the sentence-transformers rule.
pub fn relevance(embedder: &EmbedderId) -> Relevance {
    if is_hashed(embedder) { Relevance::HASHED } else { Relevance::SEMANTIC }
}
