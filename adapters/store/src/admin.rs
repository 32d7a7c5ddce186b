//! Reads (and one write) for the creator REST API: pages of a tenant's conversations, end users
//! and nudges, cancelling a pending nudge, and the list of creators for the operator.
//!
//! Tenant work runs as `twin_app` with the tenant set for the transaction (PostgreSQL row-level
//! security holds) and every statement also names the tenant, so SQLite, which has no row-level
//! security, gives the same answers. An id of another tenant is simply not found.

use twin_engine::channel::ChannelKind;
use twin_engine::conversation::{ConversationState, NudgeKind};
use twin_engine::ports::StoreError;
use twin_engine::{ConversationId, CreatorId, NudgeId, Seq, Timestamp, UserId};
use uuid::Uuid;

use crate::error::from_sqlx;
use crate::postgres::READ_TX;
use crate::rows::{corrupt, seq_from, version_from};
use crate::{Backend, Store};

/// A conversation as the REST API lists it: one per end user of a creator.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationSummary {
    pub id: ConversationId,
    pub user: UserId,
    /// When the user was first seen (the conversation was created).
    pub created_at: Timestamp,
    /// The largest committed seq; 0 before the first message.
    pub last_seq: Seq,
    /// When the last message was stored; `None` before the first.
    pub last_activity: Option<Timestamp>,
    /// Program position, pending nudges, reachability.
    pub state: ConversationState,
    /// The provider channels (Telegram, WhatsApp) bound to this user, by kind; filled for users only.
    pub channels: Vec<ChannelKind>,
}

/// Which conversations a page holds.
#[derive(Debug, Clone, PartialEq)]
pub enum ConversationFilter {
    /// Ordered by id, after this one.
    ById { after: Option<ConversationId> },
    /// Ordered by user id (byte order), after this one.
    ByUser { after: Option<UserId> },
    /// One conversation.
    Id(ConversationId),
    /// One user's conversation.
    User(UserId),
}

/// A stored nudge as the REST API lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct NudgeSummary {
    pub id: NudgeId,
    pub conversation: ConversationId,
    pub user: UserId,
    pub due_at: Timestamp,
    /// `pending`, `fired`, `skipped` or `cancelled`.
    pub status: String,
    /// A scheduler holds it until then (it is being delivered).
    pub claimed_until: Option<Timestamp>,
    /// Why it exists, from the conversation's state; `None` once settled.
    pub kind: Option<NudgeKind>,
}

/// What cancelling a nudge did.
#[derive(Debug, Clone, PartialEq)]
pub enum NudgeCancel {
    /// Settled as cancelled: the scheduler can no longer claim it.
    Cancelled { conversation: ConversationId, user: UserId },
    /// A scheduler claimed it and is delivering it now; it cannot be stopped.
    InFlight,
    /// No pending nudge of this tenant has this id.
    NotFound,
}

/// The statuses a nudge row can have.
pub const NUDGE_STATUSES: &[&str] = &["pending", "fired", "skipped", "cancelled"];

type ConversationTuple = (String, String, i64, String, i64, Option<i64>);
type NudgeTuple = (String, String, String, i64, String, Option<i64>, String);

impl Store {
    /// A page of a tenant's conversations (at most `limit`), in the filter's order.
    pub async fn conversations_page(
        &self,
        creator: CreatorId,
        filter: &ConversationFilter,
        limit: u32,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        let (condition, order, key) = match filter {
            ConversationFilter::ById { after } => ("c.id > {key}", "c.id", after.map(|id| id.0.to_string())),
            ConversationFilter::ByUser { after } => {
                ("c.user_id > {key}", "c.user_id", after.as_ref().map(|u| u.as_str().to_owned()))
            }
            ConversationFilter::Id(id) => ("c.id = {key}", "c.id", Some(id.0.to_string())),
            ConversationFilter::User(user) => ("c.user_id = {key}", "c.id", Some(user.as_str().to_owned())),
        };
        let (bytes, uuid) = match &self.backend {
            Backend::Postgres(_) => (" COLLATE \"C\"", "::uuid"),
            Backend::Sqlite(_) => ("", ""),
        };
        let key_sql = match filter {
            ConversationFilter::ById { .. } | ConversationFilter::Id(_) => format!("$2{uuid}"),
            _ => "$2".to_owned(),
        };
        let condition = match key {
            Some(_) => condition.replace("{key}", &key_sql),
            None => "$2 IS NULL".to_owned(),
        };
        let order = if order == "c.user_id" { format!("c.user_id{bytes}") } else { order.to_owned() };
        let sql = format!(
            "SELECT c.id{text}, c.user_id, c.created_at, c.state{text}, \
                    coalesce((SELECT m.seq FROM messages m WHERE m.conversation_id = c.id ORDER BY m.seq DESC LIMIT 1), 0), \
                    (SELECT m.created_at FROM messages m WHERE m.conversation_id = c.id ORDER BY m.seq DESC LIMIT 1) \
             FROM conversations c WHERE c.creator_id = $1{uuid} AND {condition} ORDER BY {order} LIMIT $3",
            text = if uuid.is_empty() { "" } else { "::text" },
        );
        let limit = i64::from(limit);
        let rows: Vec<ConversationTuple> = match &self.backend {
            Backend::Postgres(s) => {
                let mut tx = s.tenant_tx(creator, READ_TX).await?;
                let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(creator.0.to_string())
                    .bind(key)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                tx.commit().await.map_err(from_sqlx)?;
                rows
            }
            Backend::Sqlite(s) => sqlx::query_as(sqlx::AssertSqlSafe(numbered(&sql)))
                .bind(creator.0.hyphenated().to_string())
                .bind(key)
                .bind(limit)
                .fetch_all(&s.pool)
                .await
                .map_err(from_sqlx)?,
        };
        let mut out = rows.into_iter().map(conversation_summary).collect::<Result<Vec<_>, _>>()?;
        if matches!(filter, ConversationFilter::ByUser { .. } | ConversationFilter::User(_)) {
            self.fill_channels(creator, &mut out).await?;
        }
        Ok(out)
    }

    /// The channel kinds bound to each of these users.
    async fn fill_channels(&self, creator: CreatorId, users: &mut [ConversationSummary]) -> Result<(), StoreError> {
        if users.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = users.iter().map(|u| u.user.as_str().to_owned()).collect();
        let rows: Vec<(String, String)> = match &self.backend {
            Backend::Postgres(s) => {
                let mut tx = s.tenant_tx(creator, READ_TX).await?;
                let rows = sqlx::query_as(
                    "SELECT user_id, channel FROM channel_identities WHERE creator_id = $1 \
                     AND user_id = ANY($2::text[]) ORDER BY channel",
                )
                .bind(creator.0)
                .bind(&ids)
                .fetch_all(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                tx.commit().await.map_err(from_sqlx)?;
                rows
            }
            Backend::Sqlite(s) => {
                let ids = serde_json::to_string(&ids).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                sqlx::query_as(
                    "SELECT user_id, channel FROM channel_identities WHERE creator_id = ?1 \
                     AND user_id IN (SELECT value FROM json_each(?2)) ORDER BY channel",
                )
                .bind(creator.0.hyphenated().to_string())
                .bind(ids)
                .fetch_all(&s.pool)
                .await
                .map_err(from_sqlx)?
            }
        };
        for (user, channel) in rows {
            let Some(kind) = ChannelKind::parse(&channel) else { continue };
            if let Some(summary) = users.iter_mut().find(|u| u.user.as_str() == user)
                && !summary.channels.contains(&kind)
            {
                summary.channels.push(kind);
            }
        }
        Ok(())
    }

    /// A page of a tenant's nudges with this status, by due time then id, after `(due_at, id)`.
    pub async fn nudges_page(
        &self,
        creator: CreatorId,
        status: &str,
        after: Option<(Timestamp, NudgeId)>,
        limit: u32,
    ) -> Result<Vec<NudgeSummary>, StoreError> {
        let (due, id) = after.map_or((i64::MIN, Uuid::nil()), |(due, id)| (due.millis(), id.0));
        let limit = i64::from(limit);
        let rows: Vec<NudgeTuple> = match &self.backend {
            Backend::Postgres(s) => {
                let mut tx = s.tenant_tx(creator, READ_TX).await?;
                let rows = sqlx::query_as(
                    "SELECT n.id::text, n.conversation_id::text, n.user_id, n.due_at, n.status, n.claimed_until, \
                            c.state::text \
                     FROM nudges n JOIN conversations c ON c.id = n.conversation_id AND c.creator_id = n.creator_id \
                     WHERE n.creator_id = $1 AND n.status = $2 AND (n.due_at, n.id) > ($3, $4) \
                     ORDER BY n.due_at, n.id LIMIT $5",
                )
                .bind(creator.0)
                .bind(status)
                .bind(due)
                .bind(id)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                tx.commit().await.map_err(from_sqlx)?;
                rows
            }
            Backend::Sqlite(s) => sqlx::query_as(
                "SELECT n.id, n.conversation_id, n.user_id, n.due_at, n.status, n.claimed_until, c.state \
                 FROM nudges n JOIN conversations c ON c.id = n.conversation_id AND c.creator_id = n.creator_id \
                 WHERE n.creator_id = ?1 AND n.status = ?2 AND (n.due_at, n.id) > (?3, ?4) \
                 ORDER BY n.due_at, n.id LIMIT ?5",
            )
            .bind(creator.0.hyphenated().to_string())
            .bind(status)
            .bind(due)
            .bind(id.hyphenated().to_string())
            .bind(limit)
            .fetch_all(&s.pool)
            .await
            .map_err(from_sqlx)?,
        };
        rows.into_iter().map(nudge_summary).collect()
    }

    /// Settles a pending nudge as cancelled, unless a scheduler holds an unexpired claim on it
    /// (`now` decides). The scheduler claims pending rows only, so a cancelled nudge never fires;
    /// the conversation's own copy of it is dropped when it next settles or reloads its nudges.
    pub async fn cancel_nudge(
        &self,
        creator: CreatorId,
        id: NudgeId,
        now: Timestamp,
    ) -> Result<NudgeCancel, StoreError> {
        let row: Option<(String, String)>;
        let left: Option<(String, Option<i64>)>;
        match &self.backend {
            Backend::Postgres(s) => {
                let mut tx = s.tenant_tx(creator, "BEGIN").await?;
                row = sqlx::query_as(
                    "UPDATE nudges SET status = 'cancelled', settled_at = (extract(epoch FROM now()) * 1000)::bigint, \
                            claimed_until = NULL \
                     WHERE id = $1 AND creator_id = $2 AND status = 'pending' \
                       AND (claimed_until IS NULL OR claimed_until < $3) \
                     RETURNING conversation_id::text, user_id",
                )
                .bind(id.0)
                .bind(creator.0)
                .bind(now.millis())
                .fetch_optional(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                left = if row.is_none() {
                    sqlx::query_as("SELECT status, claimed_until FROM nudges WHERE id = $1 AND creator_id = $2")
                        .bind(id.0)
                        .bind(creator.0)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(from_sqlx)?
                } else {
                    None
                };
                tx.commit().await.map_err(from_sqlx)?;
            }
            Backend::Sqlite(s) => {
                let mut tx = s.writer.begin_with(crate::sqlite::WRITE_TX).await.map_err(from_sqlx)?;
                row = sqlx::query_as(
                    "UPDATE nudges SET status = 'cancelled', \
                            settled_at = CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER), \
                            claimed_until = NULL \
                     WHERE id = ?1 AND creator_id = ?2 AND status = 'pending' \
                       AND (claimed_until IS NULL OR claimed_until < ?3) \
                     RETURNING conversation_id, user_id",
                )
                .bind(id.0.hyphenated().to_string())
                .bind(creator.0.hyphenated().to_string())
                .bind(now.millis())
                .fetch_optional(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                left = if row.is_none() {
                    sqlx::query_as("SELECT status, claimed_until FROM nudges WHERE id = ?1 AND creator_id = ?2")
                        .bind(id.0.hyphenated().to_string())
                        .bind(creator.0.hyphenated().to_string())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(from_sqlx)?
                } else {
                    None
                };
                tx.commit().await.map_err(from_sqlx)?;
            }
        }
        if let Some((conversation, user)) = row {
            return Ok(NudgeCancel::Cancelled {
                conversation: ConversationId(parse_uuid(&conversation)?),
                user: UserId::parse(&user).map_err(corrupt("user id"))?,
            });
        }
        Ok(match left {
            Some((status, Some(_))) if status == "pending" => NudgeCancel::InFlight,
            _ => NudgeCancel::NotFound,
        })
    }

    /// The stored version of a creator, read as that tenant: whether it exists, cheaply.
    pub async fn creator_version(&self, creator: CreatorId) -> Result<Option<u64>, StoreError> {
        let version: Option<i64> = match &self.backend {
            Backend::Postgres(s) => {
                let mut tx = s.tenant_tx(creator, READ_TX).await?;
                let version = sqlx::query_scalar("SELECT version FROM creators WHERE id = $1")
                    .bind(creator.0)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                tx.commit().await.map_err(from_sqlx)?;
                version
            }
            Backend::Sqlite(s) => sqlx::query_scalar("SELECT version FROM creators WHERE id = ?1")
                .bind(creator.0.hyphenated().to_string())
                .fetch_optional(&s.pool)
                .await
                .map_err(from_sqlx)?,
        };
        version.map(version_from).transpose()
    }

    /// Creators by slug (byte order) after `after`, with their stored version: the operator's
    /// list, across tenants (`twin_system`, which may read creators only).
    pub async fn creators_page(&self, after: Option<&str>, limit: u32) -> Result<Vec<(String, u64)>, StoreError> {
        let after = after.unwrap_or("");
        let limit = i64::from(limit);
        let rows: Vec<(String, i64)> = match &self.backend {
            Backend::Postgres(s) => sqlx::query_as(
                "SELECT slug, version FROM creators WHERE slug COLLATE \"C\" > $1 ORDER BY slug COLLATE \"C\" LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .fetch_all(s.system_pool())
            .await
            .map_err(from_sqlx)?,
            Backend::Sqlite(s) => {
                sqlx::query_as("SELECT slug, version FROM creators WHERE slug > ?1 ORDER BY slug LIMIT ?2")
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&s.pool)
                    .await
                    .map_err(from_sqlx)?
            }
        };
        rows.into_iter().map(|(slug, version)| Ok((slug, version_from(version)?))).collect()
    }
}

/// The PostgreSQL statement for SQLite: `$n` becomes `?n` (same numbering), casts are not written.
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

fn parse_uuid(raw: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(raw).map_err(corrupt("id"))
}

fn conversation_summary(
    (id, user, created_at, state, last_seq, last_activity): ConversationTuple,
) -> Result<ConversationSummary, StoreError> {
    Ok(ConversationSummary {
        id: ConversationId(parse_uuid(&id)?),
        user: UserId::parse(&user).map_err(corrupt("user id"))?,
        created_at: Timestamp::from_millis(created_at),
        last_seq: seq_from(last_seq)?,
        last_activity: last_activity.map(Timestamp::from_millis),
        state: serde_json::from_str(&state).map_err(corrupt("conversation state"))?,
        channels: Vec::new(),
    })
}

fn nudge_summary(
    (id, conversation, user, due_at, status, claimed_until, state): NudgeTuple,
) -> Result<NudgeSummary, StoreError> {
    let id = NudgeId(parse_uuid(&id)?);
    let state: ConversationState = serde_json::from_str(&state).map_err(corrupt("conversation state"))?;
    let kind = state.nudges.into_iter().find(|n| n.id == id).map(|n| n.kind);
    Ok(NudgeSummary {
        id,
        conversation: ConversationId(parse_uuid(&conversation)?),
        user: UserId::parse(&user).map_err(corrupt("user id"))?,
        due_at: Timestamp::from_millis(due_at),
        status,
        claimed_until: claimed_until.map(Timestamp::from_millis),
        kind,
    })
}
