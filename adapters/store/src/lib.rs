//! Twin's storage adapter: the engine's `ConversationStore`, `CreatorStore` and `NudgeStore` ports
//! over PostgreSQL (production, row-level security) and SQLite (the embedded default).
//!
//! The `twin` binary opens a [`Store`] from the database URL, runs [`Store::migrate`] when asked,
//! and hands the store to the actors as the three ports.

mod content_hash;
mod embedded_index;
mod error;
mod knowledge;
mod migrations;
mod plan;
mod postgres;
mod programs;
mod rows;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

use twin_engine::ids::{ConversationId, NudgeId, Seq};
use twin_engine::knowledge::KnowledgeDocument;
use twin_engine::ports::{
    ChunkKey, ConversationStore, CreatorStore, DocumentStatus, KnowledgeStore, LoadLimits, NudgeStore, ProgramSource,
    PutOutcome, Record, ScheduledNudge, StoreError, StoredConversation, StoredCreator,
};
use twin_engine::twin::CreatorProfile;
use twin_engine::{CreatorId, Message, Timestamp};

pub use embedded_index::EmbeddedIndex;
pub use error::{MigrationPending, UnsupportedUrl};

/// A connected store; cloning shares the pools.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Postgres(postgres::PgStore),
    Sqlite(sqlite::SqliteStore),
}

impl Store {
    /// Opens `postgres://…` (or `postgresql://…`) or `sqlite://path`. A SQLite file (and its
    /// folder) is created when missing. PostgreSQL pools switch to the `twin_app` and
    /// `twin_system` roles on every connection, so they work only once [`Store::migrate`] ran.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let scheme = url.split_once(':').map_or(url, |(scheme, _)| scheme);
        let backend = match scheme {
            "postgres" | "postgresql" => Backend::Postgres(postgres::PgStore::connect(url).await?),
            "sqlite" => Backend::Sqlite(sqlite::SqliteStore::connect(url).await?),
            other => return Err(StoreError::unavailable(UnsupportedUrl { scheme: other.to_owned() })),
        };
        Ok(Store { backend })
    }

    /// Applies the migrations as the URL's user (the schema owner), never through the role pools.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.migrate().await,
            Backend::Sqlite(s) => s.migrate().await,
        }
    }

    /// Ok when the database answers and every migration is applied (for `/readyz`).
    pub async fn ready(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.ready().await,
            Backend::Sqlite(s) => s.ready().await,
        }
    }

    /// Closes the pools, waiting for connections in use to come back.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Postgres(s) => s.close().await,
            Backend::Sqlite(s) => s.close().await,
        }
    }

    /// `"postgres"` or `"sqlite"`.
    pub fn backend(&self) -> &'static str {
        match &self.backend {
            Backend::Postgres(_) => "postgres",
            Backend::Sqlite(_) => "sqlite",
        }
    }

    /// The `twin_app` pool, for the row-level security tests only: the service goes through the
    /// ports. `None` for SQLite.
    #[doc(hidden)]
    pub fn postgres_app_pool(&self) -> Option<&sqlx::PgPool> {
        match &self.backend {
            Backend::Postgres(s) => Some(s.app_pool()),
            Backend::Sqlite(_) => None,
        }
    }
}

#[async_trait::async_trait]
impl ConversationStore for Store {
    async fn load(
        &self,
        creator: CreatorId,
        id: ConversationId,
        limits: LoadLimits,
    ) -> Result<Option<StoredConversation>, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.load(creator, id, limits).await,
            Backend::Sqlite(s) => s.load(creator, id, limits).await,
        }
    }

    async fn commit(&self, records: &[Record]) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.commit(records).await,
            Backend::Sqlite(s) => s.commit(records).await,
        }
    }

    fn concurrent_commits(&self) -> usize {
        match &self.backend {
            // Each commit holds one pooled connection; the rest of the pool stays for reads.
            Backend::Postgres(_) => postgres::CONCURRENT_COMMITS,
            // One writer: overlapping commits would only queue on its lock.
            Backend::Sqlite(_) => 1,
        }
    }

    async fn history(
        &self,
        creator: CreatorId,
        id: ConversationId,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.history(creator, id, after, limit).await,
            Backend::Sqlite(s) => s.history(creator, id, after, limit).await,
        }
    }
}

#[async_trait::async_trait]
impl CreatorStore for Store {
    async fn put_creator(
        &self,
        profile: &CreatorProfile,
        documents: &[KnowledgeDocument],
        programs: &[ProgramSource],
    ) -> Result<PutOutcome, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.put_creator(profile, documents, programs).await,
            Backend::Sqlite(s) => s.put_creator(profile, documents, programs).await,
        }
    }

    async fn creator(&self, id: CreatorId) -> Result<Option<StoredCreator>, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.creator(id).await,
            Backend::Sqlite(s) => s.creator(id).await,
        }
    }
}

#[async_trait::async_trait]
impl NudgeStore for Store {
    async fn pending_before(
        &self,
        horizon: Timestamp,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<ScheduledNudge>, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.pending_before(horizon, now, limit).await,
            Backend::Sqlite(s) => s.pending_before(horizon, now, limit).await,
        }
    }

    async fn claim(
        &self,
        ids: &[NudgeId],
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Vec<ScheduledNudge>, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.claim(ids, now, lease_until).await,
            Backend::Sqlite(s) => s.claim(ids, now, lease_until).await,
        }
    }

    async fn release_claims(&self) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.release_claims().await,
            Backend::Sqlite(s) => s.release_claims().await,
        }
    }

    async fn pending_of(
        &self,
        creator: CreatorId,
        conversation: ConversationId,
    ) -> Result<Vec<ScheduledNudge>, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.pending_of(creator, conversation).await,
            Backend::Sqlite(s) => s.pending_of(creator, conversation).await,
        }
    }
}

#[async_trait::async_trait]
impl KnowledgeStore for Store {
    async fn ingestion(&self, creator: CreatorId) -> Result<Vec<DocumentStatus>, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.ingestion(creator).await,
            Backend::Sqlite(s) => s.ingestion(creator).await,
        }
    }

    async fn set_ingestion(&self, creator: CreatorId, status: &DocumentStatus) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.set_ingestion(creator, status).await,
            Backend::Sqlite(s) => s.set_ingestion(creator, status).await,
        }
    }

    async fn vectors(&self, creator: CreatorId, embedder: &str) -> Result<Vec<(ChunkKey, Vec<f32>)>, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.vectors(creator, embedder).await,
            Backend::Sqlite(s) => s.vectors(creator, embedder).await,
        }
    }

    async fn replace_vectors(
        &self,
        creator: CreatorId,
        embedder: &str,
        document: &str,
        content_hash: &str,
        vectors: &[(u32, Vec<f32>)],
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.replace_vectors(creator, embedder, document, content_hash, vectors).await,
            Backend::Sqlite(s) => s.replace_vectors(creator, embedder, document, content_hash, vectors).await,
        }
    }

    async fn retain_vectors(&self, creator: CreatorId, embedder: &str, keep: &[String]) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.retain_vectors(creator, embedder, keep).await,
            Backend::Sqlite(s) => s.retain_vectors(creator, embedder, keep).await,
        }
    }
}
