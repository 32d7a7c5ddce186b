//! SQLite, the embedded default: one file in WAL mode. There is no row-level security, so every
//! query names its tenant (`creator_id`) explicitly; writes take the write lock up front.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};
use twin_engine::knowledge::KnowledgeDocument;
use twin_engine::ports::{LoadLimits, PutOutcome, Record, StoreError, StoredConversation, StoredCreator};
use twin_engine::twin::CreatorProfile;
use twin_engine::{ConversationId, CreatorId, Message, Seq};
use uuid::fmt::Hyphenated;

use crate::content_hash::{CreatorContent, body_hash};
use crate::error::from_sqlx;
use crate::migrations;
use crate::plan::{TenantBatch, first_missing, plan};
use crate::rows::{ConversationRows, MessageRow, corrupt, saturating_db, to_db, version_from};

const POOL_SIZE: u32 = 8;
/// How long a writer waits for another connection's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Rows per multi-row INSERT, well under SQLite's 32766 bound variables.
const ROWS_PER_INSERT: usize = 500;
/// Takes the write lock at BEGIN, so two writers queue on the busy timeout instead of failing
/// when a read lock cannot be upgraded.
const WRITE_TX: &str = "BEGIN IMMEDIATE";
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

type MessageTuple = (Hyphenated, Hyphenated, i64, String, String, Option<String>, Option<String>, i64);

#[derive(Clone)]
pub(crate) struct SqliteStore {
    /// Reads.
    pool: SqlitePool,
    /// Every write, on one connection: SQLite has one writer anyway, and a connection that alone
    /// writes keeps its page cache valid across commits instead of re-reading pages another
    /// connection changed.
    writer: SqlitePool,
}

impl SqliteStore {
    pub(crate) async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(from_sqlx)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        if let Some(folder) = options.get_filename().parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(folder).await.map_err(StoreError::unavailable)?;
        }
        let writer =
            SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await.map_err(from_sqlx)?;
        let pool =
            SqlitePoolOptions::new().max_connections(POOL_SIZE).connect_with(options).await.map_err(from_sqlx)?;
        Ok(Self { pool, writer })
    }

    pub(crate) async fn migrate(&self) -> Result<(), StoreError> {
        migrations::SQLITE.run(&self.writer).await.map_err(crate::error::from_migrate)
    }

    pub(crate) async fn ready(&self) -> Result<(), StoreError> {
        let applied: Vec<i64> =
            sqlx::query_scalar(migrations::APPLIED_SQL).fetch_all(&self.pool).await.map_err(from_sqlx)?;
        migrations::check_applied(&migrations::SQLITE, &applied)
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    pub(crate) async fn load(
        &self,
        creator: CreatorId,
        id: ConversationId,
        limits: LoadLimits,
    ) -> Result<Option<StoredConversation>, StoreError> {
        // One read transaction: one WAL snapshot for all the statements.
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        let row: Option<(String, i64, i64)> =
            sqlx::query_as("SELECT user_id, version, created_at FROM conversations WHERE id = ? AND creator_id = ?")
                .bind(id.0.hyphenated())
                .bind(creator.0.hyphenated())
                .fetch_optional(&mut *tx)
                .await
                .map_err(from_sqlx)?;
        let Some((user, version, created_at)) = row else {
            return Ok(None);
        };
        let last_seq: i64 = sqlx::query_scalar(
            "SELECT coalesce(max(seq), 0) FROM messages WHERE conversation_id = ? AND creator_id = ?",
        )
        .bind(id.0.hyphenated())
        .bind(creator.0.hyphenated())
        .fetch_one(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        let recent: Vec<MessageTuple> = sqlx::query_as(
            "SELECT conversation_id, creator_id, seq, origin, body, client_id, stream, created_at FROM messages \
             WHERE conversation_id = ? AND creator_id = ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(id.0.hyphenated())
        .bind(creator.0.hyphenated())
        .bind(saturating_db(limits.history as u64))
        .fetch_all(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        let client_ids: Vec<(String, i64)> = sqlx::query_as(
            "SELECT client_id, seq FROM messages WHERE conversation_id = ? AND creator_id = ? \
             AND origin = 'user' AND client_id IS NOT NULL ORDER BY seq DESC LIMIT ?",
        )
        .bind(id.0.hyphenated())
        .bind(creator.0.hyphenated())
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
        let rows: Vec<MessageTuple> = sqlx::query_as(
            "SELECT conversation_id, creator_id, seq, origin, body, client_id, stream, created_at FROM messages \
             WHERE conversation_id = ? AND creator_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(id.0.hyphenated())
        .bind(creator.0.hyphenated())
        .bind(saturating_db(after.0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        rows.into_iter().map(message_row).map(MessageRow::into_message).collect()
    }

    /// One transaction for the whole slice, multi-row statements per tenant.
    pub(crate) async fn commit(&self, records: &[Record]) -> Result<(), StoreError> {
        let batches = plan(records)?;
        if batches.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin_with(WRITE_TX).await.map_err(from_sqlx)?;
        for batch in &batches {
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
        let id = profile.slug.creator_id().0.hyphenated();
        let mut tx = self.writer.begin_with(WRITE_TX).await.map_err(from_sqlx)?;
        let current: Option<(String, i64)> = sqlx::query_as("SELECT content_hash, version FROM creators WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        let outcome = match current {
            Some((hash, _)) if hash == content.hash => {
                tx.rollback().await.map_err(from_sqlx)?;
                return Ok(PutOutcome::Unchanged);
            }
            Some((_, version)) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE creators SET slug = ?, profile = ?, content_hash = ?, version = version + 1, \
                     updated_at = {NOW} WHERE id = ?"
                )))
                .bind(profile.slug.as_str())
                .bind(&content.profile_json)
                .bind(&content.hash)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                PutOutcome::Updated { version: version_from(version)? + 1 }
            }
            None => {
                sqlx::query("INSERT INTO creators (id, slug, profile, content_hash, version) VALUES (?, ?, ?, ?, 1)")
                    .bind(id)
                    .bind(profile.slug.as_str())
                    .bind(&content.profile_json)
                    .bind(&content.hash)
                    .execute(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                PutOutcome::Created
            }
        };
        // The whole set is rewritten: simpler than PostgreSQL's upsert and as cheap in-process.
        sqlx::query("DELETE FROM knowledge_documents WHERE creator_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        for chunk in content.documents.chunks(ROWS_PER_INSERT) {
            let mut insert =
                QueryBuilder::<Sqlite>::new("INSERT INTO knowledge_documents (creator_id, path, body, content_hash) ");
            insert.push_values(chunk, |mut row, doc| {
                row.push_bind(id)
                    .push_bind(doc.path.clone())
                    .push_bind(doc.body.clone())
                    .push_bind(body_hash(&doc.body));
            });
            insert.build().execute(&mut *tx).await.map_err(from_sqlx)?;
        }
        tx.commit().await.map_err(from_sqlx)?;
        Ok(outcome)
    }

    pub(crate) async fn creator(&self, id: CreatorId) -> Result<Option<StoredCreator>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        let row: Option<(String, i64)> = sqlx::query_as("SELECT profile, version FROM creators WHERE id = ?")
            .bind(id.0.hyphenated())
            .fetch_optional(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        let Some((profile, version)) = row else {
            return Ok(None);
        };
        // SQLite's default collation is byte order, as the content hash sorts.
        let documents: Vec<(String, String)> =
            sqlx::query_as("SELECT path, body FROM knowledge_documents WHERE creator_id = ? ORDER BY path")
                .bind(id.0.hyphenated())
                .fetch_all(&mut *tx)
                .await
                .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(Some(StoredCreator {
            profile: serde_json::from_str(&profile).map_err(corrupt("creator profile"))?,
            documents: documents.into_iter().map(|(path, body)| KnowledgeDocument { path, body }).collect(),
            version: version_from(version)?,
        }))
    }
}

/// A conversation that already exists refuses the whole commit: the writer's state is stale.
async fn insert_conversations(conn: &mut SqliteConnection, batch: &TenantBatch<'_>) -> Result<(), StoreError> {
    let creator = batch.creator.0.hyphenated();
    for chunk in batch.created.chunks(ROWS_PER_INSERT) {
        let versions = chunk.iter().map(|h| to_db("version", h.version)).collect::<Result<Vec<_>, _>>()?;
        let mut insert =
            QueryBuilder::<Sqlite>::new("INSERT INTO conversations (id, creator_id, user_id, version, created_at) ");
        insert.push_values(chunk.iter().zip(&versions), |mut row, (header, version)| {
            row.push_bind(header.id.0.hyphenated())
                .push_bind(creator)
                .push_bind(header.user.as_str().to_owned())
                .push_bind(*version)
                .push_bind(header.created_at.millis());
        });
        insert.push(" ON CONFLICT DO NOTHING RETURNING id");
        let inserted: Vec<Hyphenated> = insert.build_query_scalar().fetch_all(&mut *conn).await.map_err(from_sqlx)?;
        let inserted: Vec<uuid::Uuid> = inserted.into_iter().map(Hyphenated::into_uuid).collect();
        if let Some(stale) = first_missing(chunk.iter().map(|h| h.id.0), &inserted) {
            return Err(StoreError::Conflict { conversation: ConversationId(stale), expected: 0 });
        }
    }
    Ok(())
}

/// Moves each conversation from its expected version; one that moved on refuses the commit.
/// One statement per conversation: state changes are rare and SQLite runs in-process.
async fn update_conversations(conn: &mut SqliteConnection, batch: &TenantBatch<'_>) -> Result<(), StoreError> {
    for (header, expected) in &batch.updated {
        let updated = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE conversations SET version = ?, updated_at = {NOW} \
             WHERE id = ? AND creator_id = ? AND version = ?"
        )))
        .bind(to_db("version", header.version)?)
        .bind(header.id.0.hyphenated())
        .bind(batch.creator.0.hyphenated())
        .bind(to_db("version", *expected)?)
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::Conflict { conversation: header.id, expected: *expected });
        }
    }
    Ok(())
}

/// A message whose seq or client id is already stored refuses the commit; `expected` is then the
/// conversation's stored version. A message of a conversation not stored for this tenant too.
async fn insert_messages(conn: &mut SqliteConnection, batch: &TenantBatch<'_>) -> Result<(), StoreError> {
    let creator = batch.creator.0.hyphenated();
    for chunk in batch.messages.chunks(ROWS_PER_INSERT) {
        let keys =
            chunk.iter().map(|m| Ok((m.conversation.0, to_db("seq", m.seq.0)?))).collect::<Result<Vec<_>, _>>()?;
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO messages (conversation_id, seq, creator_id, origin, body, client_id, stream, created_at) ",
        );
        insert.push_values(chunk.iter().zip(&keys), |mut row, (m, (_, seq))| {
            row.push_bind(m.conversation.0.hyphenated())
                .push_bind(*seq)
                .push_bind(creator)
                .push_bind(m.origin.as_str())
                .push_bind(m.text.clone())
                .push_bind(m.client_id.as_ref().map(|c| c.as_str().to_owned()))
                .push_bind(m.stream.as_ref().map(|s| s.as_str().to_owned()))
                .push_bind(m.created_at.millis());
        });
        insert.push(" ON CONFLICT DO NOTHING RETURNING conversation_id, seq");
        let inserted: Vec<(Hyphenated, i64)> = match insert.build_query_as().fetch_all(&mut *conn).await {
            Ok(rows) => rows,
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                let conversation = chunk.first().map_or(ConversationId(uuid::Uuid::nil()), |m| m.conversation);
                return Err(StoreError::Conflict { conversation, expected: 0 });
            }
            Err(e) => return Err(from_sqlx(e)),
        };
        let inserted: Vec<(uuid::Uuid, i64)> = inserted.into_iter().map(|(c, s)| (c.into_uuid(), s)).collect();
        if let Some((conversation, _)) = first_missing(keys.iter().copied(), &inserted) {
            let stored: Option<i64> =
                sqlx::query_scalar("SELECT version FROM conversations WHERE id = ? AND creator_id = ?")
                    .bind(conversation.hyphenated())
                    .bind(creator)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(from_sqlx)?;
            let expected = stored.map(version_from).transpose()?.unwrap_or(0);
            return Err(StoreError::Conflict { conversation: ConversationId(conversation), expected });
        }
    }
    Ok(())
}

fn message_row((conversation, creator, seq, origin, body, client_id, stream, created_at): MessageTuple) -> MessageRow {
    MessageRow {
        conversation: conversation.into_uuid(),
        creator: creator.into_uuid(),
        seq,
        origin,
        body,
        client_id,
        stream,
        created_at,
    }
}
