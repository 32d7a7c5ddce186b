//! SQLite, the embedded default: one file in WAL mode. There is no row-level security, so every
//! query names its tenant (`creator_id`) explicitly; writes take the write lock up front.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};
use twin_engine::knowledge::KnowledgeDocument;
use twin_engine::ports::{
    LoadLimits, ProgramSource, PutOutcome, Record, ScheduledNudge, StoreError, StoredConversation, StoredCreator,
};
use twin_engine::twin::CreatorProfile;
use twin_engine::{ConversationId, CreatorId, Message, NudgeId, Seq, Timestamp};
use uuid::fmt::Hyphenated;

use crate::channels::{outbox_body_json, outbox_without_message};
use crate::content_hash::{CreatorContent, body_hash};
use crate::error::{conversation_rows, from_sqlx};
use crate::migrations;
use crate::ownership::check_fences_sqlite;
use crate::plan::{TenantBatch, first_missing, plan};
use crate::programs::{Latest, NewVersion, new_versions};
use crate::rows::{
    ConversationRows, MessageRow, NudgeRow, choices_json, corrupt, earliest_first, saturating_db, state_json,
    stored_program, to_db, version_from,
};

const POOL_SIZE: u32 = 8;
/// How long a writer waits for another connection's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Rows per multi-row INSERT, well under SQLite's 32766 bound variables.
pub(crate) const ROWS_PER_INSERT: usize = 500;
/// Takes the write lock at BEGIN, so two writers queue on the busy timeout instead of failing
/// when a read lock cannot be upgraded.
pub(crate) const WRITE_TX: &str = "BEGIN IMMEDIATE";
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";
/// The database's clock in milliseconds since the Unix epoch, for bookkeeping columns.
const NOW_MILLIS: &str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";

const MESSAGE_COLUMNS: &str =
    "conversation_id, creator_id, seq, origin, body, client_id, stream, choices, consistency, created_at";

type MessageTuple =
    (Hyphenated, Hyphenated, i64, String, String, Option<String>, Option<String>, Option<String>, Option<i32>, i64);

/// What a nudge query returns, in [`NudgeTuple`]'s order.
const NUDGE_COLUMNS: &str = "id, creator_id, conversation_id, user_id, due_at";

type NudgeTuple = (Hyphenated, Hyphenated, Hyphenated, String, i64);

#[derive(Clone)]
pub(crate) struct SqliteStore {
    /// Reads.
    pub(crate) pool: SqlitePool,
    /// Every write, on one connection: SQLite has one writer anyway, and a connection that alone
    /// writes keeps its page cache valid across commits instead of re-reading pages another
    /// connection changed.
    pub(crate) writer: SqlitePool,
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
        let row: Option<(String, i64, i64, String)> = sqlx::query_as(
            "SELECT user_id, version, created_at, state FROM conversations WHERE id = ? AND creator_id = ?",
        )
        .bind(id.0.hyphenated())
        .bind(creator.0.hyphenated())
        .fetch_optional(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        let Some((user, version, created_at, state)) = row else {
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
        let recent: Vec<MessageTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? AND creator_id = ? \
             ORDER BY seq DESC LIMIT ?"
        )))
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
            state,
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
        let rows: Vec<MessageTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? AND creator_id = ? AND seq > ? \
             ORDER BY seq LIMIT ?"
        )))
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
        // Every fence before any row: a stale one refuses the whole slice.
        for batch in &batches {
            check_fences_sqlite(&mut tx, batch).await?;
        }
        for batch in &batches {
            insert_conversations(&mut tx, batch).await?;
            update_conversations(&mut tx, batch).await?;
            insert_messages(&mut tx, batch).await?;
            insert_outbox(&mut tx, batch).await?;
            mark_inbox_done(&mut tx, batch).await?;
            insert_nudges(&mut tx, batch).await?;
            settle_nudges(&mut tx, batch).await?;
            insert_step_entries(&mut tx, batch).await?;
        }
        tx.commit().await.map_err(from_sqlx)
    }

    pub(crate) async fn put_creator(
        &self,
        profile: &CreatorProfile,
        documents: &[KnowledgeDocument],
        programs: &[ProgramSource],
    ) -> Result<PutOutcome, StoreError> {
        let content = CreatorContent::new(profile, documents)?;
        let id = profile.slug.creator_id().0.hyphenated();
        let mut tx = self.writer.begin_with(WRITE_TX).await.map_err(from_sqlx)?;
        let current: Option<(String, i64)> = sqlx::query_as("SELECT content_hash, version FROM creators WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        let latest = latest_programs(&mut tx, id).await?;
        let new_programs = new_versions(programs, &latest)?;
        let documents_changed = current.as_ref().is_none_or(|(hash, _)| *hash != content.hash);
        let outcome = match current {
            Some(_) if !documents_changed && new_programs.is_empty() => {
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
        if documents_changed {
            replace_documents(&mut tx, id, &content).await?;
        }
        insert_programs(&mut tx, id, &new_programs).await?;
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
        let programs: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT program_id, version, source FROM programs WHERE creator_id = ? ORDER BY program_id, version",
        )
        .bind(id.0.hyphenated())
        .fetch_all(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(Some(StoredCreator {
            profile: serde_json::from_str(&profile).map_err(corrupt("creator profile"))?,
            documents: documents.into_iter().map(|(path, body)| KnowledgeDocument { path, body }).collect(),
            programs: programs.into_iter().map(stored_program).collect::<Result<_, _>>()?,
            version: version_from(version)?,
        }))
    }

    pub(crate) async fn pending_before(
        &self,
        horizon: Timestamp,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<ScheduledNudge>, StoreError> {
        let rows: Vec<NudgeTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {NUDGE_COLUMNS} FROM nudges WHERE status = 'pending' AND due_at < ? \
             AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY due_at, id LIMIT ?"
        )))
        .bind(horizon.millis())
        .bind(now.millis())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        rows.into_iter().map(nudge_row).map(NudgeRow::into_nudge).collect()
    }

    /// On the single writer, so two claims never interleave: each nudge goes to one caller per
    /// lease.
    pub(crate) async fn claim(
        &self,
        ids: &[NudgeId],
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Vec<ScheduledNudge>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.writer.begin_with(WRITE_TX).await.map_err(from_sqlx)?;
        let mut claimed = Vec::new();
        for chunk in ids.chunks(ROWS_PER_INSERT) {
            let mut update = QueryBuilder::<Sqlite>::new("UPDATE nudges SET claimed_until = ");
            update.push_bind(lease_until.millis());
            update.push(" WHERE status = 'pending' AND (claimed_until IS NULL OR claimed_until < ");
            update.push_bind(now.millis());
            update.push(") AND id IN (");
            let mut ids = update.separated(", ");
            for id in chunk {
                ids.push_bind(id.0.hyphenated());
            }
            update.push(") RETURNING ").push(NUDGE_COLUMNS);
            let rows: Vec<NudgeTuple> = update.build_query_as().fetch_all(&mut *tx).await.map_err(from_sqlx)?;
            claimed.extend(rows.into_iter().map(nudge_row));
        }
        tx.commit().await.map_err(from_sqlx)?;
        earliest_first(claimed)
    }

    pub(crate) async fn release_claims(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE nudges SET claimed_until = NULL WHERE status = 'pending' AND claimed_until IS NOT NULL",
        )
        .execute(&self.writer)
        .await
        .map_err(from_sqlx)?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn pending_of(
        &self,
        creator: CreatorId,
        conversation: ConversationId,
    ) -> Result<Vec<ScheduledNudge>, StoreError> {
        let rows: Vec<NudgeTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {NUDGE_COLUMNS} FROM nudges WHERE conversation_id = ? AND creator_id = ? \
             AND status = 'pending' ORDER BY due_at, id"
        )))
        .bind(conversation.0.hyphenated())
        .bind(creator.0.hyphenated())
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        rows.into_iter().map(nudge_row).map(NudgeRow::into_nudge).collect()
    }
}

/// A conversation that already exists refuses the whole commit: the writer's state is stale.
async fn insert_conversations(conn: &mut SqliteConnection, batch: &TenantBatch<'_>) -> Result<(), StoreError> {
    let creator = batch.creator.0.hyphenated();
    for chunk in batch.created.chunks(ROWS_PER_INSERT) {
        let versions = chunk.iter().map(|h| to_db("version", h.version)).collect::<Result<Vec<_>, _>>()?;
        let states = chunk.iter().map(|h| state_json(h)).collect::<Result<Vec<_>, _>>()?;
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO conversations (id, creator_id, user_id, version, created_at, state) ",
        );
        insert.push_values(chunk.iter().zip(versions.iter().zip(states)), |mut row, (header, (version, state))| {
            row.push_bind(header.id.0.hyphenated())
                .push_bind(creator)
                .push_bind(header.user.as_str().to_owned())
                .push_bind(*version)
                .push_bind(header.created_at.millis())
                .push_bind(state);
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
            "UPDATE conversations SET version = ?, state = ?, updated_at = {NOW} \
             WHERE id = ? AND creator_id = ? AND version = ?"
        )))
        .bind(to_db("version", header.version)?)
        .bind(state_json(header)?)
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
        let choices = chunk.iter().map(|m| choices_json(&m.choices)).collect::<Result<Vec<_>, _>>()?;
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO messages (conversation_id, seq, creator_id, origin, body, client_id, stream, created_at, \
             choices, consistency) ",
        );
        insert.push_values(chunk.iter().zip(keys.iter().zip(choices)), |mut row, (m, ((_, seq), choices))| {
            row.push_bind(m.conversation.0.hyphenated())
                .push_bind(*seq)
                .push_bind(creator)
                .push_bind(m.origin.as_str())
                .push_bind(m.text.clone())
                .push_bind(m.client_id.as_ref().map(|c| c.as_str().to_owned()))
                .push_bind(m.stream.as_ref().map(|s| s.as_str().to_owned()))
                .push_bind(m.created_at.millis())
                .push_bind(choices)
                .push_bind(m.consistency.map(|s| i32::from(s.thousandths())));
        });
        insert.push(" ON CONFLICT DO NOTHING RETURNING conversation_id, seq");
        let conversation = chunk.first().map_or(ConversationId(uuid::Uuid::nil()), |m| m.conversation);
        let inserted: Vec<(Hyphenated, i64)> =
            insert.build_query_as().fetch_all(&mut *conn).await.map_err(|e| conversation_rows(e, conversation))?;
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

/// Inserts the slice's outbox entries as pending, due at once. An entry already stored is left as
/// it is (the same commit replayed writes the same entry). An entry whose message is not stored
/// for this tenant refuses the commit (foreign keys are on).
async fn insert_outbox(conn: &mut SqliteConnection, batch: &TenantBatch<'_>) -> Result<(), StoreError> {
    let creator = batch.creator.0.hyphenated();
    for chunk in batch.outbox.chunks(ROWS_PER_INSERT) {
        let rows = chunk
            .iter()
            .map(|e| Ok((to_db("seq", e.seq.0)?, outbox_body_json(e)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO outbox (creator_id, conversation_id, seq, channel, chat, body, next_attempt_at, created_at, \
             updated_at) ",
        );
        insert.push_values(chunk.iter().zip(rows), |mut row, (entry, (seq, body))| {
            row.push_bind(creator)
                .push_bind(entry.conversation.0.hyphenated())
                .push_bind(seq)
                .push_bind(entry.address.kind.as_str())
                .push_bind(entry.address.chat.clone())
                .push_bind(body)
                .push_bind(entry.created_at.millis())
                .push_bind(entry.created_at.millis())
                .push_bind(entry.created_at.millis());
        });
        insert.push(" ON CONFLICT (conversation_id, seq) DO NOTHING");
        match insert.build().execute(&mut *conn).await {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                return Err(outbox_without_message(chunk));
            }
            Err(e) => return Err(from_sqlx(e)),
        }
    }
    Ok(())
}

/// Inserts the slice's nudges as pending; an id already stored is left as it is (a replayed step
/// schedules the same id again). A nudge of a conversation not stored for this tenant refuses the
/// commit, as a message does.
async fn insert_nudges(conn: &mut SqliteConnection, batch: &TenantBatch<'_>) -> Result<(), StoreError> {
    let creator = batch.creator.0.hyphenated();
    for chunk in batch.scheduled.chunks(ROWS_PER_INSERT) {
        let mut insert =
            QueryBuilder::<Sqlite>::new("INSERT INTO nudges (id, creator_id, conversation_id, user_id, due_at) ");
        insert.push_values(chunk, |mut row, nudge| {
            row.push_bind(nudge.id.0.hyphenated())
                .push_bind(creator)
                .push_bind(nudge.conversation.0.hyphenated())
                .push_bind(nudge.user.as_str().to_owned())
                .push_bind(nudge.due_at.millis());
        });
        insert.push(" ON CONFLICT (id) DO NOTHING");
        let conversation = chunk.first().map_or(ConversationId(uuid::Uuid::nil()), |n| n.conversation);
        insert.build().execute(&mut *conn).await.map_err(|e| conversation_rows(e, conversation))?;
    }
    Ok(())
}

/// Appends the slice's program step entries. One of a conversation not stored for this tenant
/// refuses the commit, as a message does (foreign keys are on).
async fn insert_step_entries(conn: &mut SqliteConnection, batch: &TenantBatch<'_>) -> Result<(), StoreError> {
    let creator = batch.creator.0.hyphenated();
    for chunk in batch.steps_entered.chunks(ROWS_PER_INSERT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO step_entries (creator_id, conversation_id, program, step, entered_at) ",
        );
        insert.push_values(chunk, |mut row, entry| {
            row.push_bind(creator)
                .push_bind(entry.conversation.0.hyphenated())
                .push_bind(entry.program.as_str().to_owned())
                .push_bind(entry.step.as_str().to_owned())
                .push_bind(entry.at.millis());
        });
        let conversation = chunk.first().map_or(ConversationId(uuid::Uuid::nil()), |e| e.conversation);
        insert.build().execute(&mut *conn).await.map_err(|e| conversation_rows(e, conversation))?;
    }
    Ok(())
}

/// Settles the slice's nudges that are still pending, one statement per outcome; one already
/// settled (or never stored for this tenant) is left alone, so settling is idempotent.
async fn settle_nudges(conn: &mut SqliteConnection, batch: &TenantBatch<'_>) -> Result<(), StoreError> {
    let creator = batch.creator.0.hyphenated();
    for (outcome, ids) in batch.settled_by_outcome() {
        for chunk in ids.chunks(ROWS_PER_INSERT) {
            let mut update = QueryBuilder::<Sqlite>::new("UPDATE nudges SET status = ");
            update.push_bind(outcome.as_str());
            update.push(format_args!(", settled_at = {NOW_MILLIS}, claimed_until = NULL WHERE creator_id = "));
            update.push_bind(creator);
            update.push(" AND status = 'pending' AND id IN (");
            let mut list = update.separated(", ");
            for id in chunk {
                list.push_bind(id.0.hyphenated());
            }
            update.push(")");
            update.build().execute(&mut *conn).await.map_err(from_sqlx)?;
        }
    }
    Ok(())
}

/// Replaces the creator's documents with the given set: removed paths are deleted, changed bodies
/// rewritten, unchanged rows left alone (their ingestion status and vectors stay with them).
async fn replace_documents(
    conn: &mut SqliteConnection,
    id: Hyphenated,
    content: &CreatorContent<'_>,
) -> Result<(), StoreError> {
    let stored: Vec<String> = sqlx::query_scalar("SELECT path FROM knowledge_documents WHERE creator_id = ?")
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    for path in stored.iter().filter(|path| !content.documents.iter().any(|d| &d.path == *path)) {
        sqlx::query("DELETE FROM knowledge_documents WHERE creator_id = ? AND path = ?")
            .bind(id)
            .bind(path)
            .execute(&mut *conn)
            .await
            .map_err(from_sqlx)?;
    }
    for chunk in content.documents.chunks(ROWS_PER_INSERT) {
        let mut insert =
            QueryBuilder::<Sqlite>::new("INSERT INTO knowledge_documents (creator_id, path, body, content_hash) ");
        insert.push_values(chunk, |mut row, doc| {
            row.push_bind(id).push_bind(doc.path.clone()).push_bind(doc.body.clone()).push_bind(body_hash(&doc.body));
        });
        insert.push(
            " ON CONFLICT (creator_id, path) DO UPDATE SET body = excluded.body, content_hash = excluded.content_hash \
             WHERE knowledge_documents.content_hash <> excluded.content_hash",
        );
        insert.build().execute(&mut *conn).await.map_err(from_sqlx)?;
    }
    Ok(())
}

/// The latest stored version of each program of the creator.
async fn latest_programs(
    conn: &mut SqliteConnection,
    creator: Hyphenated,
) -> Result<HashMap<String, Latest>, StoreError> {
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT p.program_id, p.version, p.content_hash FROM programs AS p \
         WHERE p.creator_id = ? AND p.version = \
               (SELECT max(version) FROM programs WHERE creator_id = p.creator_id AND program_id = p.program_id)",
    )
    .bind(creator)
    .fetch_all(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok(rows.into_iter().map(|(id, version, hash)| (id, Latest { version, hash })).collect())
}

async fn insert_programs(
    conn: &mut SqliteConnection,
    creator: Hyphenated,
    versions: &[NewVersion<'_>],
) -> Result<(), StoreError> {
    for chunk in versions.chunks(ROWS_PER_INSERT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO programs (creator_id, program_id, version, source, content_hash) ",
        );
        insert.push_values(chunk, |mut row, v| {
            row.push_bind(creator)
                .push_bind(v.id.to_owned())
                .push_bind(v.version)
                .push_bind(v.source.to_owned())
                .push_bind(v.hash.clone());
        });
        insert.build().execute(&mut *conn).await.map_err(from_sqlx)?;
    }
    Ok(())
}

fn message_row(
    (conversation, creator, seq, origin, body, client_id, stream, choices, consistency, created_at): MessageTuple,
) -> MessageRow {
    MessageRow {
        conversation: conversation.into_uuid(),
        creator: creator.into_uuid(),
        seq,
        origin,
        body,
        client_id,
        stream,
        choices,
        consistency,
        created_at,
    }
}

fn nudge_row((id, creator, conversation, user, due_at): NudgeTuple) -> NudgeRow {
    NudgeRow { id: id.into_uuid(), creator: creator.into_uuid(), conversation: conversation.into_uuid(), user, due_at }
}

/// Webhook inbox rows that became turns in this commit (only rows still pending change).
async fn mark_inbox_done(conn: &mut SqliteConnection, batch: &TenantBatch<'_>) -> Result<(), StoreError> {
    let creator = batch.creator.0.hyphenated();
    for id in &batch.inbox_done {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE inbox SET processed_at = {NOW_MILLIS} WHERE creator_id = ? AND id = ? AND processed_at IS NULL"
        )))
        .bind(creator)
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    }
    Ok(())
}
