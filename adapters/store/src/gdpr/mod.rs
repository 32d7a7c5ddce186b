//! GDPR export and erasure on both backends: everything Twin stores about one end user of a creator,
//! or about a whole creator, read out as plain serde documents, or deleted.
//!
//! Each operation is one transaction, run as `twin_app` with the tenant set on PostgreSQL (so
//! row-level security holds here too) and on the single writer on SQLite: an erasure removes all of
//! its rows or none, and an export reads one snapshot. The queries are written once with `$n`
//! placeholders and `{t}`/`{b}` markers for PostgreSQL's casts, and run on either backend.
//!
//! Which rows are a user's:
//! - the conversation (one per creator and user; its id is derived from both), and through it its
//!   messages, nudges (every status), outbox entries (the bodies sent and the chat they went to) and
//!   the program steps it entered, and its scale-out ownership row (`conversation_owners`; erased,
//!   not exported: it holds only the conversation id, an epoch and a node name);
//! - the channel identities bound to the user and the link codes issued for them;
//! - the webhook inbox rows of every channel identity that speaks for the user (`inbox.sender`,
//!   written when the item is stored): the identities bound to them, and the identity their user
//!   id names (`tg-…`, `wa-…`: a Telegram or WhatsApp person nobody linked) unless it is bound to
//!   someone else — the same rule the inbox uses to find a sender's user.
//!
//! End users upload no knowledge today: [`UserExport::uploaded_knowledge`] is always empty and the
//! creator's documents belong to the creator.

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{FromRow, PgConnection, SqliteConnection};
use twin_engine::channel::ChannelKind;
use twin_engine::ports::StoreError;
use twin_engine::{ConversationId, CreatorId, UserId};
use uuid::Uuid;

use crate::error::from_sqlx;
use crate::postgres::READ_TX;
use crate::sqlite::WRITE_TX;
use crate::{Backend, Store};

mod records;

pub use records::{
    ConversationExport, CreatorExport, DocumentExport, ErasureReport, IdentityExport, InboxExport, IngestionExport,
    LinkCodeExport, MessageExport, NudgeExport, OutboxExport, ProgramExport, StepEntryExport, UserExport, VectorExport,
};

/// The tenant tables a creator erasure empties, children before the tables they reference; the
/// `creators` row goes last. Every one has a `creator_id` column.
///
/// The creator's own and agent accounts go too, refresh tokens first (DELETE granted in 0012).
/// `audit_log` is NOT erased: its records carry no personal data and must outlive the erasure;
/// `login_throttles` counts per client address and belongs to no tenant.
pub const CREATOR_TABLES: &[&str] = &[
    "refresh_tokens",
    "accounts",
    "outbox",
    "messages",
    "nudges",
    "step_entries",
    "conversation_owners",
    "conversations",
    "channel_identities",
    "link_codes",
    "inbox",
    "knowledge_vectors",
    "knowledge_ingestion",
    "knowledge_documents",
    "programs",
];

/// The channel identity a user id names when nobody linked it (`tg-<telegram user id>`,
/// `wa-<number>`, `web-<id>`): the inverse of the inbox's `default_user` (api/src/channels/identity.rs).
pub fn default_identity(user: &UserId) -> Option<(ChannelKind, &str)> {
    let (prefix, external) = user.as_str().split_once('-')?;
    let channel = match prefix {
        "tg" => ChannelKind::Telegram,
        "wa" => ChannelKind::WhatsApp,
        "web" => ChannelKind::Web,
        _ => return None,
    };
    (!external.is_empty()).then_some((channel, external))
}

impl Store {
    /// Everything stored about `user` of `creator`, read in one snapshot.
    pub async fn export_user(&self, creator: CreatorId, user: &UserId) -> Result<UserExport, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => {
                let mut tx = s.tenant_tx(creator, READ_TX).await?;
                let export = user_export(&mut Conn::Pg(&mut tx), creator, user).await?;
                tx.commit().await.map_err(from_sqlx)?;
                Ok(export)
            }
            Backend::Sqlite(s) => {
                let mut tx = s.pool.begin().await.map_err(from_sqlx)?;
                let export = user_export(&mut Conn::Lite(&mut tx), creator, user).await?;
                tx.commit().await.map_err(from_sqlx)?;
                Ok(export)
            }
        }
    }

    /// Deletes everything stored about `user` of `creator` in one transaction. The running engine
    /// must not hold the conversation meanwhile: call it through `EngineHandle::erase_user`.
    pub async fn erase_user(&self, creator: CreatorId, user: &UserId) -> Result<ErasureReport, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => {
                let mut tx = s.tenant_tx(creator, "BEGIN").await?;
                let report = user_erase(&mut Conn::Pg(&mut tx), creator, user).await?;
                tx.commit().await.map_err(from_sqlx)?;
                Ok(report)
            }
            Backend::Sqlite(s) => {
                let mut tx = s.writer.begin_with(WRITE_TX).await.map_err(from_sqlx)?;
                let report = user_erase(&mut Conn::Lite(&mut tx), creator, user).await?;
                tx.commit().await.map_err(from_sqlx)?;
                Ok(report)
            }
        }
    }

    /// Everything stored for `creator`, read in one snapshot; `None` for an unknown creator.
    pub async fn export_creator(&self, creator: CreatorId) -> Result<Option<CreatorExport>, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => {
                let mut tx = s.tenant_tx(creator, READ_TX).await?;
                let export = creator_export(&mut Conn::Pg(&mut tx), creator).await?;
                tx.commit().await.map_err(from_sqlx)?;
                Ok(export)
            }
            Backend::Sqlite(s) => {
                let mut tx = s.pool.begin().await.map_err(from_sqlx)?;
                let export = creator_export(&mut Conn::Lite(&mut tx), creator).await?;
                tx.commit().await.map_err(from_sqlx)?;
                Ok(export)
            }
        }
    }

    /// Deletes the creator and every row of the tenant in one transaction (the vectors of an
    /// external index, such as Qdrant, are removed through `VectorIndex::remove_creator`).
    pub async fn erase_creator(&self, creator: CreatorId) -> Result<ErasureReport, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => {
                let mut tx = s.tenant_tx(creator, "BEGIN").await?;
                let report = creator_erase(&mut Conn::Pg(&mut tx), creator).await?;
                tx.commit().await.map_err(from_sqlx)?;
                Ok(report)
            }
            Backend::Sqlite(s) => {
                let mut tx = s.writer.begin_with(WRITE_TX).await.map_err(from_sqlx)?;
                let report = creator_erase(&mut Conn::Lite(&mut tx), creator).await?;
                tx.commit().await.map_err(from_sqlx)?;
                Ok(report)
            }
        }
    }
}

/// A bind value: ids are uuids on PostgreSQL and hyphenated text on SQLite.
#[derive(Clone)]
enum Arg {
    Id(Uuid),
    Text(String),
}

/// The transaction an operation runs in, on either backend.
enum Conn<'c> {
    Pg(&'c mut PgConnection),
    Lite(&'c mut SqliteConnection),
}

impl Conn<'_> {
    /// `{t}` reads a uuid or JSON column as text and `{b}` a narrower integer as bigint on
    /// PostgreSQL; SQLite stores both as they are read and numbers `$n` as `?n`.
    fn sql(&self, template: &str) -> String {
        match self {
            Conn::Pg(_) => template.replace("{t}", "::text").replace("{b}", "::bigint"),
            Conn::Lite(_) => template.replace("{t}", "").replace("{b}", "").replace('$', "?"),
        }
    }

    async fn fetch<T>(&mut self, template: &str, args: &[Arg]) -> Result<Vec<T>, StoreError>
    where
        T: Send + Unpin + for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow>,
    {
        let sql = self.sql(template);
        match self {
            Conn::Pg(conn) => {
                let mut query = sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(sql));
                for arg in args {
                    query = match arg {
                        Arg::Id(id) => query.bind(*id),
                        Arg::Text(text) => query.bind(text.clone()),
                    };
                }
                query.fetch_all(&mut **conn).await.map_err(from_sqlx)
            }
            Conn::Lite(conn) => {
                let mut query = sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(sql));
                for arg in args {
                    query = match arg {
                        Arg::Id(id) => query.bind(id.hyphenated().to_string()),
                        Arg::Text(text) => query.bind(text.clone()),
                    };
                }
                query.fetch_all(&mut **conn).await.map_err(from_sqlx)
            }
        }
    }

    /// Rows affected.
    async fn execute(&mut self, template: &str, args: &[Arg]) -> Result<u64, StoreError> {
        let sql = self.sql(template);
        match self {
            Conn::Pg(conn) => {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for arg in args {
                    query = match arg {
                        Arg::Id(id) => query.bind(*id),
                        Arg::Text(text) => query.bind(text.clone()),
                    };
                }
                Ok(query.execute(&mut **conn).await.map_err(from_sqlx)?.rows_affected())
            }
            Conn::Lite(conn) => {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for arg in args {
                    query = match arg {
                        Arg::Id(id) => query.bind(id.hyphenated().to_string()),
                        Arg::Text(text) => query.bind(text.clone()),
                    };
                }
                Ok(query.execute(&mut **conn).await.map_err(from_sqlx)?.rows_affected())
            }
        }
    }
}

// The columns each export reads; `WHERE` clauses are added per scope.
const CONVERSATIONS: &str = "SELECT id{t}, user_id, version, created_at, state{t} FROM conversations";
const MESSAGES: &str = "SELECT conversation_id{t}, seq, origin, body, client_id, stream, choices{t}, consistency{b}, \
     created_at FROM messages";
const NUDGES: &str = "SELECT id{t}, conversation_id{t}, user_id, due_at, status, created_at, settled_at FROM nudges";
const OUTBOX: &str = "SELECT conversation_id{t}, seq, channel, chat, body{t}, state, attempts, provider_message_id, \
     error, created_at, updated_at FROM outbox";
const STEP_ENTRIES: &str = "SELECT conversation_id{t}, program, step, entered_at FROM step_entries";
const INBOX: &str = "SELECT id, channel, dedup_key, sender, payload, received_at, processed_at FROM inbox";
const IDENTITIES: &str = "SELECT channel, external_id, user_id, created_at FROM channel_identities";
const LINK_CODES: &str = "SELECT code, user_id, expires_at FROM link_codes";

type ConversationTuple = (String, String, i64, i64, String);
type MessageTuple = (String, i64, String, String, Option<String>, Option<String>, Option<String>, Option<i64>, i64);
type NudgeTuple = (String, String, String, i64, String, i64, Option<i64>);
type OutboxTuple = (String, i64, String, String, String, String, i64, Option<String>, Option<String>, i64, i64);
type StepEntryTuple = (String, String, String, i64);
type InboxTuple = (i64, String, String, Option<String>, String, i64, Option<i64>);

fn uuid_of(what: &str, raw: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(raw).map_err(|e| StoreError::Corrupt(format!("{what} {raw:?}: {e}")))
}

fn json_of(what: &str, raw: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("{what} is not JSON: {e}")))
}

fn conversation((id, user, version, created_at, state): ConversationTuple) -> Result<ConversationExport, StoreError> {
    Ok(ConversationExport {
        id: uuid_of("conversation id", &id)?,
        user,
        version,
        created_at,
        state: json_of("conversation state", &state)?,
    })
}

fn message(
    (conversation, seq, origin, body, client_id, stream, choices, consistency, created_at): MessageTuple,
) -> Result<MessageExport, StoreError> {
    Ok(MessageExport {
        conversation: uuid_of("conversation id", &conversation)?,
        seq,
        origin,
        body,
        client_id,
        stream,
        choices: choices.as_deref().map(|c| json_of("message choices", c)).transpose()?,
        consistency,
        created_at,
    })
}

fn nudge(
    (id, conversation, user, due_at, status, created_at, settled_at): NudgeTuple,
) -> Result<NudgeExport, StoreError> {
    Ok(NudgeExport {
        id: uuid_of("nudge id", &id)?,
        conversation: uuid_of("conversation id", &conversation)?,
        user,
        due_at,
        status,
        created_at,
        settled_at,
    })
}

fn outbox(
    (conversation, seq, channel, chat, body, state, attempts, provider_message_id, error, created_at, updated_at): OutboxTuple,
) -> Result<OutboxExport, StoreError> {
    Ok(OutboxExport {
        conversation: uuid_of("conversation id", &conversation)?,
        seq,
        channel,
        chat,
        body: json_of("outbox body", &body)?,
        state,
        attempts,
        provider_message_id,
        error,
        created_at,
        updated_at,
    })
}

fn step_entry((conversation, program, step, entered_at): StepEntryTuple) -> Result<StepEntryExport, StoreError> {
    Ok(StepEntryExport { conversation: uuid_of("conversation id", &conversation)?, program, step, entered_at })
}

fn inbox((id, channel, dedup_key, sender, payload, received_at, processed_at): InboxTuple) -> InboxExport {
    // Kept as text when it is not JSON: an export must not fail on one odd row.
    let payload = serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload));
    InboxExport { id, channel, dedup_key, sender, payload, received_at, processed_at }
}

fn identity((channel, external_id, user, created_at): (String, String, String, i64)) -> IdentityExport {
    IdentityExport { channel, external_id, user, created_at }
}

fn link_code((code, user, expires_at): (String, String, i64)) -> LinkCodeExport {
    LinkCodeExport { code, user, expires_at }
}

fn all<T, U>(rows: Vec<T>, f: impl Fn(T) -> Result<U, StoreError>) -> Result<Vec<U>, StoreError> {
    rows.into_iter().map(f).collect()
}

/// The channel identities that speak for `user`: those bound to them, and the one their id names
/// when nobody bound it to another user.
async fn handles(conn: &mut Conn<'_>, creator: CreatorId, user: &UserId) -> Result<Vec<(String, String)>, StoreError> {
    let c = Arg::Id(creator.0);
    let mut handles: Vec<(String, String)> = conn
        .fetch(
            "SELECT channel, external_id FROM channel_identities WHERE creator_id = $1 AND user_id = $2",
            &[c.clone(), Arg::Text(user.as_str().to_owned())],
        )
        .await?;
    if let Some((channel, external)) = default_identity(user) {
        let bound: Vec<(String,)> = conn
            .fetch(
                "SELECT user_id FROM channel_identities WHERE creator_id = $1 AND channel = $2 AND external_id = $3",
                &[c, Arg::Text(channel.as_str().to_owned()), Arg::Text(external.to_owned())],
            )
            .await?;
        let handle = (channel.as_str().to_owned(), external.to_owned());
        if bound.is_empty() && !handles.contains(&handle) {
            handles.push(handle);
        }
    }
    Ok(handles)
}

async fn user_export(conn: &mut Conn<'_>, creator: CreatorId, user: &UserId) -> Result<UserExport, StoreError> {
    let c = Arg::Id(creator.0);
    let id = Arg::Id(ConversationId::of(creator, user).0);
    let u = Arg::Text(user.as_str().to_owned());
    let by_conversation = [c.clone(), id];
    let by_user = [c.clone(), u];
    let conversations: Vec<ConversationTuple> =
        conn.fetch(&format!("{CONVERSATIONS} WHERE creator_id = $1 AND id = $2"), &by_conversation).await?;
    let messages: Vec<MessageTuple> = conn
        .fetch(&format!("{MESSAGES} WHERE creator_id = $1 AND conversation_id = $2 ORDER BY seq"), &by_conversation)
        .await?;
    let nudges: Vec<NudgeTuple> = conn
        .fetch(
            &format!("{NUDGES} WHERE creator_id = $1 AND conversation_id = $2 ORDER BY due_at, id"),
            &by_conversation,
        )
        .await?;
    let outbox_rows: Vec<OutboxTuple> = conn
        .fetch(&format!("{OUTBOX} WHERE creator_id = $1 AND conversation_id = $2 ORDER BY seq"), &by_conversation)
        .await?;
    let step_entries: Vec<StepEntryTuple> = conn
        .fetch(
            &format!(
                "{STEP_ENTRIES} WHERE creator_id = $1 AND conversation_id = $2 ORDER BY entered_at, program, step"
            ),
            &by_conversation,
        )
        .await?;
    let identities: Vec<(String, String, String, i64)> = conn
        .fetch(&format!("{IDENTITIES} WHERE creator_id = $1 AND user_id = $2 ORDER BY channel, external_id"), &by_user)
        .await?;
    let link_codes: Vec<(String, String, i64)> =
        conn.fetch(&format!("{LINK_CODES} WHERE creator_id = $1 AND user_id = $2 ORDER BY code"), &by_user).await?;
    let mut inbox_rows: Vec<InboxTuple> = Vec::new();
    for (channel, external) in handles(conn, creator, user).await? {
        let args = [c.clone(), Arg::Text(channel), Arg::Text(external)];
        inbox_rows.extend(
            conn.fetch::<InboxTuple>(&format!("{INBOX} WHERE creator_id = $1 AND channel = $2 AND sender = $3"), &args)
                .await?,
        );
    }
    inbox_rows.sort_by_key(|row| row.0);
    Ok(UserExport {
        creator: creator.0,
        user: user.as_str().to_owned(),
        conversation: conversations.into_iter().next().map(conversation).transpose()?,
        messages: all(messages, message)?,
        nudges: all(nudges, nudge)?,
        outbox: all(outbox_rows, outbox)?,
        step_entries: all(step_entries, step_entry)?,
        inbox: inbox_rows.into_iter().map(inbox).collect(),
        identities: identities.into_iter().map(identity).collect(),
        link_codes: link_codes.into_iter().map(link_code).collect(),
        uploaded_knowledge: Vec::new(),
    })
}

async fn user_erase(conn: &mut Conn<'_>, creator: CreatorId, user: &UserId) -> Result<ErasureReport, StoreError> {
    let c = Arg::Id(creator.0);
    let by_conversation = [c.clone(), Arg::Id(ConversationId::of(creator, user).0)];
    let by_user = [c.clone(), Arg::Text(user.as_str().to_owned())];
    // Read before the identities that name them are deleted.
    let handles = handles(conn, creator, user).await?;
    let mut report = ErasureReport::default();
    // Children before the conversation they reference.
    // The ownership row too: a node still running the conversation is fenced from now on.
    for table in ["outbox", "messages", "nudges", "step_entries", "conversation_owners"] {
        let sql = format!("DELETE FROM {table} WHERE creator_id = $1 AND conversation_id = $2");
        report.add(table, conn.execute(&sql, &by_conversation).await?);
    }
    let removed = conn.execute("DELETE FROM conversations WHERE creator_id = $1 AND id = $2", &by_conversation).await?;
    report.add("conversations", removed);
    for table in ["channel_identities", "link_codes"] {
        let sql = format!("DELETE FROM {table} WHERE creator_id = $1 AND user_id = $2");
        report.add(table, conn.execute(&sql, &by_user).await?);
    }
    report.add("inbox", 0);
    for (channel, external) in handles {
        let args = [c.clone(), Arg::Text(channel), Arg::Text(external)];
        let removed =
            conn.execute("DELETE FROM inbox WHERE creator_id = $1 AND channel = $2 AND sender = $3", &args).await?;
        report.add("inbox", removed);
    }
    Ok(report)
}

async fn creator_export(conn: &mut Conn<'_>, creator: CreatorId) -> Result<Option<CreatorExport>, StoreError> {
    let c = [Arg::Id(creator.0)];
    let profile: Vec<(String, i64, String)> =
        conn.fetch("SELECT slug, version, profile{t} FROM creators WHERE id = $1", &c).await?;
    let Some((slug, version, profile)) = profile.into_iter().next() else {
        return Ok(None);
    };
    let documents: Vec<(String, String, String)> = conn
        .fetch("SELECT path, body, content_hash FROM knowledge_documents WHERE creator_id = $1 ORDER BY path", &c)
        .await?;
    let programs: Vec<(String, i64, String, String)> = conn
        .fetch(
            "SELECT program_id, version{b}, source, content_hash FROM programs WHERE creator_id = $1 \
             ORDER BY program_id, version",
            &c,
        )
        .await?;
    type IngestionTuple = (String, String, String, i64, String, i64, i64, Option<String>, i64);
    let ingestion: Vec<IngestionTuple> = conn
        .fetch(
            "SELECT document, content_hash, embedder, chunker, state, chunks_done, chunks_total, error, updated_at \
             FROM knowledge_ingestion WHERE creator_id = $1 ORDER BY document",
            &c,
        )
        .await?;
    let vectors: Vec<(String, String, String, i64, i64)> = conn
        .fetch(
            "SELECT document, content_hash, embedder, ordinal{b}, (length(vector) / 4){b} FROM knowledge_vectors \
             WHERE creator_id = $1 ORDER BY embedder, document, ordinal",
            &c,
        )
        .await?;
    let conversations: Vec<ConversationTuple> =
        conn.fetch(&format!("{CONVERSATIONS} WHERE creator_id = $1 ORDER BY user_id"), &c).await?;
    let messages: Vec<MessageTuple> =
        conn.fetch(&format!("{MESSAGES} WHERE creator_id = $1 ORDER BY conversation_id, seq"), &c).await?;
    let nudges: Vec<NudgeTuple> =
        conn.fetch(&format!("{NUDGES} WHERE creator_id = $1 ORDER BY conversation_id, due_at, id"), &c).await?;
    let outbox_rows: Vec<OutboxTuple> =
        conn.fetch(&format!("{OUTBOX} WHERE creator_id = $1 ORDER BY conversation_id, seq"), &c).await?;
    let step_entries: Vec<StepEntryTuple> = conn
        .fetch(&format!("{STEP_ENTRIES} WHERE creator_id = $1 ORDER BY conversation_id, entered_at, program, step"), &c)
        .await?;
    let inbox_rows: Vec<InboxTuple> = conn.fetch(&format!("{INBOX} WHERE creator_id = $1 ORDER BY id"), &c).await?;
    let identities: Vec<(String, String, String, i64)> =
        conn.fetch(&format!("{IDENTITIES} WHERE creator_id = $1 ORDER BY channel, external_id"), &c).await?;
    let link_codes: Vec<(String, String, i64)> =
        conn.fetch(&format!("{LINK_CODES} WHERE creator_id = $1 ORDER BY code"), &c).await?;
    Ok(Some(CreatorExport {
        creator: creator.0,
        slug,
        version,
        profile: json_of("creator profile", &profile)?,
        documents: documents
            .into_iter()
            .map(|(path, body, content_hash)| DocumentExport { path, body, content_hash })
            .collect(),
        programs: programs
            .into_iter()
            .map(|(program, version, source, content_hash)| ProgramExport { program, version, source, content_hash })
            .collect(),
        ingestion: ingestion
            .into_iter()
            .map(|(document, content_hash, embedder, chunker, state, chunks_done, chunks_total, error, updated_at)| {
                IngestionExport {
                    document,
                    content_hash,
                    embedder,
                    chunker,
                    state,
                    chunks_done,
                    chunks_total,
                    error,
                    updated_at,
                }
            })
            .collect(),
        vectors: vectors
            .into_iter()
            .map(|(document, content_hash, embedder, ordinal, dimensions)| VectorExport {
                document,
                content_hash,
                embedder,
                ordinal,
                dimensions,
            })
            .collect(),
        conversations: all(conversations, conversation)?,
        messages: all(messages, message)?,
        nudges: all(nudges, nudge)?,
        outbox: all(outbox_rows, outbox)?,
        step_entries: all(step_entries, step_entry)?,
        inbox: inbox_rows.into_iter().map(inbox).collect(),
        identities: identities.into_iter().map(identity).collect(),
        link_codes: link_codes.into_iter().map(link_code).collect(),
    }))
}

async fn creator_erase(conn: &mut Conn<'_>, creator: CreatorId) -> Result<ErasureReport, StoreError> {
    let c = [Arg::Id(creator.0)];
    let mut report = ErasureReport::default();
    for table in CREATOR_TABLES {
        let removed = conn.execute(&format!("DELETE FROM {table} WHERE creator_id = $1"), &c).await?;
        report.add(table, removed);
    }
    report.add("creators", conn.execute("DELETE FROM creators WHERE id = $1", &c).await?);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_user_id_names_its_channel_identity() {
        let user = |raw: &str| UserId::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
        assert_eq!(default_identity(&user("tg-42")), Some((ChannelKind::Telegram, "42")));
        assert_eq!(default_identity(&user("wa-4915112345")), Some((ChannelKind::WhatsApp, "4915112345")));
        assert_eq!(default_identity(&user("alice")), None);
        assert_eq!(default_identity(&user("xx-1")), None);
    }
}
