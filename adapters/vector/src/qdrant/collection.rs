//! One Qdrant collection per embedder: its name, and creating it (cosine distance, the embedder's
//! dimensions, a tenant index on `creator_id`) on first use.

use qdrant_client::qdrant::{
    CreateCollectionBuilder, CreateFieldIndexCollectionBuilder, Distance, FieldType, KeywordIndexParamsBuilder,
    VectorParamsBuilder,
};
use twin_engine::ports::{EmbedderId, IndexError};
use uuid::Uuid;

use super::QdrantIndex;
use super::error::from_qdrant;
use super::point::PAYLOAD_CREATOR;

/// Namespace of the short hash that keeps two embedder names apart when sanitising merged them.
const NAME_NAMESPACE: Uuid = Uuid::from_u128(0x2a4e_91c7_0b6d_4f38_a5e2_7c19_d08b_63f4);

/// `prefix` + the embedder key with every character Qdrant may refuse replaced by `_`
/// (`hashed-ngrams-v1/1024` → `hashed-ngrams-v1_1024`). When a character other than the key's own
/// `/` was replaced, a short hash of the key is appended, so `a:b/8` and `a_b/8` stay apart.
pub(super) fn collection_name(prefix: &str, embedder: &EmbedderId) -> String {
    let name: String = embedder
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' })
        .collect();
    let mut collection = format!("{prefix}{name}_{}", embedder.dimensions);
    if name != embedder.name {
        let hash = Uuid::new_v5(&NAME_NAMESPACE, embedder.key().as_bytes()).simple().to_string();
        collection.push('_');
        collection.push_str(&hash[..8]);
    }
    collection
}

impl QdrantIndex {
    /// The embedder's collection, created with its `creator_id` index if it does not exist yet.
    pub(super) async fn ensure_collection(&self, embedder: &EmbedderId) -> Result<String, IndexError> {
        let name = self.collection(embedder);
        let mut ready = self.ready.lock().await;
        if ready.contains(&name) {
            return Ok(name);
        }
        let exists =
            self.client.collection_exists(&name).await.map_err(|e| from_qdrant("check a collection exists", e))?;
        if !exists {
            let size = u64::try_from(embedder.dimensions)
                .map_err(|_| IndexError::Invalid(format!("embedder {} is too wide", embedder.key())))?;
            self.client
                .create_collection(
                    CreateCollectionBuilder::new(&name)
                        .vectors_config(VectorParamsBuilder::new(size, Distance::Cosine)),
                )
                .await
                .map_err(|e| from_qdrant("create a collection", e))?;
            tracing::info!(collection = %name, dimensions = embedder.dimensions, "created a Qdrant collection");
        }
        // Also for an existing collection: one made by an interrupted first run may lack the index,
        // and creating an index that exists is a no-op in Qdrant.
        self.client
            .create_field_index(
                CreateFieldIndexCollectionBuilder::new(&name, PAYLOAD_CREATOR, FieldType::Keyword)
                    // Qdrant co-locates a tenant's points and plans filtered searches per tenant.
                    .field_index_params(KeywordIndexParamsBuilder::default().is_tenant(true))
                    .wait(true),
            )
            .await
            .map_err(|e| from_qdrant("index creator_id", e))?;
        ready.insert(name.clone());
        Ok(name)
    }

    /// Every collection of this index (those whose name starts with the prefix).
    pub(super) async fn collections(&self) -> Result<Vec<String>, IndexError> {
        let listed = self.client.list_collections().await.map_err(|e| from_qdrant("list collections", e))?;
        Ok(listed.collections.into_iter().map(|c| c.name).filter(|name| name.starts_with(&self.prefix)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_collection_is_named_from_the_prefix_and_the_embedder_key() {
        assert_eq!(collection_name("twin_", &EmbedderId::new("hashed-ngrams-v1", 1024)), "twin_hashed-ngrams-v1_1024");
    }

    #[test]
    fn names_that_sanitising_would_merge_stay_apart() {
        let colon = collection_name("twin_", &EmbedderId::new("minilm:all-MiniLM-L6-v2", 384));
        let underscore = collection_name("twin_", &EmbedderId::new("minilm_all-MiniLM-L6-v2", 384));
        assert!(colon.starts_with("twin_minilm_all-MiniLM-L6-v2_384_"), "{colon}");
        assert_eq!(underscore, "twin_minilm_all-MiniLM-L6-v2_384");
        assert_ne!(colon, underscore);
    }
}
