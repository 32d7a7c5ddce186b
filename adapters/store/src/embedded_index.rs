//! The embedded vector index: exact cosine search over each creator's chunk vectors, held in
//! memory while the creator's twin is in use and persisted in the store (SQLite or PostgreSQL), so
//! it needs no extra engine. For a creator's knowledge (up to ~10^5 chunks) an exact search takes
//! milliseconds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use twin_engine::CreatorId;
use twin_engine::knowledge::ExactIndex;
use twin_engine::ports::{EmbedderId, IndexError, KnowledgeStore, VectorHit, VectorIndex};

/// Creators whose vectors stay in memory at once; the least recently searched one goes first.
const DEFAULT_CACHED_CREATORS: usize = 256;

/// Searches bigger than this many floats run on the blocking pool, off the async workers.
const BLOCKING_SEARCH_FLOATS: usize = 1 << 20;

/// A [`VectorIndex`] kept in the store, searched in memory.
pub struct EmbeddedIndex {
    store: Arc<dyn KnowledgeStore>,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<(CreatorId, String), (u64, Arc<ExactIndex>)>,
    tick: u64,
    capacity: usize,
}

impl Cache {
    fn get(&mut self, key: &(CreatorId, String)) -> Option<Arc<ExactIndex>> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|(used, index)| {
            *used = tick;
            index.clone()
        })
    }

    fn put(&mut self, key: (CreatorId, String), index: Arc<ExactIndex>) {
        self.tick += 1;
        self.entries.insert(key, (self.tick, index));
        while self.entries.len() > self.capacity.max(1) {
            let Some(oldest) = self.entries.iter().min_by_key(|(_, (used, _))| *used).map(|(k, _)| k.clone()) else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }

    fn forget_creator(&mut self, creator: CreatorId) {
        self.entries.retain(|(c, _), _| *c != creator);
    }
}

impl EmbeddedIndex {
    pub fn new(store: Arc<dyn KnowledgeStore>) -> Self {
        Self::with_capacity(store, DEFAULT_CACHED_CREATORS)
    }

    /// Keeps at most `creators` creators' vectors in memory.
    pub fn with_capacity(store: Arc<dyn KnowledgeStore>, creators: usize) -> Self {
        Self { store, cache: Mutex::new(Cache { capacity: creators, ..Cache::default() }) }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn loaded(&self, creator: CreatorId, embedder: &EmbedderId) -> Result<Arc<ExactIndex>, IndexError> {
        let key = (creator, embedder.key());
        if let Some(index) = self.cache().get(&key) {
            return Ok(index);
        }
        let rows = self.store.vectors(creator, &key.1).await.map_err(|e| IndexError::Unavailable(e.to_string()))?;
        let mut index = ExactIndex::new(embedder.dimensions);
        for (chunk, vector) in rows {
            index.insert(chunk, &vector).map_err(|e| IndexError::Invalid(e.to_string()))?;
        }
        let index = Arc::new(index);
        self.cache().put(key, index.clone());
        Ok(index)
    }
}

#[async_trait::async_trait]
impl VectorIndex for EmbeddedIndex {
    async fn replace_document(
        &self,
        creator: CreatorId,
        embedder: &EmbedderId,
        document: &str,
        content_hash: &str,
        vectors: &[(u32, Vec<f32>)],
    ) -> Result<(), IndexError> {
        if let Some((_, v)) = vectors.iter().find(|(_, v)| v.len() != embedder.dimensions) {
            return Err(IndexError::Invalid(format!(
                "a vector of {} dimensions for an embedder of {}",
                v.len(),
                embedder.dimensions
            )));
        }
        self.store
            .replace_vectors(creator, &embedder.key(), document, content_hash, vectors)
            .await
            .map_err(|e| IndexError::Unavailable(e.to_string()))?;
        // The next search loads the creator's vectors again, as stored.
        self.cache().forget_creator(creator);
        Ok(())
    }

    async fn retain_documents(
        &self,
        creator: CreatorId,
        embedder: &EmbedderId,
        keep: &[String],
    ) -> Result<(), IndexError> {
        self.store
            .retain_vectors(creator, &embedder.key(), keep)
            .await
            .map_err(|e| IndexError::Unavailable(e.to_string()))?;
        self.cache().forget_creator(creator);
        Ok(())
    }

    /// The vectors live in the store: a creator erasure deletes them in its own transaction; this
    /// deletes them too (every embedder: none is kept when the kept list is empty and the embedder
    /// key matches no embedder) and forgets the cached copy, which is what a search would read.
    async fn remove_creator(&self, creator: CreatorId) -> Result<(), IndexError> {
        self.store.retain_vectors(creator, "", &[]).await.map_err(|e| IndexError::Unavailable(e.to_string()))?;
        self.cache().forget_creator(creator);
        Ok(())
    }

    async fn search(
        &self,
        creator: CreatorId,
        embedder: &EmbedderId,
        query: &[f32],
        limit: usize,
    ) -> Result<Vec<VectorHit>, IndexError> {
        if query.len() != embedder.dimensions {
            return Err(IndexError::Invalid(format!(
                "a query of {} dimensions for an embedder of {}",
                query.len(),
                embedder.dimensions
            )));
        }
        let index = self.loaded(creator, embedder).await?;
        let hits = if index.len() * embedder.dimensions > BLOCKING_SEARCH_FLOATS {
            let query = query.to_vec();
            let index = index.clone();
            tokio::task::spawn_blocking(move || index.search(&query, limit))
                .await
                .map_err(|e| IndexError::Unavailable(format!("the search task failed: {e}")))?
        } else {
            index.search(query, limit)
        };
        Ok(hits)
    }
}
