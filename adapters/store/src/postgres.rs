//! PostgreSQL, the production store: tenant work runs as `twin_app` under row-level security, with
//! the tenant set at the start of every transaction; cross-tenant reads run as `twin_system`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{Connection, Executor, Postgres, Transaction};
use twin_engine::knowledge::KnowledgeDocument;
use twin_engine::ports::{LoadLimits, PutOutcome, Record, StoreError, StoredConversation, StoredCreator};
use twin_engine::twin::CreatorProfile;
use twin_engine::{ConversationId, CreatorId, Message, Seq};
use uuid::Uuid;

use crate::content_hash::{CreatorContent, body_hash};
use crate::error::from_sqlx;
use crate::migrations;
use crate::plan::{TenantBatch, first_missing, plan};
use crate::rows::{ConversationRows, MessageRow, saturating_db, to_db, version_from};

/// Connections for tenant work; each write is one short transaction.
const APP_POOL_SIZE: u32 = 16;
/// Group commits in flight at once; each holds one connection of the app pool.
pub(crate) const CONCURRENT_COMMITS: usize = 4;
/// Connections for the few cross-tenant jobs.
const SYSTEM_POOL_SIZE: u32 = 2;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads that span several statements see one snapshot and never write.
const READ_TX: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

const MESSAGE_COLUMNS: &str = "conversation_id, creator_id, seq, origin, body, client_id, stream, created_at";

type MessageTuple = (Uuid, Uuid, i64, String, String, Option<String>, Option<String>, i64);

#[derive(Clone)]
pub(crate) struct PgStore {
    /// `SET ROLE twin_app` on every connection: row-level security applies.
    app: PgPool,
    /// `SET ROLE twin_system` on every connection: only its narrow policies apply.
    system: PgPool,
    /// The URL's user, the schema owner: used for migrations only. Boxed: it is large and
    /// rarely used.
    owner: Arc<PgConnectOptions>,
}

impl PgStore {
    pub(crate) async fn connect(url: &str) -> Result<Self, StoreError> {
        let owner = PgConnectOptions::from_str(url).map_err(from_sqlx)?.application_name("twin");
        // Fail early on a wrong URL. The role pools connect lazily: before the first migration
        // the roles they switch to do not exist yet.
        let probe = PgConnection::connect_with(&owner).await.map_err(from_sqlx)?;
        probe.close().await.map_err(from_sqlx)?;
        Ok(Self {
            app: role_pool("SET ROLE twin_app", APP_POOL_SIZE, &owner),
            system: role_pool("SET ROLE twin_system", SYSTEM_POOL_SIZE, &owner),
            owner: Arc::new(owner),
        })
    }

    pub(crate) fn app_pool(&self) -> &PgPool {
        &self.app
    }

    pub(crate) async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = PgConnection::connect_with(&self.owner).await.map_err(from_sqlx)?;
        let outcome = migrations::POSTGRES.run(&mut conn).await.map_err(crate::error::from_migrate);
        // Best effort: the server drops the session anyway when the socket closes.
        let _ = conn.close().await;
        outcome
    }

    pub(crate) async fn ready(&self) -> Result<(), StoreError> {
        let applied: Vec<i64> =
            sqlx::query_scalar(migrations::APPLIED_SQL).fetch_all(&self.system).await.map_err(from_sqlx)?;
        migrations::check_applied(&migrations::POSTGRES, &applied)
    }

    pub(crate) async fn close(&self) {
        self.app.close().await;
        self.system.close().await;
    }

    pub(crate) async fn load(
        &self,
        creator: CreatorId,
        id: ConversationId,
        limits: LoadLimits,
    ) -> Result<Option<StoredConversation>, StoreError> {
        let mut tx = self.tenant_tx(creator, READ_TX).await?;
        let row: Option<(String, i64, i64)> =
            sqlx::query_as("SELECT user_id, version, created_at FROM conversations WHERE id = $1 AND creator_id = $2")
                .bind(id.0)
                .bind(creator.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(from_sqlx)?;
        let Some((user, version, created_at)) = row else {
            return Ok(None);
        };
        let last_seq: i64 = sqlx::query_scalar(
            "SELECT coalesce(max(seq), 0)::bigint FROM messages WHERE conversation_id = $1 AND creator_id = $2",
        )
        .bind(id.0)
        .bind(creator.0)
        .fetch_one(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        let recent: Vec<MessageTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND creator_id = $2 \
             ORDER BY seq DESC LIMIT $3"
        )))
        .bind(id.0)
        .bind(creator.0)
        .bind(saturating_db(limits.history as u64))
        .fetch_all(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        let client_ids: Vec<(String, i64)> = sqlx::query_as(
            "SELECT client_id, seq FROM messages WHERE conversation_id = $1 AND creator_id = $2 \
             AND origin = 'user' AND client_id IS NOT NULL ORDER BY seq DESC LIMIT $3",
        )
        .bind(id.0)
        .bind(creator.0)
        .bind(saturating_db(limits.client_ids as u64))
        .fetch_all(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        let rows = ConversationRows {
            user,
            version,
            created_at,
            last_seq,
            recent_newest_first: recent.into_iter().map(message_row).collect(),
            client_ids_newest_first: client_ids,
        };
        rows.into_stored(id, creator).map(Some)
    }

    pub(crate) async fn history(
        &self,
        creator: CreatorId,
        id: ConversationId,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        let mut tx = self.tenant_tx(creator, READ_TX).await?;
        let rows: Vec<MessageTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND creator_id = $2 AND seq > $3 \
             ORDER BY seq LIMIT $4"
        )))
        .bind(id.0)
        .bind(creator.0)
        .bind(saturating_db(after.0))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        rows.into_iter().map(message_row).map(MessageRow::into_message).collect()
    }

    /// One transaction for the whole slice; each tenant's rows are written after that tenant is
    /// set, with one statement per kind of row.
    pub(crate) async fn commit(&self, records: &[Record]) -> Result<(), StoreError> {
        let batches = plan(records)?;
        if batches.is_empty() {
            return Ok(());
        }
        let mut tx = self.app.begin().await.map_err(from_sqlx)?;
        for batch in &batches {
            set_tenant(&mut tx, batch.creator).await?;
            insert_conversations(&mut tx, batch).await?;
            update_conversations(&mut tx, batch).await?;
            insert_messages(&mut tx, batch).await?;
        }
        tx.commit().await.map_err(from_sqlx)
    }

    pub(crate) async fn put_creator(
        &self,
        profile: &CreatorProfile,
        documents: &[KnowledgeDocument],
    ) -> Result<PutOutcome, StoreError> {
        let content = CreatorContent::new(profile, documents)?;
        let id = profile.slug.creator_id();
        let mut tx = self.tenant_tx(id, "BEGIN").await?;
        // Two imports of a new creator may race: the loser's INSERT waits for the winner, conflicts
        // on the id or the slug (they name the same creator), and the second round takes the
        // update path.
        for _ in 0..2 {
            let current: Option<(String, i64)> =
                sqlx::query_as("SELECT content_hash, version FROM creators WHERE id = $1 FOR UPDATE")
                    .bind(id.0)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
            let outcome = match current {
                Some((hash, _)) if hash == content.hash => {
                    tx.rollback().await.map_err(from_sqlx)?;
                    return Ok(PutOutcome::Unchanged);
                }
                Some((_, version)) => {
                    write_creator(&mut tx, UPDATE_CREATOR, id, profile, &content).await?;
                    PutOutcome::Updated { version: version_from(version)? + 1 }
                }
                None => {
                    if write_creator(&mut tx, INSERT_CREATOR, id, profile, &content).await? == 0 {
                        continue;
                    }
                    PutOutcome::Created
                }
            };
            replace_documents(&mut tx, id, &content).await?;
            tx.commit().await.map_err(from_sqlx)?;
            return Ok(outcome);
        }
        Err(StoreError::Corrupt(format!("creator {id} was neither found nor inserted")))
    }

    pub(crate) async fn creator(&self, id: CreatorId) -> Result<Option<StoredCreator>, StoreError> {
        let mut tx = self.tenant_tx(id, READ_TX).await?;
        let row: Option<(Json<CreatorProfile>, i64)> =
            sqlx::query_as("SELECT profile, version FROM creators WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(from_sqlx)?;
        let Some((Json(profile), version)) = row else {
            return Ok(None);
        };
        // Byte order, as the content hash sorts, whatever the database's collation.
        let documents: Vec<(String, String)> = sqlx::query_as(
            "SELECT path, body FROM knowledge_documents WHERE creator_id = $1 ORDER BY path COLLATE \"C\"",
        )
        .bind(id.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(Some(StoredCreator {
            profile,
            documents: documents.into_iter().map(|(path, body)| KnowledgeDocument { path, body }).collect(),
            version: version_from(version)?,
        }))
    }

    /// A transaction on the app pool with the tenant set for all its statements.
    async fn tenant_tx(
        &self,
        creator: CreatorId,
        begin: &'static str,
    ) -> Result<Transaction<'static, Postgres>, StoreError> {
        let mut tx = self.app.begin_with(begin).await.map_err(from_sqlx)?;
        set_tenant(&mut tx, creator).await?;
        Ok(tx)
    }
}

fn role_pool(set_role: &'static str, size: u32, options: &PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                conn.execute(set_role).await?;
                Ok(())
            })
        })
        .connect_lazy_with(options.clone())
}

/// Row-level security reads the tenant from this transaction-local setting; it reverts when the
/// transaction ends, so a pooled connection never carries it into its next use.
const UPDATE_CREATOR: &str = "UPDATE creators SET slug = $2, profile = $3::jsonb, content_hash = $4, \
     version = version + 1, updated_at = now() WHERE id = $1";
const INSERT_CREATOR: &str = "INSERT INTO creators (id, slug, profile, content_hash, version) \
     VALUES ($1, $2, $3::jsonb, $4, 1) ON CONFLICT DO NOTHING";

/// Runs one of the creator statements above, which take the same four values; rows affected.
async fn write_creator(
    conn: &mut PgConnection,
    sql: &'static str,
    id: CreatorId,
    profile: &CreatorProfile,
    content: &CreatorContent<'_>,
) -> Result<u64, StoreError> {
    let done = sqlx::query(sql)
        .bind(id.0)
        .bind(profile.slug.as_str())
        .bind(&content.profile_json)
        .bind(&content.hash)
        .execute(conn)
        .await
        .map_err(from_sqlx)?;
    Ok(done.rows_affected())
}

async fn set_tenant(conn: &mut PgConnection, creator: CreatorId) -> Result<(), StoreError> {
    sqlx::query("SELECT set_config('app.creator_id', $1, true)")
        .bind(creator.0.to_string())
        .execute(conn)
        .await
        .map_err(from_sqlx)?;
    Ok(())
}

/// A conversation that already exists refuses the whole commit: the writer's state is stale.
async fn insert_conversations(conn: &mut PgConnection, batch: &TenantBatch<'_>) -> Result<(), StoreError> {
    if batch.created.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = batch.created.iter().map(|h| h.id.0).collect();
    let users: Vec<&str> = batch.created.iter().map(|h| h.user.as_str()).collect();
    let versions = batch.created.iter().map(|h| to_db("version", h.version)).collect::<Result<Vec<_>, _>>()?;
    let created_at: Vec<i64> = batch.created.iter().map(|h| h.created_at.millis()).collect();
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO conversations (id, creator_id, user_id, version, created_at) \
         SELECT u.id, $1, u.user_id, u.version, u.created_at \
         FROM UNNEST($2::uuid[], $3::text[], $4::bigint[], $5::bigint[]) AS u(id, user_id, version, created_at) \
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(batch.creator.0)
    .bind(&ids)
    .bind(&users)
    .bind(&versions)
    .bind(&created_at)
    .fetch_all(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    if let Some(stale) = first_missing(batch.created.iter().map(|h| h.id.0), &inserted) {
        return Err(StoreError::Conflict { conversation: ConversationId(stale), expected: 0 });
    }
    Ok(())
}

/// Moves each conversation from its expected version; one that moved on refuses the commit.
async fn update_conversations(conn: &mut PgConnection, batch: &TenantBatch<'_>) -> Result<(), StoreError> {
    if batch.updated.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = batch.updated.iter().map(|(h, _)| h.id.0).collect();
    let expected = batch.updated.iter().map(|(_, e)| to_db("version", *e)).collect::<Result<Vec<_>, _>>()?;
    let versions = batch.updated.iter().map(|(h, _)| to_db("version", h.version)).collect::<Result<Vec<_>, _>>()?;
    let updated: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE conversations AS c SET version = u.version, updated_at = now() \
         FROM UNNEST($2::uuid[], $3::bigint[], $4::bigint[]) AS u(id, expected, version) \
         WHERE c.id = u.id AND c.creator_id = $1 AND c.version = u.expected RETURNING c.id",
    )
    .bind(batch.creator.0)
    .bind(&ids)
    .bind(&expected)
    .bind(&versions)
    .fetch_all(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    if let Some(stale) = first_missing(ids.iter().copied(), &updated) {
        let expected = batch.updated.iter().find(|(h, _)| h.id.0 == stale).map_or(0, |(_, e)| *e);
        return Err(StoreError::Conflict { conversation: ConversationId(stale), expected });
    }
    Ok(())
}

/// A message whose seq or client id is already stored refuses the commit; `expected` is then the
/// conversation's stored version. A message of a conversation not stored for this tenant too.
async fn insert_messages(conn: &mut PgConnection, batch: &TenantBatch<'_>) -> Result<(), StoreError> {
    let Some(first) = batch.messages.first() else {
        return Ok(());
    };
    let conversations: Vec<Uuid> = batch.messages.iter().map(|m| m.conversation.0).collect();
    let seqs = batch.messages.iter().map(|m| to_db("seq", m.seq.0)).collect::<Result<Vec<_>, _>>()?;
    let origins: Vec<&str> = batch.messages.iter().map(|m| m.origin.as_str()).collect();
    let bodies: Vec<&str> = batch.messages.iter().map(|m| m.text.as_str()).collect();
    let client_ids: Vec<Option<&str>> =
        batch.messages.iter().map(|m| m.client_id.as_ref().map(|c| c.as_str())).collect();
    let streams: Vec<Option<&str>> = batch.messages.iter().map(|m| m.stream.as_ref().map(|s| s.as_str())).collect();
    let created_at: Vec<i64> = batch.messages.iter().map(|m| m.created_at.millis()).collect();
    let inserted: Result<Vec<(Uuid, i64)>, sqlx::Error> = sqlx::query_as(
        "INSERT INTO messages (conversation_id, seq, creator_id, origin, body, client_id, stream, created_at) \
         SELECT u.conversation_id, u.seq, $1, u.origin, u.body, u.client_id, u.stream, u.created_at \
         FROM UNNEST($2::uuid[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[]) \
              AS u(conversation_id, seq, origin, body, client_id, stream, created_at) \
         ON CONFLICT DO NOTHING RETURNING conversation_id, seq",
    )
    .bind(batch.creator.0)
    .bind(&conversations)
    .bind(&seqs)
    .bind(&origins)
    .bind(&bodies)
    .bind(&client_ids)
    .bind(&streams)
    .bind(&created_at)
    .fetch_all(&mut *conn)
    .await;
    let inserted = match inserted {
        Ok(rows) => rows,
        Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
            return Err(StoreError::Conflict { conversation: first.conversation, expected: 0 });
        }
        Err(e) => return Err(from_sqlx(e)),
    };
    let keys = conversations.iter().copied().zip(seqs.iter().copied());
    if let Some((conversation, _)) = first_missing(keys, &inserted) {
        let stored: Option<i64> = sqlx::query_scalar("SELECT version FROM conversations WHERE id = $1")
            .bind(conversation)
            .fetch_optional(&mut *conn)
            .await
            .map_err(from_sqlx)?;
        let expected = stored.map(version_from).transpose()?.unwrap_or(0);
        return Err(StoreError::Conflict { conversation: ConversationId(conversation), expected });
    }
    Ok(())
}

/// Replaces the creator's documents with the given set: removed paths are deleted, changed bodies
/// rewritten, unchanged rows left alone.
async fn replace_documents(
    conn: &mut PgConnection,
    creator: CreatorId,
    content: &CreatorContent<'_>,
) -> Result<(), StoreError> {
    let paths: Vec<&str> = content.documents.iter().map(|d| d.path.as_str()).collect();
    let bodies: Vec<&str> = content.documents.iter().map(|d| d.body.as_str()).collect();
    let hashes: Vec<String> = content.documents.iter().map(|d| body_hash(&d.body)).collect();
    sqlx::query("DELETE FROM knowledge_documents WHERE creator_id = $1 AND NOT (path = ANY($2::text[]))")
        .bind(creator.0)
        .bind(&paths)
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    if paths.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO knowledge_documents (creator_id, path, body, content_hash) \
         SELECT $1, u.path, u.body, u.content_hash FROM UNNEST($2::text[], $3::text[], $4::text[]) \
              AS u(path, body, content_hash) \
         ON CONFLICT (creator_id, path) DO UPDATE SET body = excluded.body, content_hash = excluded.content_hash \
         WHERE knowledge_documents.content_hash <> excluded.content_hash",
    )
    .bind(creator.0)
    .bind(&paths)
    .bind(&bodies)
    .bind(&hashes)
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok(())
}

fn message_row((conversation, creator, seq, origin, body, client_id, stream, created_at): MessageTuple) -> MessageRow {
    MessageRow { conversation, creator, seq, origin, body, client_id, stream, created_at }
}
