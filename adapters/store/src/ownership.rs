//! Scale-out ownership of conversations on both backends (`ConversationStore::claim_owner`,
//! `release_owner`) and the fence check every commit runs before it writes (`Record::Fence`).
//!
//! A node claims a conversation before it runs it and gets an epoch; each of its commits carries a
//! fence for that epoch. A claim moves the epoch on, so the node that held the conversation before
//! is refused from then on ([`StoreError::Fenced`]), whatever it still has in memory.
//!
//! PostgreSQL: the commit reads the epochs of its fences `FOR SHARE` and holds that lock until it
//! ends; a claim's UPDATE of the row takes the row's exclusive lock. So a claim waits for every
//! commit in flight that already checked the old epoch, and a commit that checks after the claim
//! sees the new epoch: a fenced commit lands before the claim returns or not at all. SQLite has one
//! writer, so claims and commits never overlap.
//!
//! Epochs come from one counter for all conversations (a sequence; a one-row table on SQLite),
//! so a conversation whose row was erased and claimed again never reuses an epoch.

use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;
use sqlx::{QueryBuilder, Sqlite};
use twin_engine::ports::StoreError;
use twin_engine::{ConversationId, CreatorId};
use uuid::Uuid;
use uuid::fmt::Hyphenated;

use crate::error::from_sqlx;
use crate::plan::{TenantBatch, first_fenced};
use crate::postgres::{PgStore, set_tenant};
use crate::rows::to_db;
use crate::sqlite::{ROWS_PER_INSERT, SqliteStore, WRITE_TX};

/// PostgreSQL's insufficient_privilege: a row-level security policy refused the row.
const INSUFFICIENT_PRIVILEGE: &str = "42501";

/// One statement: the row is created at the next epoch, or moved to it unless a live node other
/// than `$3` holds it (and `$5`, force, is false). No row returned means refused. `ON CONFLICT DO
/// UPDATE` locks the row, so it waits for commits holding it `FOR SHARE`.
const PG_CLAIM: &str = "INSERT INTO conversation_owners (creator_id, conversation_id, epoch, node, claimed_at) \
     VALUES ($1, $2, nextval('conversation_owner_epochs'), $3, (extract(epoch FROM now()) * 1000)::bigint) \
     ON CONFLICT (conversation_id) DO UPDATE \
     SET epoch = excluded.epoch, node = excluded.node, claimed_at = excluded.claimed_at \
     WHERE $5::boolean OR conversation_owners.node IS NULL OR conversation_owners.node = excluded.node \
        OR NOT (conversation_owners.node = ANY($4::text[])) \
     RETURNING epoch";

/// A claim of a conversation id that is another creator's: a bug in the caller (ids derive from
/// the creator), refused before anything changes.
fn foreign(creator: CreatorId, conversation: ConversationId) -> StoreError {
    StoreError::Corrupt(format!("conversation {conversation} is not one of creator {creator}'s"))
}

fn epoch_from(raw: i64) -> Result<u64, StoreError> {
    u64::try_from(raw).map_err(|_| crate::error::out_of_range("epoch", raw))
}

impl PgStore {
    /// As the tenant (row-level security): another tenant's row can be neither seen nor claimed.
    pub(crate) async fn claim_owner(
        &self,
        creator: CreatorId,
        conversation: ConversationId,
        node: &str,
        live: &[String],
        force: bool,
    ) -> Result<Option<u64>, StoreError> {
        let mut tx = self.tenant_tx(creator, "BEGIN").await?;
        let claimed: Result<Option<i64>, sqlx::Error> = sqlx::query_scalar(PG_CLAIM)
            .bind(creator.0)
            .bind(conversation.0)
            .bind(node)
            .bind(live)
            .bind(force)
            .fetch_optional(&mut *tx)
            .await;
        let claimed = match claimed {
            Ok(claimed) => claimed,
            // The row exists under another tenant: the upsert may not touch it.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(INSUFFICIENT_PRIVILEGE) => {
                return Err(foreign(creator, conversation));
            }
            Err(e) => return Err(from_sqlx(e)),
        };
        tx.commit().await.map_err(from_sqlx)?;
        claimed.map(epoch_from).transpose()
    }

    pub(crate) async fn release_owner(
        &self,
        creator: CreatorId,
        conversation: ConversationId,
        epoch: u64,
    ) -> Result<(), StoreError> {
        let mut tx = self.tenant_tx(creator, "BEGIN").await?;
        sqlx::query(
            "UPDATE conversation_owners SET node = NULL WHERE creator_id = $1 AND conversation_id = $2 AND epoch = $3",
        )
        .bind(creator.0)
        .bind(conversation.0)
        .bind(to_db("epoch", epoch)?)
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)
    }
}

/// Checks every fence of the slice before the commit writes anything, tenants in creator order and
/// rows in conversation order: all commits take their share locks in one global order, so two of
/// them and two claims can never wait on each other in a cycle. The locks hold until the commit
/// ends. Leaves the last checked tenant set; the caller sets each tenant again before its rows.
pub(crate) async fn check_fences_pg(conn: &mut PgConnection, batches: &[TenantBatch<'_>]) -> Result<(), StoreError> {
    let mut fenced: Vec<&TenantBatch<'_>> = batches.iter().filter(|b| !b.fences.is_empty()).collect();
    fenced.sort_by_key(|b| b.creator.0);
    for batch in fenced {
        set_tenant(conn, batch.creator).await?;
        let ids: Vec<Uuid> = batch.fences.iter().map(|(c, _)| c.0).collect();
        let stored: Vec<(Uuid, i64)> = sqlx::query_as(
            "SELECT conversation_id, epoch FROM conversation_owners \
             WHERE creator_id = $1 AND conversation_id = ANY($2::uuid[]) ORDER BY conversation_id FOR SHARE",
        )
        .bind(batch.creator.0)
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await
        .map_err(from_sqlx)?;
        if let Some(refused) = first_fenced(&batch.fences, &stored) {
            return Err(refused);
        }
    }
    Ok(())
}

impl SqliteStore {
    /// On the single writer: the read and the write of one claim never interleave with a commit.
    pub(crate) async fn claim_owner(
        &self,
        creator: CreatorId,
        conversation: ConversationId,
        node: &str,
        live: &[String],
        force: bool,
    ) -> Result<Option<u64>, StoreError> {
        let mut tx = self.writer.begin_with(WRITE_TX).await.map_err(from_sqlx)?;
        let held: Option<(Hyphenated, Option<String>)> =
            sqlx::query_as("SELECT creator_id, node FROM conversation_owners WHERE conversation_id = ?")
                .bind(conversation.0.hyphenated())
                .fetch_optional(&mut *tx)
                .await
                .map_err(from_sqlx)?;
        if let Some((owner, holder)) = &held {
            if owner.into_uuid() != creator.0 {
                return Err(foreign(creator, conversation));
            }
            let blocked = holder.as_deref().is_some_and(|h| h != node && live.iter().any(|l| l == h));
            if blocked && !force {
                tx.rollback().await.map_err(from_sqlx)?;
                return Ok(None);
            }
        }
        let epoch: i64 = sqlx::query_scalar("UPDATE conversation_owner_epochs SET last = last + 1 RETURNING last")
            .fetch_one(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        sqlx::query(
            "INSERT INTO conversation_owners (creator_id, conversation_id, epoch, node, claimed_at) \
             VALUES (?1, ?2, ?3, ?4, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)) \
             ON CONFLICT (conversation_id) DO UPDATE \
             SET epoch = excluded.epoch, node = excluded.node, claimed_at = excluded.claimed_at",
        )
        .bind(creator.0.hyphenated())
        .bind(conversation.0.hyphenated())
        .bind(epoch)
        .bind(node)
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        epoch_from(epoch).map(Some)
    }

    pub(crate) async fn release_owner(
        &self,
        creator: CreatorId,
        conversation: ConversationId,
        epoch: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE conversation_owners SET node = NULL WHERE creator_id = ? AND conversation_id = ? AND epoch = ?",
        )
        .bind(creator.0.hyphenated())
        .bind(conversation.0.hyphenated())
        .bind(to_db("epoch", epoch)?)
        .execute(&self.writer)
        .await
        .map_err(from_sqlx)?;
        Ok(())
    }
}

/// The SQLite commit's first step for one tenant (inside its write transaction).
pub(crate) async fn check_fences_sqlite(
    conn: &mut SqliteConnection,
    batch: &TenantBatch<'_>,
) -> Result<(), StoreError> {
    for chunk in batch.fences.chunks(ROWS_PER_INSERT) {
        let mut select =
            QueryBuilder::<Sqlite>::new("SELECT conversation_id, epoch FROM conversation_owners WHERE creator_id = ");
        select.push_bind(batch.creator.0.hyphenated());
        select.push(" AND conversation_id IN (");
        let mut ids = select.separated(", ");
        for (conversation, _) in chunk {
            ids.push_bind(conversation.0.hyphenated());
        }
        select.push(")");
        let stored: Vec<(Hyphenated, i64)> = select.build_query_as().fetch_all(&mut *conn).await.map_err(from_sqlx)?;
        let stored: Vec<(Uuid, i64)> = stored.into_iter().map(|(c, e)| (c.into_uuid(), e)).collect();
        if let Some(refused) = first_fenced(chunk, &stored) {
            return Err(refused);
        }
    }
    Ok(())
}
