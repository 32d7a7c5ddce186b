//! Twin's storage adapter: the engine's `ConversationStore`, `CreatorStore`, `NudgeStore`,
//! `KnowledgeStore` and `ChannelStore` ports over PostgreSQL (production, row-level security) and
//! SQLite (the embedded default), with the reads of the creator REST API, GDPR and the stats.
//!
//! The `twin` binary opens a [`Store`] from the database URL, runs [`Store::migrate`] when asked,
//! and hands the store to the actors and the channel adapters as these ports.

mod accounts;
mod admin;
mod channels;
mod content_hash;
mod embedded_index;
mod error;
pub mod gdpr;
mod issuers;
mod knowledge;
mod migrations;
mod ownership;
mod plan;
mod postgres;
mod programs;
mod rows;
mod sqlite;
pub mod stats;
#[cfg(feature = "testing")]
pub mod testing;

use twin_engine::channel::{ChannelKind, DeliveryState};
use twin_engine::ids::{ConversationId, NudgeId, Seq, UserId};
use twin_engine::knowledge::KnowledgeDocument;
use twin_engine::ports::{
    ChannelStore, ChunkKey, ConversationStore, CreatorStore, DocumentStatus, InboxRow, KnowledgeStore, LoadLimits,
    NudgeStore, OutboxRow, OutboxUpdate, ProgramSource, PutOutcome, Record, ScheduledNudge, StatusChange, StoreError,
    StoredConversation, StoredCreator,
};
use twin_engine::twin::CreatorProfile;
use twin_engine::{CreatorId, Message, Timestamp};

pub use accounts::{
    Account, AccountRole, AddressFailures, AuditEntry, AuditRecord, Created, Credentials, LoginFailures, NewAccount,
    NewRefreshToken, RefreshGrant, Rotation,
};
pub use admin::{ConversationFilter, ConversationSummary, NUDGE_STATUSES, NudgeCancel, NudgeSummary};
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

    /// The creator whose `[user_tokens] issuer` is `issuer` (a foreign end-user token's `iss`),
    /// with its profile; `None` when no creator has it. Cross-tenant: the token is not verified
    /// yet. Several creators with the same issuer is an error, never a guess.
    pub async fn creator_by_token_issuer(
        &self,
        issuer: &str,
    ) -> Result<Option<(CreatorId, CreatorProfile)>, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.creator_by_token_issuer(issuer).await,
            Backend::Sqlite(s) => s.creator_by_token_issuer(issuer).await,
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

    async fn claim_owner(
        &self,
        creator: CreatorId,
        conversation: ConversationId,
        node: &str,
        live: &[String],
        force: bool,
    ) -> Result<Option<u64>, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.claim_owner(creator, conversation, node, live, force).await,
            Backend::Sqlite(s) => s.claim_owner(creator, conversation, node, live, force).await,
        }
    }

    async fn release_owner(
        &self,
        creator: CreatorId,
        conversation: ConversationId,
        epoch: u64,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.release_owner(creator, conversation, epoch).await,
            Backend::Sqlite(s) => s.release_owner(creator, conversation, epoch).await,
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

#[async_trait::async_trait]
impl ChannelStore for Store {
    async fn inbox_put(
        &self,
        creator: CreatorId,
        channel: ChannelKind,
        items: &[(String, String)],
        now: Timestamp,
    ) -> Result<Vec<InboxRow>, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.inbox_put(creator, channel, items, now).await,
            Backend::Sqlite(s) => s.inbox_put(creator, channel, items, now).await,
        }
    }

    async fn inbox_pending(
        &self,
        received_by: Timestamp,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<InboxRow>, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.inbox_pending(received_by, now, limit).await,
            Backend::Sqlite(s) => s.inbox_pending(received_by, now, limit).await,
        }
    }

    async fn inbox_release_claims(&self) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.inbox_release_claims().await,
            Backend::Sqlite(s) => s.inbox_release_claims().await,
        }
    }

    async fn inbox_done(&self, creator: CreatorId, id: i64, now: Timestamp) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.inbox_done(creator, id, now).await,
            Backend::Sqlite(s) => s.inbox_done(creator, id, now).await,
        }
    }

    async fn identity(
        &self,
        creator: CreatorId,
        channel: ChannelKind,
        external: &str,
    ) -> Result<Option<UserId>, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.identity(creator, channel, external).await,
            Backend::Sqlite(s) => s.identity(creator, channel, external).await,
        }
    }

    async fn bind_identity(
        &self,
        creator: CreatorId,
        channel: ChannelKind,
        external: &str,
        user: &UserId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.bind_identity(creator, channel, external, user, now).await,
            Backend::Sqlite(s) => s.bind_identity(creator, channel, external, user, now).await,
        }
    }

    async fn put_link_code(
        &self,
        creator: CreatorId,
        code: &str,
        user: &UserId,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.put_link_code(creator, code, user, expires_at).await,
            Backend::Sqlite(s) => s.put_link_code(creator, code, user, expires_at).await,
        }
    }

    async fn take_link_code(
        &self,
        creator: CreatorId,
        code: &str,
        now: Timestamp,
    ) -> Result<Option<UserId>, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.take_link_code(creator, code, now).await,
            Backend::Sqlite(s) => s.take_link_code(creator, code, now).await,
        }
    }

    async fn whatsapp_creator(&self, phone_number_id: &str) -> Result<Option<CreatorId>, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.whatsapp_creator(phone_number_id).await,
            Backend::Sqlite(s) => s.whatsapp_creator(phone_number_id).await,
        }
    }

    async fn outbox_due(&self, now: Timestamp, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.outbox_due(now, limit).await,
            Backend::Sqlite(s) => s.outbox_due(now, limit).await,
        }
    }

    async fn outbox_release_claims(&self) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.outbox_release_claims().await,
            Backend::Sqlite(s) => s.outbox_release_claims().await,
        }
    }

    async fn outbox_update(
        &self,
        creator: CreatorId,
        conversation: ConversationId,
        seq: Seq,
        update: &OutboxUpdate,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.outbox_update(creator, conversation, seq, update, now).await,
            Backend::Sqlite(s) => s.outbox_update(creator, conversation, seq, update, now).await,
        }
    }

    async fn outbox_status(
        &self,
        creator: CreatorId,
        channel: ChannelKind,
        provider_message_id: &str,
        state: DeliveryState,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<Option<StatusChange>, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.outbox_status(creator, channel, provider_message_id, state, error, now).await,
            Backend::Sqlite(s) => s.outbox_status(creator, channel, provider_message_id, state, error, now).await,
        }
    }

    async fn outbox_entry(
        &self,
        creator: CreatorId,
        conversation: ConversationId,
        seq: Seq,
    ) -> Result<Option<OutboxRow>, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.outbox_entry(creator, conversation, seq).await,
            Backend::Sqlite(s) => s.outbox_entry(creator, conversation, seq).await,
        }
    }
}
