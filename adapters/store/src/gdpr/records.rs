//! What an export returns and an erasure reports: plain serde documents, one type per table, with
//! ids as uuids and times as the stored milliseconds.

use std::collections::BTreeMap;

use serde::Serialize;
use uuid::Uuid;

/// Everything stored about one end user of a creator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserExport {
    pub creator: Uuid,
    pub user: String,
    /// The conversation with its durable state (program position, variables, mode, reachability,
    /// pending nudges), `None` if the user never wrote.
    pub conversation: Option<ConversationExport>,
    pub messages: Vec<MessageExport>,
    /// Every status: pending, fired, skipped, cancelled.
    pub nudges: Vec<NudgeExport>,
    pub outbox: Vec<OutboxExport>,
    /// The program steps the user entered, oldest first.
    pub step_entries: Vec<StepEntryExport>,
    /// Raw webhook items of the user's channel identities, as the provider sent them.
    pub inbox: Vec<InboxExport>,
    pub identities: Vec<IdentityExport>,
    pub link_codes: Vec<LinkCodeExport>,
    /// Knowledge the user uploaded. End users cannot upload knowledge today, so this is always
    /// empty; it is kept so the archive's shape does not change when they can.
    pub uploaded_knowledge: Vec<DocumentExport>,
}

impl UserExport {
    /// Nothing is stored about this user: the routes answer 404, as for any unknown id.
    pub fn is_empty(&self) -> bool {
        self.conversation.is_none()
            && self.messages.is_empty()
            && self.nudges.is_empty()
            && self.outbox.is_empty()
            && self.step_entries.is_empty()
            && self.inbox.is_empty()
            && self.identities.is_empty()
            && self.link_codes.is_empty()
    }
}

/// Everything stored for a creator: the profile and knowledge, and every user's data table by table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreatorExport {
    pub creator: Uuid,
    pub slug: String,
    pub version: i64,
    /// serde_json of the creator's profile, as stored.
    pub profile: serde_json::Value,
    pub documents: Vec<DocumentExport>,
    pub programs: Vec<ProgramExport>,
    pub ingestion: Vec<IngestionExport>,
    /// The embedded index's chunk vectors, without the floats: they are derived from the documents
    /// (which are exported) and would make the archive many times larger.
    pub vectors: Vec<VectorExport>,
    pub conversations: Vec<ConversationExport>,
    pub messages: Vec<MessageExport>,
    pub nudges: Vec<NudgeExport>,
    pub outbox: Vec<OutboxExport>,
    pub step_entries: Vec<StepEntryExport>,
    pub inbox: Vec<InboxExport>,
    pub identities: Vec<IdentityExport>,
    pub link_codes: Vec<LinkCodeExport>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConversationExport {
    pub id: Uuid,
    pub user: String,
    pub version: i64,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// The conversation's durable state as stored (serde_json of the engine's ConversationState).
    pub state: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageExport {
    pub conversation: Uuid,
    pub seq: i64,
    /// `user`, `twin`, `program`, `nudge` or `human`.
    pub origin: String,
    pub body: String,
    pub client_id: Option<String>,
    pub stream: Option<String>,
    pub choices: Option<serde_json::Value>,
    /// Consistency score of a twin reply, in thousandths.
    pub consistency: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NudgeExport {
    pub id: Uuid,
    pub conversation: Uuid,
    pub user: String,
    pub due_at: i64,
    pub status: String,
    pub created_at: i64,
    pub settled_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxExport {
    pub conversation: Uuid,
    pub seq: i64,
    pub channel: String,
    /// The Telegram chat id or WhatsApp number written to.
    pub chat: String,
    pub body: serde_json::Value,
    pub state: String,
    pub attempts: i64,
    pub provider_message_id: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A program step a conversation entered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepEntryExport {
    pub conversation: Uuid,
    pub program: String,
    pub step: String,
    pub entered_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboxExport {
    pub id: i64,
    pub channel: String,
    pub dedup_key: String,
    /// The channel identity the item is about.
    pub sender: Option<String>,
    /// The item as stored: JSON, or the raw text when it is not JSON.
    pub payload: serde_json::Value,
    pub received_at: i64,
    pub processed_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdentityExport {
    pub channel: String,
    pub external_id: String,
    pub user: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkCodeExport {
    pub code: String,
    pub user: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DocumentExport {
    pub path: String,
    pub body: String,
    pub content_hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProgramExport {
    pub program: String,
    pub version: i64,
    pub source: String,
    pub content_hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestionExport {
    pub document: String,
    pub content_hash: String,
    pub embedder: String,
    pub chunker: i64,
    pub state: String,
    pub chunks_done: i64,
    pub chunks_total: i64,
    pub error: Option<String>,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VectorExport {
    pub document: String,
    pub content_hash: String,
    pub embedder: String,
    pub ordinal: i64,
    pub dimensions: i64,
}

/// What an erasure removed: rows per table. It names no user and holds no personal data, so it can
/// be logged and audited as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErasureReport {
    pub rows: BTreeMap<String, u64>,
}

impl ErasureReport {
    pub fn total(&self) -> u64 {
        self.rows.values().sum()
    }

    /// Rows removed from `table` (0 when none).
    pub fn removed(&self, table: &str) -> u64 {
        self.rows.get(table).copied().unwrap_or(0)
    }

    pub(crate) fn add(&mut self, table: &str, rows: u64) {
        *self.rows.entry(table.to_owned()).or_default() += rows;
    }
}
