//! The embedded vector index: exact cosine search over each creator's chunk vectors, held in
//! memory while the creator's twin is in use and persisted in the store (SQLite or PostgreSQL), so
//! it needs no extra engine. For a creator's knowledge (up to ~10^5 chunks) an exact search takes
//! milliseconds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use twin_engine::CreatorId;
use twin_engine::ports::{ChunkKey, EmbedderId, IndexError, KnowledgeStore, VectorHit, VectorIndex};

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
    entries: HashMap<(CreatorId, String), (u64, Arc<ExactIndex<ChunkKey>>)>,
    tick: u64,
    capacity: usize,
}

impl Cache {
    fn get(&mut self, key: &(CreatorId, String)) -> Option<Arc<ExactIndex<ChunkKey>>> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|(used, index)| {
            *used = tick;
            index.clone()
        })
    }

    fn put(&mut self, key: (CreatorId, String), index: Arc<ExactIndex<ChunkKey>>) {
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

    async fn loaded(&self, creator: CreatorId, embedder: &EmbedderId) -> Result<Arc<ExactIndex<ChunkKey>>, IndexError> {
        let key = (creator, embedder.key());
        if let Some(index) = self.cache().get(&key) {
            return Ok(index);
        }
        let rows = self.store.vectors(creator, &key.1).await.map_err(|e| IndexError::Unavailable(e.to_string()))?;
        let mut index = ExactIndex::new(embedder.dimensions);
        for (chunk, vector) in rows {
            if vector.len() != embedder.dimensions {
                return Err(IndexError::Invalid(format!(
                    "a stored vector of {} has {} dimensions, not {}",
                    chunk.document,
                    vector.len(),
                    embedder.dimensions
                )));
            }
            index.push(chunk, &vector);
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
            tokio::task::spawn_blocking(move || hits_of(&index, &query, limit))
                .await
                .map_err(|e| IndexError::Unavailable(format!("the search task failed: {e}")))?
        } else {
            hits_of(&index, query, limit)
        };
        Ok(hits)
    }
}

fn hits_of(index: &ExactIndex<ChunkKey>, query: &[f32], limit: usize) -> Vec<VectorHit> {
    index.search(query, limit).into_iter().map(|(key, score)| VectorHit { key: key.clone(), score }).collect()
}

/// Placeholder until the engine's exact index lands: normalised vectors in one flat array,
/// searched by dot product.
struct ExactIndex<K> {
    dimensions: usize,
    keys: Vec<K>,
    values: Vec<f32>,
}

impl<K> ExactIndex<K> {
    fn new(dimensions: usize) -> Self {
        Self { dimensions, keys: Vec::new(), values: Vec::new() }
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    fn push(&mut self, key: K, vector: &[f32]) {
        self.keys.push(key);
        self.values.extend_from_slice(vector);
    }

    fn search(&self, query: &[f32], limit: usize) -> Vec<(&K, f32)> {
        let mut scored: Vec<(usize, f32)> = self
            .values
            .chunks_exact(self.dimensions.max(1))
            .map(|v| v.iter().zip(query).map(|(a, b)| a * b).sum::<f32>())
            .enumerate()
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.into_iter().take(limit).map(|(i, s)| (&self.keys[i], s)).collect()
    }
}
