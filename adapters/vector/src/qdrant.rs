//! [`QdrantIndex`]: the `VectorIndex` port on a Qdrant server, one collection per embedder, one
//! payload-indexed `creator_id` per point as the tenant key.

mod collection;
mod error;
mod point;

use std::collections::HashSet;

use async_trait::async_trait;
use qdrant_client::Qdrant;
use qdrant_client::qdrant::{
    Condition, DeletePointsBuilder, Filter, PointStruct, Query, QueryPointsBuilder, UpsertPointsBuilder,
};
use tokio::sync::Mutex;
use twin_engine::ids::CreatorId;
use twin_engine::ports::{EmbedderId, IndexError, VectorHit, VectorIndex};

use self::collection::collection_name;
use self::error::unavailable;
use self::point::{PAYLOAD_CREATOR, PAYLOAD_DOCUMENT, chunk_key, point_creator, point_id, point_payload};

/// Points sent in one upsert request: a 1024-dimension batch is ~1 MiB on the wire.
const UPSERT_BATCH: usize = 256;

/// The `VectorIndex` port on Qdrant.
///
/// Every request that reads or deletes points carries a `creator_id` filter, so no query can reach
/// another creator's chunks.
pub struct QdrantIndex {
    client: Qdrant,
    /// Prepended verbatim to each collection name (`twin_` gives `twin_hashed-ngrams-v1_1024`).
    prefix: String,
    /// Collections known to exist with their `creator_id` index. The lock is held while a missing
    /// collection is created, so two first uses do not race to create it.
    ready: Mutex<HashSet<String>>,
}

impl QdrantIndex {
    /// Connects to Qdrant's gRPC endpoint (`http://host:6334`, or `https://` for TLS) and checks that
    /// it answers. Collections are created on first use.
    pub async fn connect(
        url: &str,
        api_key: Option<String>,
        collection_prefix: impl Into<String>,
    ) -> Result<Self, IndexError> {
        // The client's own version check runs a blocking health check on a scoped thread; the check
        // below does the same without blocking the runtime.
        let client = Qdrant::from_url(url)
            .api_key(api_key)
            .skip_compatibility_check()
            .build()
            .map_err(|e| IndexError::Invalid(format!("Qdrant client for {url}: {e}")))?;
        let health = client.health_check().await.map_err(|e| unavailable("health check", e))?;
        tracing::info!(url, version = %health.version, "connected to Qdrant");
        Ok(Self { client, prefix: collection_prefix.into(), ready: Mutex::new(HashSet::new()) })
    }

    fn collection(&self, embedder: &EmbedderId) -> String {
        collection_name(&self.prefix, embedder)
    }
}

fn check_dimensions(embedder: &EmbedderId, vector: &[f32]) -> Result<(), IndexError> {
    if vector.len() != embedder.dimensions {
        return Err(IndexError::Invalid(format!(
            "a vector of {} dimensions for embedder {} of {}",
            vector.len(),
            embedder.key(),
            embedder.dimensions
        )));
    }
    Ok(())
}

fn of_creator(creator: CreatorId) -> Condition {
    Condition::matches(PAYLOAD_CREATOR, creator.to_string())
}

#[async_trait]
impl VectorIndex for QdrantIndex {
    async fn replace_document(
        &self,
        creator: CreatorId,
        embedder: &EmbedderId,
        document: &str,
        content_hash: &str,
        vectors: &[(u32, Vec<f32>)],
    ) -> Result<(), IndexError> {
        for (_, vector) in vectors {
            check_dimensions(embedder, vector)?;
        }
        let collection = self.ensure_collection(embedder).await?;

        // Upsert first, then delete the document's other points: ids are (creator, document,
        // ordinal), so the upsert overwrites the ordinals that remain and a reader never sees the
        // document missing. If the delete fails, the leftovers carry the old content hash and the
        // engine ignores them as stale.
        let points: Vec<PointStruct> = vectors
            .iter()
            .map(|(ordinal, vector)| {
                PointStruct::new(
                    point_id(creator, document, *ordinal),
                    vector.clone(),
                    point_payload(creator, document, content_hash, *ordinal),
                )
            })
            .collect();
        let kept = points.iter().filter_map(|p| p.id.clone()).collect::<Vec<_>>();
        for batch in points.chunks(UPSERT_BATCH) {
            self.client
                .upsert_points(UpsertPointsBuilder::new(&collection, batch.to_vec()).wait(true))
                .await
                .map_err(|e| error::from_qdrant("upsert points", e))?;
        }

        let mut stale = Filter::must([of_creator(creator), Condition::matches(PAYLOAD_DOCUMENT, document.to_owned())]);
        if !kept.is_empty() {
            stale.must_not.push(Condition::has_id(kept));
        }
        self.client
            .delete_points(DeletePointsBuilder::new(&collection).points(stale).wait(true))
            .await
            .map_err(|e| error::from_qdrant("delete replaced points", e))?;
        Ok(())
    }

    async fn retain_documents(
        &self,
        creator: CreatorId,
        embedder: &EmbedderId,
        keep: &[String],
    ) -> Result<(), IndexError> {
        let current = self.ensure_collection(embedder).await?;
        let mut deleted = Filter::must([of_creator(creator)]);
        if !keep.is_empty() {
            deleted.must_not.push(Condition::matches(PAYLOAD_DOCUMENT, keep.to_vec()));
        }
        self.client
            .delete_points(DeletePointsBuilder::new(&current).points(deleted).wait(true))
            .await
            .map_err(|e| error::from_qdrant("delete removed documents", e))?;

        // The creator's vectors of earlier embedders go too (the port's contract): every other
        // collection under our prefix.
        for other in self.collections().await? {
            if other == current {
                continue;
            }
            self.client
                .delete_points(DeletePointsBuilder::new(&other).points(Filter::must([of_creator(creator)])).wait(true))
                .await
                .map_err(|e| error::from_qdrant("delete other embedders' points", e))?;
        }
        Ok(())
    }

    /// Every collection under our prefix (one per embedder, current or earlier) loses the
    /// creator's points; no collection is created.
    async fn remove_creator(&self, creator: CreatorId) -> Result<(), IndexError> {
        for collection in self.collections().await? {
            self.client
                .delete_points(
                    DeletePointsBuilder::new(&collection).points(Filter::must([of_creator(creator)])).wait(true),
                )
                .await
                .map_err(|e| error::from_qdrant("delete the creator's points", e))?;
        }
        Ok(())
    }

    async fn search(
        &self,
        creator: CreatorId,
        embedder: &EmbedderId,
        query: &[f32],
        limit: usize,
    ) -> Result<Vec<VectorHit>, IndexError> {
        check_dimensions(embedder, query)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let collection = self.ensure_collection(embedder).await?;
        let response = self
            .client
            .query(
                QueryPointsBuilder::new(&collection)
                    .query(Query::new_nearest(query.to_vec()))
                    // Tenant isolation: never a query without the creator filter.
                    .filter(Filter::must([of_creator(creator)]))
                    .limit(limit as u64)
                    .with_payload(true),
            )
            .await
            .map_err(|e| error::from_qdrant("query points", e))?;
        let tenant = creator.to_string();
        let mut hits = Vec::with_capacity(response.result.len());
        for point in response.result {
            // Checked again here: a server that ignored the filter must not leak another creator's chunks.
            if point_creator(&point.payload) != Some(tenant.as_str()) {
                tracing::error!(creator = %creator, collection = %collection, "Qdrant returned a point of another creator; dropped");
                continue;
            }
            hits.push(VectorHit { key: chunk_key(&point.payload)?, score: point.score });
        }
        Ok(hits)
    }
}
