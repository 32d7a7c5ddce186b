//! PostgreSQL, the production store: tenant work runs as `twin_app` under row-level security, with
//! the tenant set at the start of every transaction; cross-tenant work (readiness, the nudge
//! scheduler's scan and claims) runs as `twin_system`.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{Connection, Executor, Postgres, Transaction};
use twin_engine::knowledge::KnowledgeDocument;
use twin_engine::ports::{
    LoadLimits, ProgramSource, PutOutcome, Record, ScheduledNudge, StoreError, StoredConversation, StoredCreator,
};
use twin_engine::twin::CreatorProfile;
use twin_engine::{ConversationId, CreatorId, Message, NudgeId, Seq, Timestamp};
use uuid::Uuid;

use crate::channels::{outbox_body_json, outbox_without_message};
use crate::content_hash::{CreatorContent, body_hash};
use crate::error::{conversation_rows, from_sqlx};
use crate::migrations;
use crate::ownership::check_fences_pg;
use crate::plan::{TenantBatch, first_missing, plan};
use crate::programs::{Latest, NewVersion, new_versions};
use crate::rows::{
    ConversationRows, MessageRow, NudgeRow, choices_json, earliest_first, saturating_db, state_json, stored_program,
    to_db, version_from,
};

/// Connections for tenant work; each write is one short transaction.
const APP_POOL_SIZE: u32 = 16;
/// Group commits in flight at once; each holds one connection of the app pool.
pub(crate) const CONCURRENT_COMMITS: usize = 4;
/// Connections for the few cross-tenant jobs.
const SYSTEM_POOL_SIZE: u32 = 2;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads that span several statements see one snapshot and never write.
pub(crate) const READ_TX: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

const MESSAGE_COLUMNS: &str = "conversation_id, creator_id, seq, origin, body, client_id, stream, choices::text, consistency::integer, created_at";

type MessageTuple = (Uuid, Uuid, i64, String, String, Option<String>, Option<String>, Option<String>, Option<i32>, i64);

/// What a nudge query returns, in [`NudgeTuple`]'s order.
const NUDGE_COLUMNS: &str = "id, creator_id, conversation_id, user_id, due_at";

type NudgeTuple = (Uuid, Uuid, Uuid, String, i64);

/// The database's clock in milliseconds, for bookkeeping columns (`settled_at`): the transaction's
/// start, so every row of one commit gets the same value.
const NOW_MILLIS: &str = "(extract(epoch FROM now()) * 1000)::bigint";

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

    pub(crate) fn system_pool(&self) -> &PgPool {
        &self.system
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
        let row: Option<(String, i64, i64, String)> = sqlx::query_as(
            "SELECT user_id, version, created_at, state::text FROM conversations WHERE id = $1 AND creator_id = $2",
        )
        .bind(id.0)
        .bind(creator.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        let Some((user, version, created_at, state)) = row else {
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

    /// One transaction for the whole slice: the ownership fences first (a stale one refuses it all),
    /// then each tenant's rows after that tenant is set, with one statement per kind of row.
    pub(crate) async fn commit(&self, records: &[Record]) -> Result<(), StoreError> {
        let batches = plan(records)?;
        if batches.is_empty() {
            return Ok(());
        }
        let mut tx = self.app.begin().await.map_err(from_sqlx)?;
        check_fences_pg(&mut tx, &batches).await?;
        for batch in &batches {
            set_tenant(&mut tx, batch.creator).await?;
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
            // Read once the creator row is locked: a concurrent import of this creator waits above,
            // so the latest versions cannot move before this transaction ends.
            let latest = latest_programs(&mut tx, id, programs).await?;
            let new_programs = new_versions(programs, &latest)?;
            let outcome = match current {
                Some((hash, _)) if hash == content.hash && new_programs.is_empty() => {
                    tx.rollback().await.map_err(from_sqlx)?;
                    return Ok(PutOutcome::Unchanged);
                }
                Some((hash, version)) => {
                    write_creator(&mut tx, UPDATE_CREATOR, id, profile, &content).await?;
                    if hash != content.hash {
                        replace_documents(&mut tx, id, &content).await?;
                    }
                    PutOutcome::Updated { version: version_from(version)? + 1 }
                }
                None => {
                    if write_creator(&mut tx, INSERT_CREATOR, id, profile, &content).await? == 0 {
                        continue;
                    }
                    replace_documents(&mut tx, id, &content).await?;
                    PutOutcome::Created
                }
            };
            insert_programs(&mut tx, id, &new_programs).await?;
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
        let programs: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT program_id, version::bigint, source FROM programs WHERE creator_id = $1 \
             ORDER BY program_id COLLATE \"C\", version",
        )
        .bind(id.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(Some(StoredCreator {
            profile,
            documents: documents.into_iter().map(|(path, body)| KnowledgeDocument { path, body }).collect(),
            programs: programs.into_iter().map(stored_program).collect::<Result<_, _>>()?,
            version: version_from(version)?,
        }))
    }

    /// Across tenants, as `twin_system` (its policy shows it pending nudges only).
    pub(crate) async fn pending_before(
        &self,
        horizon: Timestamp,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<ScheduledNudge>, StoreError> {
        let rows: Vec<NudgeTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {NUDGE_COLUMNS} FROM nudges WHERE status = 'pending' AND due_at < $1 \
             AND (claimed_until IS NULL OR claimed_until < $2) ORDER BY due_at, id LIMIT $3"
        )))
        .bind(horizon.millis())
        .bind(now.millis())
        .bind(i64::from(limit))
        .fetch_all(&self.system)
        .await
        .map_err(from_sqlx)?;
        rows.into_iter().map(nudge_row).map(NudgeRow::into_nudge).collect()
    }

    /// One statement as `twin_system`: rows another claim has locked are skipped, not waited for,
    /// and a row whose claim was taken and committed meanwhile fails the re-checked condition, so
    /// each nudge is claimed by one caller per lease.
    pub(crate) async fn claim(
        &self,
        ids: &[NudgeId],
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Vec<ScheduledNudge>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = ids.iter().map(|id| id.0).collect();
        let rows: Vec<NudgeTuple> = sqlx::query_as(CLAIM)
            .bind(&ids)
            .bind(now.millis())
            .bind(lease_until.millis())
            .fetch_all(&self.system)
            .await
            .map_err(from_sqlx)?;
        earliest_first(rows.into_iter().map(nudge_row).collect())
    }

    pub(crate) async fn release_claims(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE nudges SET claimed_until = NULL WHERE status = 'pending' AND claimed_until IS NOT NULL",
        )
        .execute(&self.system)
        .await
        .map_err(from_sqlx)?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn pending_of(
        &self,
        creator: CreatorId,
        conversation: ConversationId,
    ) -> Result<Vec<ScheduledNudge>, StoreError> {
        let mut tx = self.tenant_tx(creator, READ_TX).await?;
        let rows: Vec<NudgeTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {NUDGE_COLUMNS} FROM nudges WHERE conversation_id = $1 AND creator_id = $2 \
             AND status = 'pending' ORDER BY due_at, id"
        )))
        .bind(conversation.0)
        .bind(creator.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        rows.into_iter().map(nudge_row).map(NudgeRow::into_nudge).collect()
    }

    /// A transaction on the app pool with the tenant set for all its statements.
    pub(crate) async fn tenant_tx(
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

/// Claims the pending, unclaimed (or expired) nudges among `$1` until `$3`; `$2` is now. The CTE
/// locks the rows it picks and skips rows another transaction holds; PostgreSQL re-checks the
/// condition on a row that changed since the statement began, so a claim committed meanwhile is
/// not taken twice.
const CLAIM: &str = "WITH c AS (\
        SELECT id FROM nudges \
        WHERE id = ANY($1::uuid[]) AND status = 'pending' AND (claimed_until IS NULL OR claimed_until < $2) \
        FOR UPDATE SKIP LOCKED\
    ) \
    UPDATE nudges AS n SET claimed_until = $3 FROM c WHERE n.id = c.id \
    RETURNING n.id, n.creator_id, n.conversation_id, n.user_id, n.due_at";

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

/// Row-level security reads the tenant from this transaction-local setting; it reverts when the
/// transaction ends, so a pooled connection never carries it into its next use.
pub(crate) async fn set_tenant(conn: &mut PgConnection, creator: CreatorId) -> Result<(), StoreError> {
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
    let states = batch.created.iter().map(|h| state_json(h)).collect::<Result<Vec<_>, _>>()?;
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO conversations (id, creator_id, user_id, version, created_at, state) \
         SELECT u.id, $1, u.user_id, u.version, u.created_at, u.state::jsonb \
         FROM UNNEST($2::uuid[], $3::text[], $4::bigint[], $5::bigint[], $6::text[]) \
              AS u(id, user_id, version, created_at, state) \
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(batch.creator.0)
    .bind(&ids)
    .bind(&users)
    .bind(&versions)
    .bind(&created_at)
    .bind(&states)
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
    let states = batch.updated.iter().map(|(h, _)| state_json(h)).collect::<Result<Vec<_>, _>>()?;
    let updated: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE conversations AS c SET version = u.version, state = u.state::jsonb, updated_at = now() \
         FROM UNNEST($2::uuid[], $3::bigint[], $4::bigint[], $5::text[]) AS u(id, expected, version, state) \
         WHERE c.id = u.id AND c.creator_id = $1 AND c.version = u.expected RETURNING c.id",
    )
    .bind(batch.creator.0)
    .bind(&ids)
    .bind(&expected)
    .bind(&versions)
    .bind(&states)
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
    let choices = batch.messages.iter().map(|m| choices_json(&m.choices)).collect::<Result<Vec<_>, _>>()?;
    let scores: Vec<Option<i32>> =
        batch.messages.iter().map(|m| m.consistency.map(|s| i32::from(s.thousandths()))).collect();
    let inserted: Result<Vec<(Uuid, i64)>, sqlx::Error> = sqlx::query_as(
        "INSERT INTO messages (conversation_id, seq, creator_id, origin, body, client_id, stream, created_at, choices, \
                               consistency) \
         SELECT u.conversation_id, u.seq, $1, u.origin, u.body, u.client_id, u.stream, u.created_at, u.choices::jsonb, \
                u.consistency \
         FROM UNNEST($2::uuid[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], \
                     $9::text[], $10::integer[]) \
              AS u(conversation_id, seq, origin, body, client_id, stream, created_at, choices, consistency) \
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
    .bind(&choices)
    .bind(&scores)
    .fetch_all(&mut *conn)
    .await;
    let inserted = inserted.map_err(|e| conversation_rows(e, first.conversation))?;
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

/// Inserts the slice's outbox entries as pending, due at once. An entry already stored is left as
/// it is (the same commit replayed writes the same entry). An entry whose message is not stored
/// for this tenant refuses the commit.
async fn insert_outbox(conn: &mut PgConnection, batch: &TenantBatch<'_>) -> Result<(), StoreError> {
    if batch.outbox.is_empty() {
        return Ok(());
    }
    let conversations: Vec<Uuid> = batch.outbox.iter().map(|e| e.conversation.0).collect();
    let seqs = batch.outbox.iter().map(|e| to_db("seq", e.seq.0)).collect::<Result<Vec<_>, _>>()?;
    let channels: Vec<&str> = batch.outbox.iter().map(|e| e.address.kind.as_str()).collect();
    let chats: Vec<&str> = batch.outbox.iter().map(|e| e.address.chat.as_str()).collect();
    let bodies = batch.outbox.iter().map(|e| outbox_body_json(e)).collect::<Result<Vec<_>, _>>()?;
    let created_at: Vec<i64> = batch.outbox.iter().map(|e| e.created_at.millis()).collect();
    let inserted = sqlx::query(
        "INSERT INTO outbox (creator_id, conversation_id, seq, channel, chat, body, next_attempt_at, created_at, \
                             updated_at) \
         SELECT $1, u.conversation_id, u.seq, u.channel, u.chat, u.body::jsonb, u.created_at, u.created_at, \
                u.created_at \
         FROM UNNEST($2::uuid[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::bigint[]) \
              AS u(conversation_id, seq, channel, chat, body, created_at) \
         ON CONFLICT (conversation_id, seq) DO NOTHING",
    )
    .bind(batch.creator.0)
    .bind(&conversations)
    .bind(&seqs)
    .bind(&channels)
    .bind(&chats)
    .bind(&bodies)
    .bind(&created_at)
    .execute(&mut *conn)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => Err(outbox_without_message(&batch.outbox)),
        Err(e) => Err(from_sqlx(e)),
    }
}

/// Inserts the slice's nudges as pending; an id already stored is left as it is (a replayed step
/// schedules the same id again). A nudge of a conversation not stored for this tenant refuses the
/// commit, as a message does.
async fn insert_nudges(conn: &mut PgConnection, batch: &TenantBatch<'_>) -> Result<(), StoreError> {
    let Some(first) = batch.scheduled.first() else {
        return Ok(());
    };
    let ids: Vec<Uuid> = batch.scheduled.iter().map(|n| n.id.0).collect();
    let conversations: Vec<Uuid> = batch.scheduled.iter().map(|n| n.conversation.0).collect();
    let users: Vec<&str> = batch.scheduled.iter().map(|n| n.user.as_str()).collect();
    let due_at: Vec<i64> = batch.scheduled.iter().map(|n| n.due_at.millis()).collect();
    let inserted = sqlx::query(
        "INSERT INTO nudges (id, creator_id, conversation_id, user_id, due_at) \
         SELECT u.id, $1, u.conversation_id, u.user_id, u.due_at \
         FROM UNNEST($2::uuid[], $3::uuid[], $4::text[], $5::bigint[]) AS u(id, conversation_id, user_id, due_at) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(batch.creator.0)
    .bind(&ids)
    .bind(&conversations)
    .bind(&users)
    .bind(&due_at)
    .execute(&mut *conn)
    .await;
    inserted.map_err(|e| conversation_rows(e, first.conversation))?;
    Ok(())
}

/// Settles the slice's nudges that are still pending; one already settled (or never stored for
/// this tenant) is left alone, so settling is idempotent.
async fn settle_nudges(conn: &mut PgConnection, batch: &TenantBatch<'_>) -> Result<(), StoreError> {
    if batch.settled.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = batch.settled.iter().map(|(id, _)| id.0).collect();
    let outcomes: Vec<&str> = batch.settled.iter().map(|(_, outcome)| outcome.as_str()).collect();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE nudges AS n SET status = u.status, settled_at = {NOW_MILLIS}, claimed_until = NULL \
         FROM UNNEST($2::uuid[], $3::text[]) AS u(id, status) \
         WHERE n.id = u.id AND n.creator_id = $1 AND n.status = 'pending'"
    )))
    .bind(batch.creator.0)
    .bind(&ids)
    .bind(&outcomes)
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok(())
}

/// Appends the slice's program step entries. One of a conversation not stored for this tenant
/// refuses the commit, as a message does.
async fn insert_step_entries(conn: &mut PgConnection, batch: &TenantBatch<'_>) -> Result<(), StoreError> {
    let Some(first) = batch.steps_entered.first() else {
        return Ok(());
    };
    let conversations: Vec<Uuid> = batch.steps_entered.iter().map(|e| e.conversation.0).collect();
    let programs: Vec<&str> = batch.steps_entered.iter().map(|e| e.program.as_str()).collect();
    let steps: Vec<&str> = batch.steps_entered.iter().map(|e| e.step.as_str()).collect();
    let entered_at: Vec<i64> = batch.steps_entered.iter().map(|e| e.at.millis()).collect();
    let inserted = sqlx::query(
        "INSERT INTO step_entries (creator_id, conversation_id, program, step, entered_at) \
         SELECT $1, u.conversation_id, u.program, u.step, u.entered_at \
         FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::bigint[]) AS u(conversation_id, program, step, entered_at)",
    )
    .bind(batch.creator.0)
    .bind(&conversations)
    .bind(&programs)
    .bind(&steps)
    .bind(&entered_at)
    .execute(&mut *conn)
    .await;
    inserted.map_err(|e| conversation_rows(e, first.conversation))?;
    Ok(())
}

/// The latest stored version of each of the given programs (others are not needed).
async fn latest_programs(
    conn: &mut PgConnection,
    creator: CreatorId,
    programs: &[ProgramSource],
) -> Result<HashMap<String, Latest>, StoreError> {
    if programs.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<&str> = programs.iter().map(|p| p.id.as_str()).collect();
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT DISTINCT ON (program_id) program_id, version::bigint, content_hash FROM programs \
         WHERE creator_id = $1 AND program_id = ANY($2::text[]) ORDER BY program_id, version DESC",
    )
    .bind(creator.0)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok(rows.into_iter().map(|(id, version, hash)| (id, Latest { version, hash })).collect())
}

async fn insert_programs(
    conn: &mut PgConnection,
    creator: CreatorId,
    versions: &[NewVersion<'_>],
) -> Result<(), StoreError> {
    if versions.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = versions.iter().map(|v| v.id).collect();
    let numbers: Vec<i32> = versions.iter().map(|v| v.version).collect();
    let sources: Vec<&str> = versions.iter().map(|v| v.source).collect();
    let hashes: Vec<&str> = versions.iter().map(|v| v.hash.as_str()).collect();
    sqlx::query(
        "INSERT INTO programs (creator_id, program_id, version, source, content_hash) \
         SELECT $1, u.program_id, u.version, u.source, u.content_hash \
         FROM UNNEST($2::text[], $3::integer[], $4::text[], $5::text[]) AS u(program_id, version, source, content_hash)",
    )
    .bind(creator.0)
    .bind(&ids)
    .bind(&numbers)
    .bind(&sources)
    .bind(&hashes)
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
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

fn message_row(
    (conversation, creator, seq, origin, body, client_id, stream, choices, consistency, created_at): MessageTuple,
) -> MessageRow {
    MessageRow { conversation, creator, seq, origin, body, client_id, stream, choices, consistency, created_at }
}

fn nudge_row((id, creator, conversation, user, due_at): NudgeTuple) -> NudgeRow {
    NudgeRow { id, creator, conversation, user, due_at }
}

/// Webhook inbox rows that became turns in this commit (only rows still pending change).
async fn mark_inbox_done(conn: &mut PgConnection, batch: &TenantBatch<'_>) -> Result<(), StoreError> {
    if batch.inbox_done.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE inbox SET processed_at = (extract(epoch FROM now()) * 1000)::bigint \
         WHERE creator_id = $1 AND id = ANY($2::bigint[]) AND processed_at IS NULL",
    )
    .bind(batch.creator.0)
    .bind(&batch.inbox_done)
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok(())
}
