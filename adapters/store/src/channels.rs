//! The channel side of the store on both backends (`ChannelStore`): the webhook inbox, channel
//! identities, link codes and the outbox of provider sends. The conversation's commit writes the
//! outbox entries (postgres.rs, sqlite.rs); the webhook handlers and the outbox worker do the rest
//! through here.
//!
//! On PostgreSQL the cross-tenant scans run as `twin_system`, which sees only keys and states
//! (which tenant, which row, when due): payloads, bodies and chats are then read as each row's
//! tenant, in one read transaction that sets each tenant before its statement.

use std::collections::BTreeMap;

use sqlx::{QueryBuilder, Sqlite};
use twin_engine::channel::{ChannelAddress, ChannelKind, DeliveryState, OutboxEntry};
use twin_engine::ports::{
    INBOX_LEASE, InboxRow, OUTBOX_LEASE, OutboxRow, OutboxUpdate, StatusChange, StoreError, lease_until,
};
use twin_engine::{ConversationId, CreatorId, Seq, Timestamp, UserId};
use uuid::Uuid;
use uuid::fmt::Hyphenated;

use crate::error::{from_sqlx, out_of_range};
use crate::postgres::{PgStore, READ_TX, set_tenant};
use crate::rows::{corrupt, seq_from, to_db};
use crate::sqlite::{ROWS_PER_INSERT, SqliteStore, WRITE_TX};

/// What an outbox query returns, in [`OutboxTuple`]'s order (PostgreSQL reads the body as text).
const PG_OUTBOX_COLUMNS: &str = "creator_id, conversation_id, seq, channel, chat, body::text, state, attempts, \
     parts_done, next_attempt_at, created_at";
const SQLITE_OUTBOX_COLUMNS: &str =
    "creator_id, conversation_id, seq, channel, chat, body, state, attempts, parts_done, next_attempt_at, created_at";

/// Claims the due entries until `$3` (at most `$2`, oldest first; `$1` is now) and returns their
/// keys. Due: pending, due, not claimed by anyone (or the claim expired), and the earliest pending
/// entry of its conversation, so a conversation's entries go out in seq order (a claimed earlier
/// entry holds the later ones back too). The CTE
/// locks the rows it picks and skips rows another claim holds (`FOR UPDATE SKIP LOCKED`);
/// PostgreSQL re-checks the condition on a row changed since the statement began, so a claim
/// committed meanwhile is not taken twice.
const PG_OUTBOX_CLAIM: &str = "WITH due AS (\
        SELECT conversation_id, seq FROM outbox WHERE state = 'pending' AND next_attempt_at <= $1 \
        AND (claimed_until IS NULL OR claimed_until < $1) \
        AND NOT EXISTS (SELECT 1 FROM outbox earlier WHERE earlier.conversation_id = outbox.conversation_id \
        AND earlier.state = 'pending' AND earlier.seq < outbox.seq) \
        ORDER BY next_attempt_at, created_at, conversation_id, seq LIMIT $2 \
        FOR UPDATE SKIP LOCKED\
    ) \
    UPDATE outbox AS o SET claimed_until = $3 FROM due WHERE o.conversation_id = due.conversation_id AND o.seq = due.seq \
    RETURNING o.creator_id, o.conversation_id, o.seq";

/// Claims the pending items received by `$1` until `$4` (at most `$3`, oldest first; `$2` is now)
/// and returns their keys; locking as [`PG_OUTBOX_CLAIM`].
const PG_INBOX_CLAIM: &str = "WITH due AS (\
        SELECT id FROM inbox WHERE processed_at IS NULL AND received_at <= $1 \
        AND (claimed_until IS NULL OR claimed_until < $2) ORDER BY id LIMIT $3 \
        FOR UPDATE SKIP LOCKED\
    ) \
    UPDATE inbox AS i SET claimed_until = $4 FROM due WHERE i.id = due.id RETURNING i.id, i.creator_id";

/// `(creator, conversation, seq, channel, chat, body JSON, state, attempts, parts done, next
/// attempt at, created at)`; ids as each backend decodes them.
type OutboxTuple<I> = (I, I, i64, String, String, String, String, i64, i64, i64, i64);

/// The body column of an outbox entry.
pub(crate) fn outbox_body_json(entry: &OutboxEntry) -> Result<String, StoreError> {
    serde_json::to_string(&entry.body).map_err(|e| {
        StoreError::Corrupt(format!("outbox body of {}/{} cannot be serialized: {e}", entry.conversation, entry.seq.0))
    })
}

/// A commit whose outbox entry sends a message not stored for its tenant: the engine writes an
/// entry only in the commit of its message, so this is a bug, not a stale writer.
pub(crate) fn outbox_without_message(entries: &[&OutboxEntry]) -> StoreError {
    match entries.first() {
        Some(e) => StoreError::Corrupt(format!(
            "the outbox entries from {}/{} on send messages not stored for creator {}",
            e.conversation, e.seq.0, e.creator
        )),
        None => StoreError::Corrupt("an outbox entry sends a message that is not stored".to_owned()),
    }
}

fn channel_of(raw: &str) -> Result<ChannelKind, StoreError> {
    ChannelKind::parse(raw).ok_or_else(|| StoreError::Corrupt(format!("unknown channel {raw:?}")))
}

fn state_of(raw: &str) -> Result<DeliveryState, StoreError> {
    DeliveryState::parse(raw).ok_or_else(|| StoreError::Corrupt(format!("unknown delivery state {raw:?}")))
}

fn count_of(what: &str, raw: i64) -> Result<u32, StoreError> {
    u32::try_from(raw).map_err(|_| out_of_range(what, raw))
}

fn user_of(raw: &str) -> Result<UserId, StoreError> {
    UserId::parse(raw).map_err(corrupt("user id"))
}

fn outbox_row<I: Into<Uuid>>(
    (creator, conversation, seq, channel, chat, body, state, attempts, parts_done, next_attempt_at, created_at): OutboxTuple<I>,
) -> Result<OutboxRow, StoreError> {
    Ok(OutboxRow {
        entry: OutboxEntry {
            creator: CreatorId(creator.into()),
            conversation: ConversationId(conversation.into()),
            seq: seq_from(seq)?,
            address: ChannelAddress::new(channel_of(&channel)?, chat),
            body: serde_json::from_str(&body).map_err(corrupt("outbox body"))?,
            created_at: Timestamp::from_millis(created_at),
        },
        state: state_of(&state)?,
        attempts: count_of("attempts", attempts)?,
        parts_done: count_of("parts_done", parts_done)?,
        next_attempt_at: Timestamp::from_millis(next_attempt_at),
    })
}

/// The due scan's order: by due time, then creation, then key (stable among equals).
fn oldest_due_first(rows: &mut [OutboxRow]) {
    rows.sort_by_key(|r| (r.next_attempt_at, r.entry.created_at, r.entry.conversation.0, r.entry.seq));
}

/// New inbox rows in arrival order: RETURNING promises no order, ids are assigned in input order.
fn inbox_rows(
    creator: CreatorId,
    channel: ChannelKind,
    mut rows: Vec<(i64, String, String)>,
    received_at: Timestamp,
) -> Vec<InboxRow> {
    rows.sort_by_key(|(id, _, _)| *id);
    rows.into_iter()
        .map(|(id, dedup_key, payload)| InboxRow { id, creator, channel, dedup_key, payload, received_at })
        .collect()
}

/// The channel identity an inbox item is about, for erasure (`inbox.sender`): the sender of a
/// message, edit or block (`event.from.user`), the recipient of a status report
/// (`event.recipient`); `None` for a payload that names nobody.
pub(crate) fn inbox_sender(payload: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(payload).ok()?;
    let event = value.get("event")?;
    let sender = event.get("from").and_then(|from| from.get("user")).or_else(|| event.get("recipient"))?;
    sender.as_str().map(str::to_owned)
}

/// At most one creator may own a WhatsApp number: the shared webhook must never route one user's
/// messages to whichever of two creators the database returns first, so two is refused.
fn one_creator(phone_number_id: &str, ids: Vec<Uuid>) -> Result<Option<CreatorId>, StoreError> {
    match ids.as_slice() {
        [] => Ok(None),
        [id] => Ok(Some(CreatorId(*id))),
        _ => Err(StoreError::Corrupt(format!(
            "several creators are configured with WhatsApp number {phone_number_id:?}"
        ))),
    }
}

/// A status report changes a sent entry only; `None` when it changes nothing.
fn advanced(current: DeliveryState, reported: DeliveryState) -> Option<DeliveryState> {
    let next = current.advance(reported);
    (current != DeliveryState::Pending && next != current).then_some(next)
}

impl PgStore {
    pub(crate) async fn inbox_put(
        &self,
        creator: CreatorId,
        channel: ChannelKind,
        items: &[(String, String)],
        now: Timestamp,
    ) -> Result<Vec<InboxRow>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<&str> = items.iter().map(|(key, _)| key.as_str()).collect();
        let payloads: Vec<&str> = items.iter().map(|(_, payload)| payload.as_str()).collect();
        let senders: Vec<Option<String>> = items.iter().map(|(_, payload)| inbox_sender(payload)).collect();
        let mut tx = self.tenant_tx(creator, "BEGIN").await?;
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "INSERT INTO inbox (creator_id, channel, dedup_key, payload, received_at, sender) \
             SELECT $1, $2, u.dedup_key, u.payload, $5, u.sender \
             FROM UNNEST($3::text[], $4::text[], $6::text[]) WITH ORDINALITY AS u(dedup_key, payload, sender, n) \
             ORDER BY u.n \
             ON CONFLICT (creator_id, channel, dedup_key) DO NOTHING RETURNING id, dedup_key, payload",
        )
        .bind(creator.0)
        .bind(channel.as_str())
        .bind(&keys)
        .bind(&payloads)
        .bind(now.millis())
        .bind(&senders)
        .fetch_all(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(inbox_rows(creator, channel, rows, now))
    }

    /// Claims the keys as `twin_system` (one statement, [`PG_INBOX_CLAIM`]), then reads the
    /// payloads as each tenant. Should that read fail, the claims lapse with their lease.
    pub(crate) async fn inbox_pending(
        &self,
        received_by: Timestamp,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<InboxRow>, StoreError> {
        let keys: Vec<(i64, Uuid)> = sqlx::query_as(PG_INBOX_CLAIM)
            .bind(received_by.millis())
            .bind(now.millis())
            .bind(i64::from(limit))
            .bind(lease_until(now, INBOX_LEASE).millis())
            .fetch_all(self.system_pool())
            .await
            .map_err(from_sqlx)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut by_tenant: BTreeMap<Uuid, Vec<i64>> = BTreeMap::new();
        for (id, creator) in keys {
            by_tenant.entry(creator).or_default().push(id);
        }
        let mut tx = self.app_pool().begin_with(READ_TX).await.map_err(from_sqlx)?;
        let mut rows = Vec::new();
        for (creator, ids) in by_tenant {
            let creator = CreatorId(creator);
            set_tenant(&mut tx, creator).await?;
            // Processed meanwhile: no longer pending, left out.
            let found: Vec<(i64, String, String, String, i64)> = sqlx::query_as(
                "SELECT id, channel, dedup_key, payload, received_at FROM inbox \
                 WHERE creator_id = $1 AND id = ANY($2::bigint[]) AND processed_at IS NULL",
            )
            .bind(creator.0)
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await
            .map_err(from_sqlx)?;
            for (id, channel, dedup_key, payload, received_at) in found {
                let (channel, received_at) = (channel_of(&channel)?, Timestamp::from_millis(received_at));
                rows.push(InboxRow { id, creator, channel, dedup_key, payload, received_at });
            }
        }
        tx.commit().await.map_err(from_sqlx)?;
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    pub(crate) async fn inbox_release_claims(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE inbox SET claimed_until = NULL WHERE processed_at IS NULL AND claimed_until IS NOT NULL",
        )
        .execute(self.system_pool())
        .await
        .map_err(from_sqlx)?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn inbox_done(&self, creator: CreatorId, id: i64, now: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.tenant_tx(creator, "BEGIN").await?;
        sqlx::query("UPDATE inbox SET processed_at = $3 WHERE creator_id = $1 AND id = $2 AND processed_at IS NULL")
            .bind(creator.0)
            .bind(id)
            .bind(now.millis())
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)
    }

    pub(crate) async fn identity(
        &self,
        creator: CreatorId,
        channel: ChannelKind,
        external: &str,
    ) -> Result<Option<UserId>, StoreError> {
        let mut tx = self.tenant_tx(creator, READ_TX).await?;
        let user: Option<String> = sqlx::query_scalar(
            "SELECT user_id FROM channel_identities WHERE creator_id = $1 AND channel = $2 AND external_id = $3",
        )
        .bind(creator.0)
        .bind(channel.as_str())
        .bind(external)
        .fetch_optional(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        user.as_deref().map(user_of).transpose()
    }

    pub(crate) async fn bind_identity(
        &self,
        creator: CreatorId,
        channel: ChannelKind,
        external: &str,
        user: &UserId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.tenant_tx(creator, "BEGIN").await?;
        sqlx::query(
            "INSERT INTO channel_identities (creator_id, channel, external_id, user_id, created_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (creator_id, channel, external_id) \
             DO UPDATE SET user_id = excluded.user_id, created_at = excluded.created_at",
        )
        .bind(creator.0)
        .bind(channel.as_str())
        .bind(external)
        .bind(user.as_str())
        .bind(now.millis())
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)
    }

    pub(crate) async fn put_link_code(
        &self,
        creator: CreatorId,
        code: &str,
        user: &UserId,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.tenant_tx(creator, "BEGIN").await?;
        sqlx::query(
            "INSERT INTO link_codes (creator_id, code, user_id, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (creator_id, code) DO UPDATE SET user_id = excluded.user_id, expires_at = excluded.expires_at",
        )
        .bind(creator.0)
        .bind(code)
        .bind(user.as_str())
        .bind(expires_at.millis())
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)
    }

    /// Deleting it is what uses it up: of two racing takes, one gets the row.
    pub(crate) async fn take_link_code(
        &self,
        creator: CreatorId,
        code: &str,
        now: Timestamp,
    ) -> Result<Option<UserId>, StoreError> {
        let mut tx = self.tenant_tx(creator, "BEGIN").await?;
        let taken: Option<(String, i64)> =
            sqlx::query_as("DELETE FROM link_codes WHERE creator_id = $1 AND code = $2 RETURNING user_id, expires_at")
                .bind(creator.0)
                .bind(code)
                .fetch_optional(&mut *tx)
                .await
                .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        taken.filter(|(_, expires_at)| now.millis() < *expires_at).map(|(user, _)| user_of(&user)).transpose()
    }

    /// As `twin_system`, which reads every creator.
    pub(crate) async fn whatsapp_creator(&self, phone_number_id: &str) -> Result<Option<CreatorId>, StoreError> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM creators WHERE profile->'channels'->'whatsapp'->>'phone_number_id' = $1 LIMIT 2",
        )
        .bind(phone_number_id)
        .fetch_all(self.system_pool())
        .await
        .map_err(from_sqlx)?;
        one_creator(phone_number_id, ids)
    }

    /// Claims the keys as `twin_system` (one statement, [`PG_OUTBOX_CLAIM`]), then reads the entries
    /// as each tenant (re-checked: still pending and due). Should that read fail, the claims lapse
    /// with their lease.
    pub(crate) async fn outbox_due(&self, now: Timestamp, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        let keys: Vec<(Uuid, Uuid, i64)> = sqlx::query_as(PG_OUTBOX_CLAIM)
            .bind(now.millis())
            .bind(i64::from(limit))
            .bind(lease_until(now, OUTBOX_LEASE).millis())
            .fetch_all(self.system_pool())
            .await
            .map_err(from_sqlx)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut by_tenant: BTreeMap<Uuid, (Vec<Uuid>, Vec<i64>)> = BTreeMap::new();
        for (creator, conversation, seq) in keys {
            let (conversations, seqs) = by_tenant.entry(creator).or_default();
            conversations.push(conversation);
            seqs.push(seq);
        }
        let mut tx = self.app_pool().begin_with(READ_TX).await.map_err(from_sqlx)?;
        let mut rows = Vec::new();
        for (creator, (conversations, seqs)) in by_tenant {
            set_tenant(&mut tx, CreatorId(creator)).await?;
            let found: Vec<OutboxTuple<Uuid>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {PG_OUTBOX_COLUMNS} FROM outbox \
                 JOIN UNNEST($2::uuid[], $3::bigint[]) AS k(conversation_id, seq) USING (conversation_id, seq) \
                 WHERE creator_id = $1 AND state = 'pending' AND next_attempt_at <= $4"
            )))
            .bind(creator)
            .bind(&conversations)
            .bind(&seqs)
            .bind(now.millis())
            .fetch_all(&mut *tx)
            .await
            .map_err(from_sqlx)?;
            for row in found {
                rows.push(outbox_row(row)?);
            }
        }
        tx.commit().await.map_err(from_sqlx)?;
        oldest_due_first(&mut rows);
        Ok(rows)
    }

    pub(crate) async fn outbox_release_claims(&self) -> Result<u64, StoreError> {
        let done =
            sqlx::query("UPDATE outbox SET claimed_until = NULL WHERE state = 'pending' AND claimed_until IS NOT NULL")
                .execute(self.system_pool())
                .await
                .map_err(from_sqlx)?;
        Ok(done.rows_affected())
    }

    /// Only a pending entry changes: once sent or failed, the worker's updates are late news.
    pub(crate) async fn outbox_update(
        &self,
        creator: CreatorId,
        conversation: ConversationId,
        seq: Seq,
        update: &OutboxUpdate,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        // $1..$3 the key, $4 now, then the update's own values. A part sent renews the claim (the
        // sender goes on with the next part); every other outcome ends it.
        let query = match update {
            OutboxUpdate::PartSent { .. } => sqlx::query(
                "UPDATE outbox SET parts_done = $5, provider_message_id = coalesce($6, provider_message_id), \
                 claimed_until = $7, updated_at = $4 \
                 WHERE creator_id = $1 AND conversation_id = $2 AND seq = $3 AND state = 'pending'",
            ),
            OutboxUpdate::Sent { .. } => sqlx::query(
                "UPDATE outbox SET state = 'sent', provider_message_id = coalesce($5, provider_message_id), \
                 error = NULL, claimed_until = NULL, updated_at = $4 \
                 WHERE creator_id = $1 AND conversation_id = $2 AND seq = $3 AND state = 'pending'",
            ),
            OutboxUpdate::Retry { .. } => sqlx::query(
                "UPDATE outbox SET attempts = $5, next_attempt_at = $6, error = $7, claimed_until = NULL, \
                 updated_at = $4 WHERE creator_id = $1 AND conversation_id = $2 AND seq = $3 AND state = 'pending'",
            ),
            OutboxUpdate::Failed { .. } => sqlx::query(
                "UPDATE outbox SET state = 'failed', error = $5, claimed_until = NULL, updated_at = $4 \
                 WHERE creator_id = $1 AND conversation_id = $2 AND seq = $3 AND state = 'pending'",
            ),
        }
        .bind(creator.0)
        .bind(conversation.0)
        .bind(to_db("seq", seq.0)?)
        .bind(now.millis());
        let query = match update {
            OutboxUpdate::PartSent { parts_done, provider_message_id } => query
                .bind(i64::from(*parts_done))
                .bind(provider_message_id.as_deref())
                .bind(lease_until(now, OUTBOX_LEASE).millis()),
            OutboxUpdate::Sent { provider_message_id } => query.bind(provider_message_id.as_deref()),
            OutboxUpdate::Retry { attempts, at, error } => {
                query.bind(i64::from(*attempts)).bind(at.millis()).bind(error.as_str())
            }
            OutboxUpdate::Failed { error } => query.bind(error.as_str()),
        };
        let mut tx = self.tenant_tx(creator, "BEGIN").await?;
        query.execute(&mut *tx).await.map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)
    }

    /// Finds the entry as `twin_system` (the provider's id is all a report names), then applies the
    /// report as its tenant with the row locked, so two reports for one entry apply in turn.
    pub(crate) async fn outbox_status(
        &self,
        creator: CreatorId,
        channel: ChannelKind,
        provider_message_id: &str,
        reported: DeliveryState,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<Option<StatusChange>, StoreError> {
        let found: Option<(Uuid, Uuid, i64)> = sqlx::query_as(
            "SELECT creator_id, conversation_id, seq FROM outbox \
             WHERE channel = $1 AND provider_message_id = $2 AND creator_id = $3 AND state <> 'pending' \
             ORDER BY created_at DESC LIMIT 1",
        )
        .bind(channel.as_str())
        .bind(provider_message_id)
        .bind(creator.0)
        .fetch_optional(self.system_pool())
        .await
        .map_err(from_sqlx)?;
        let Some((creator, conversation, seq)) = found else {
            return Ok(None);
        };
        let creator = CreatorId(creator);
        let mut tx = self.tenant_tx(creator, "BEGIN").await?;
        let current: Option<String> = sqlx::query_scalar(
            "SELECT state FROM outbox WHERE creator_id = $1 AND conversation_id = $2 AND seq = $3 FOR UPDATE",
        )
        .bind(creator.0)
        .bind(conversation)
        .bind(seq)
        .fetch_optional(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        let Some(next) = current.as_deref().map(state_of).transpose()?.and_then(|c| advanced(c, reported)) else {
            tx.rollback().await.map_err(from_sqlx)?;
            return Ok(None);
        };
        sqlx::query(
            "UPDATE outbox SET state = $4, error = coalesce(error, $5), updated_at = $6 \
             WHERE creator_id = $1 AND conversation_id = $2 AND seq = $3",
        )
        .bind(creator.0)
        .bind(conversation)
        .bind(seq)
        .bind(next.as_str())
        .bind(error)
        .bind(now.millis())
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(Some(StatusChange { creator, conversation: ConversationId(conversation), seq: seq_from(seq)?, state: next }))
    }

    pub(crate) async fn outbox_entry(
        &self,
        creator: CreatorId,
        conversation: ConversationId,
        seq: Seq,
    ) -> Result<Option<OutboxRow>, StoreError> {
        let mut tx = self.tenant_tx(creator, READ_TX).await?;
        let row: Option<OutboxTuple<Uuid>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {PG_OUTBOX_COLUMNS} FROM outbox WHERE creator_id = $1 AND conversation_id = $2 AND seq = $3"
        )))
        .bind(creator.0)
        .bind(conversation.0)
        .bind(to_db("seq", seq.0)?)
        .fetch_optional(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        row.map(outbox_row).transpose()
    }
}

impl SqliteStore {
    pub(crate) async fn inbox_put(
        &self,
        creator: CreatorId,
        channel: ChannelKind,
        items: &[(String, String)],
        now: Timestamp,
    ) -> Result<Vec<InboxRow>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.writer.begin_with(WRITE_TX).await.map_err(from_sqlx)?;
        let mut rows = Vec::new();
        for chunk in items.chunks(ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO inbox (creator_id, channel, dedup_key, payload, received_at, sender) ",
            );
            insert.push_values(chunk, |mut row, (key, payload)| {
                row.push_bind(creator.0.hyphenated())
                    .push_bind(channel.as_str())
                    .push_bind(key.clone())
                    .push_bind(payload.clone())
                    .push_bind(now.millis())
                    .push_bind(inbox_sender(payload));
            });
            insert.push(" ON CONFLICT (creator_id, channel, dedup_key) DO NOTHING RETURNING id, dedup_key, payload");
            let inserted: Vec<(i64, String, String)> =
                insert.build_query_as().fetch_all(&mut *tx).await.map_err(from_sqlx)?;
            rows.extend(inserted);
        }
        tx.commit().await.map_err(from_sqlx)?;
        Ok(inbox_rows(creator, channel, rows, now))
    }

    /// One statement on the single writer, so two callers never claim one item.
    pub(crate) async fn inbox_pending(
        &self,
        received_by: Timestamp,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<InboxRow>, StoreError> {
        let mut rows: Vec<(i64, Hyphenated, String, String, String, i64)> = sqlx::query_as(
            "UPDATE inbox SET claimed_until = ?4 WHERE id IN (\
                 SELECT id FROM inbox WHERE processed_at IS NULL AND received_at <= ?1 \
                 AND (claimed_until IS NULL OR claimed_until < ?2) ORDER BY id LIMIT ?3\
             ) RETURNING id, creator_id, channel, dedup_key, payload, received_at",
        )
        .bind(received_by.millis())
        .bind(now.millis())
        .bind(i64::from(limit))
        .bind(lease_until(now, INBOX_LEASE).millis())
        .fetch_all(&self.writer)
        .await
        .map_err(from_sqlx)?;
        // RETURNING promises no order.
        rows.sort_by_key(|(id, ..)| *id);
        rows.into_iter()
            .map(|(id, creator, channel, dedup_key, payload, received_at)| {
                Ok(InboxRow {
                    id,
                    creator: CreatorId(creator.into_uuid()),
                    channel: channel_of(&channel)?,
                    dedup_key,
                    payload,
                    received_at: Timestamp::from_millis(received_at),
                })
            })
            .collect()
    }

    pub(crate) async fn inbox_release_claims(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE inbox SET claimed_until = NULL WHERE processed_at IS NULL AND claimed_until IS NOT NULL",
        )
        .execute(&self.writer)
        .await
        .map_err(from_sqlx)?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn inbox_done(&self, creator: CreatorId, id: i64, now: Timestamp) -> Result<(), StoreError> {
        sqlx::query("UPDATE inbox SET processed_at = ? WHERE creator_id = ? AND id = ? AND processed_at IS NULL")
            .bind(now.millis())
            .bind(creator.0.hyphenated())
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }

    pub(crate) async fn identity(
        &self,
        creator: CreatorId,
        channel: ChannelKind,
        external: &str,
    ) -> Result<Option<UserId>, StoreError> {
        let user: Option<String> = sqlx::query_scalar(
            "SELECT user_id FROM channel_identities WHERE creator_id = ? AND channel = ? AND external_id = ?",
        )
        .bind(creator.0.hyphenated())
        .bind(channel.as_str())
        .bind(external)
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        user.as_deref().map(user_of).transpose()
    }

    pub(crate) async fn bind_identity(
        &self,
        creator: CreatorId,
        channel: ChannelKind,
        external: &str,
        user: &UserId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO channel_identities (creator_id, channel, external_id, user_id, created_at) \
             VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (creator_id, channel, external_id) \
             DO UPDATE SET user_id = excluded.user_id, created_at = excluded.created_at",
        )
        .bind(creator.0.hyphenated())
        .bind(channel.as_str())
        .bind(external)
        .bind(user.as_str())
        .bind(now.millis())
        .execute(&self.writer)
        .await
        .map_err(from_sqlx)?;
        Ok(())
    }

    pub(crate) async fn put_link_code(
        &self,
        creator: CreatorId,
        code: &str,
        user: &UserId,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO link_codes (creator_id, code, user_id, expires_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (creator_id, code) DO UPDATE SET user_id = excluded.user_id, expires_at = excluded.expires_at",
        )
        .bind(creator.0.hyphenated())
        .bind(code)
        .bind(user.as_str())
        .bind(expires_at.millis())
        .execute(&self.writer)
        .await
        .map_err(from_sqlx)?;
        Ok(())
    }

    pub(crate) async fn take_link_code(
        &self,
        creator: CreatorId,
        code: &str,
        now: Timestamp,
    ) -> Result<Option<UserId>, StoreError> {
        let taken: Option<(String, i64)> =
            sqlx::query_as("DELETE FROM link_codes WHERE creator_id = ? AND code = ? RETURNING user_id, expires_at")
                .bind(creator.0.hyphenated())
                .bind(code)
                .fetch_optional(&self.writer)
                .await
                .map_err(from_sqlx)?;
        taken.filter(|(_, expires_at)| now.millis() < *expires_at).map(|(user, _)| user_of(&user)).transpose()
    }

    pub(crate) async fn whatsapp_creator(&self, phone_number_id: &str) -> Result<Option<CreatorId>, StoreError> {
        let ids: Vec<Hyphenated> = sqlx::query_scalar(
            "SELECT id FROM creators WHERE json_extract(profile, '$.channels.whatsapp.phone_number_id') = ? LIMIT 2",
        )
        .bind(phone_number_id)
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        one_creator(phone_number_id, ids.into_iter().map(Hyphenated::into_uuid).collect())
    }

    /// One statement on the single writer, so two callers never claim one entry.
    pub(crate) async fn outbox_due(&self, now: Timestamp, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        let rows: Vec<OutboxTuple<Hyphenated>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE outbox SET claimed_until = ?3 WHERE (conversation_id, seq) IN (\
                 SELECT conversation_id, seq FROM outbox WHERE state = 'pending' AND next_attempt_at <= ?1 \
                 AND (claimed_until IS NULL OR claimed_until < ?1) \
                 AND NOT EXISTS (SELECT 1 FROM outbox earlier WHERE earlier.conversation_id = outbox.conversation_id \
                 AND earlier.state = 'pending' AND earlier.seq < outbox.seq) \
                 ORDER BY next_attempt_at, created_at, conversation_id, seq LIMIT ?2\
             ) RETURNING {SQLITE_OUTBOX_COLUMNS}"
        )))
        .bind(now.millis())
        .bind(i64::from(limit))
        .bind(lease_until(now, OUTBOX_LEASE).millis())
        .fetch_all(&self.writer)
        .await
        .map_err(from_sqlx)?;
        let mut rows = rows.into_iter().map(outbox_row).collect::<Result<Vec<_>, _>>()?;
        oldest_due_first(&mut rows);
        Ok(rows)
    }

    pub(crate) async fn outbox_release_claims(&self) -> Result<u64, StoreError> {
        let done =
            sqlx::query("UPDATE outbox SET claimed_until = NULL WHERE state = 'pending' AND claimed_until IS NOT NULL")
                .execute(&self.writer)
                .await
                .map_err(from_sqlx)?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn outbox_update(
        &self,
        creator: CreatorId,
        conversation: ConversationId,
        seq: Seq,
        update: &OutboxUpdate,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        // ?1..?3 the key, ?4 now, then the update's own values. A part sent renews the claim (the
        // sender goes on with the next part); every other outcome ends it.
        let query = match update {
            OutboxUpdate::PartSent { .. } => sqlx::query(
                "UPDATE outbox SET parts_done = ?5, provider_message_id = coalesce(?6, provider_message_id), \
                 claimed_until = ?7, updated_at = ?4 \
                 WHERE creator_id = ?1 AND conversation_id = ?2 AND seq = ?3 AND state = 'pending'",
            ),
            OutboxUpdate::Sent { .. } => sqlx::query(
                "UPDATE outbox SET state = 'sent', provider_message_id = coalesce(?5, provider_message_id), \
                 error = NULL, claimed_until = NULL, updated_at = ?4 \
                 WHERE creator_id = ?1 AND conversation_id = ?2 AND seq = ?3 AND state = 'pending'",
            ),
            OutboxUpdate::Retry { .. } => sqlx::query(
                "UPDATE outbox SET attempts = ?5, next_attempt_at = ?6, error = ?7, claimed_until = NULL, \
                 updated_at = ?4 WHERE creator_id = ?1 AND conversation_id = ?2 AND seq = ?3 AND state = 'pending'",
            ),
            OutboxUpdate::Failed { .. } => sqlx::query(
                "UPDATE outbox SET state = 'failed', error = ?5, claimed_until = NULL, updated_at = ?4 \
                 WHERE creator_id = ?1 AND conversation_id = ?2 AND seq = ?3 AND state = 'pending'",
            ),
        }
        .bind(creator.0.hyphenated())
        .bind(conversation.0.hyphenated())
        .bind(to_db("seq", seq.0)?)
        .bind(now.millis());
        let query = match update {
            OutboxUpdate::PartSent { parts_done, provider_message_id } => query
                .bind(i64::from(*parts_done))
                .bind(provider_message_id.clone())
                .bind(lease_until(now, OUTBOX_LEASE).millis()),
            OutboxUpdate::Sent { provider_message_id } => query.bind(provider_message_id.clone()),
            OutboxUpdate::Retry { attempts, at, error } => {
                query.bind(i64::from(*attempts)).bind(at.millis()).bind(error.clone())
            }
            OutboxUpdate::Failed { error } => query.bind(error.clone()),
        };
        query.execute(&self.writer).await.map_err(from_sqlx)?;
        Ok(())
    }

    /// On the single writer, so two reports for one entry apply in turn.
    pub(crate) async fn outbox_status(
        &self,
        creator: CreatorId,
        channel: ChannelKind,
        provider_message_id: &str,
        reported: DeliveryState,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<Option<StatusChange>, StoreError> {
        let mut tx = self.writer.begin_with(WRITE_TX).await.map_err(from_sqlx)?;
        let found: Option<(Hyphenated, Hyphenated, i64, String)> = sqlx::query_as(
            "SELECT creator_id, conversation_id, seq, state FROM outbox \
             WHERE channel = ? AND provider_message_id = ? AND creator_id = ? AND state <> 'pending' \
             ORDER BY created_at DESC LIMIT 1",
        )
        .bind(channel.as_str())
        .bind(provider_message_id)
        .bind(creator.0.hyphenated())
        .fetch_optional(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        let Some((creator, conversation, seq, current)) = found else {
            tx.rollback().await.map_err(from_sqlx)?;
            return Ok(None);
        };
        let Some(next) = advanced(state_of(&current)?, reported) else {
            tx.rollback().await.map_err(from_sqlx)?;
            return Ok(None);
        };
        sqlx::query(
            "UPDATE outbox SET state = ?, error = coalesce(error, ?), updated_at = ? \
             WHERE creator_id = ? AND conversation_id = ? AND seq = ?",
        )
        .bind(next.as_str())
        .bind(error)
        .bind(now.millis())
        .bind(creator)
        .bind(conversation)
        .bind(seq)
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(Some(StatusChange {
            creator: CreatorId(creator.into_uuid()),
            conversation: ConversationId(conversation.into_uuid()),
            seq: seq_from(seq)?,
            state: next,
        }))
    }

    pub(crate) async fn outbox_entry(
        &self,
        creator: CreatorId,
        conversation: ConversationId,
        seq: Seq,
    ) -> Result<Option<OutboxRow>, StoreError> {
        let row: Option<OutboxTuple<Hyphenated>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {SQLITE_OUTBOX_COLUMNS} FROM outbox WHERE creator_id = ? AND conversation_id = ? AND seq = ?"
        )))
        .bind(creator.0.hyphenated())
        .bind(conversation.0.hyphenated())
        .bind(to_db("seq", seq.0)?)
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        row.map(outbox_row).transpose()
    }
}
