//! The storage ports: conversations with their messages, and creators with their knowledge.

use std::error::Error as StdError;

use crate::channel::OutboxEntry;
use crate::conversation::ConversationState;
use crate::ids::{ClientMsgId, ConversationId, CreatorId, NudgeId, ProgramId, Seq, StepId, UserId};
use crate::knowledge::KnowledgeDocument;
use crate::message::Message;
use crate::time::Timestamp;
use crate::twin::CreatorProfile;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or failed; the caller retries later or reports
    /// `unavailable`. Nothing of the failed call was written.
    #[error("the store is unavailable")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync>),
    /// A conversation was written by someone holding a stale version; the writer must reload.
    #[error("conversation {conversation} was changed concurrently (expected version {expected})")]
    Conflict { conversation: ConversationId, expected: u64 },
    /// Stored data could not be read back; a bug or a manual edit. Not retried.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The commit carried a [`Record::Fence`] for an epoch that is no longer the conversation's
    /// (another node claimed it since, or its ownership was erased): nothing of the commit was
    /// written. The writer must stop acting for the conversation, not retry.
    #[error("conversation {conversation} is owned by another node now (this writer held epoch {epoch})")]
    Fenced { conversation: ConversationId, epoch: u64 },
}

impl StoreError {
    pub fn unavailable(source: impl StdError + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(source))
    }
}

/// The durable identity and version of a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationHeader {
    pub id: ConversationId,
    pub creator: CreatorId,
    pub user: UserId,
    /// Incremented by each state change; a write must carry the previous version plus one.
    pub version: u64,
    pub created_at: Timestamp,
    /// Program position, variables, pending nudges and nudge bookkeeping; stored as JSON with the
    /// version, so a stale writer can never overwrite it.
    pub state: ConversationState,
}

/// One thing to make durable. A commit is a slice of records written in one transaction.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "records live for one commit; a state change is rare next to messages, and boxing it would cost an allocation per state write for no memory that stays"
)]
pub enum Record {
    /// Create the conversation (version 1) or move it from `version - 1` to `version`.
    Conversation(ConversationHeader),
    /// Append a message; `(conversation, seq)` and `(conversation, client_id)` are unique.
    Message(Message),
    /// A nudge row, pending, due at `due_at`. Written before the scheduler hears of it.
    NudgeScheduled(ScheduledNudge),
    /// The nudge is no longer pending: it fired, was skipped by the policy, or was cancelled. Written
    /// in the same transaction as the conversation state that resulted, so it takes effect once.
    NudgeSettled { creator: CreatorId, id: NudgeId, outcome: NudgeOutcome },
    /// A message to send on a provider channel (Telegram, WhatsApp), pending. Written with the
    /// message it sends, so a committed message is always sent, after a crash too.
    Outbox(OutboxEntry),
    /// The webhook inbox row `id` became a turn of its conversation (written with that turn).
    InboxDone { creator: CreatorId, id: i64 },
    /// The conversation entered a program step at `at` (the engine's clock). Written in the same
    /// commit as the state that holds the new step: the durable history the program funnel counts
    /// (the state keeps only the current step). Append-only; a step entered again is a new row.
    StepEntered { creator: CreatorId, conversation: ConversationId, program: ProgramId, step: StepId, at: Timestamp },
    /// Scale-out ownership: this commit stands only while `conversation` is owned under `epoch`
    /// (the epoch [`ConversationStore::claim_owner`] returned to the node that writes). Checked
    /// before anything of the commit is written; a stale epoch refuses the whole commit with
    /// [`StoreError::Fenced`], so a node that lost a conversation can never write over the new
    /// owner's rows.
    Fence { creator: CreatorId, conversation: ConversationId, epoch: u64 },
}

impl Record {
    pub fn creator(&self) -> CreatorId {
        match self {
            Record::Conversation(h) => h.creator,
            Record::Message(m) => m.creator,
            Record::NudgeScheduled(n) => n.creator,
            Record::NudgeSettled { creator, .. } => *creator,
            Record::Outbox(entry) => entry.creator,
            Record::InboxDone { creator, .. } => *creator,
            Record::StepEntered { creator, .. } => *creator,
            Record::Fence { creator, .. } => *creator,
        }
    }
}

/// How much of a conversation to bring back into memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadLimits {
    /// Most recent messages, for reply context.
    pub history: usize,
    /// Most recent user messages' client ids, for idempotency.
    pub client_ids: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredConversation {
    pub header: ConversationHeader,
    /// The largest committed seq (0 when no message was stored yet).
    pub last_seq: Seq,
    /// The most recent messages, oldest first.
    pub recent: Vec<Message>,
    /// Client ids of the most recent user messages with their seq, oldest first.
    pub client_ids: Vec<(ClientMsgId, Seq)>,
}

#[async_trait::async_trait]
pub trait ConversationStore: Send + Sync + 'static {
    async fn load(
        &self,
        creator: CreatorId,
        id: ConversationId,
        limits: LoadLimits,
    ) -> Result<Option<StoredConversation>, StoreError>;

    /// Writes all records in one transaction, each tenant's rows under that tenant (row-level
    /// security), or nothing at all.
    async fn commit(&self, records: &[Record]) -> Result<(), StoreError>;

    /// How many commits may run at once. A caller never has two commits of one conversation in
    /// flight, so commits of different conversations may overlap where the database allows it
    /// (PostgreSQL); a single-writer database says 1.
    fn concurrent_commits(&self) -> usize {
        1
    }

    /// Messages with a seq larger than `after`, ascending, at most `limit`.
    async fn history(
        &self,
        creator: CreatorId,
        id: ConversationId,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError>;

    /// Claims a conversation for `node` (scale-out ownership): returns a new epoch, larger than any
    /// before for this conversation, recorded with `node` as its holder. Returns Ok(None), changing
    /// nothing, while another node that is in `live` holds it (a holder is set and not released) —
    /// unless `force`. A holder not in `live` (a dead node) never blocks.
    ///
    /// A commit in flight with a [`Record::Fence`] of the previous epoch either lands before the
    /// claim returns or is refused after it: never after the claim and accepted.
    async fn claim_owner(
        &self,
        creator: CreatorId,
        conversation: ConversationId,
        node: &str,
        live: &[String],
        force: bool,
    ) -> Result<Option<u64>, StoreError>;

    /// Gives the conversation up (passivation, handover): clears the holder if the epoch is still
    /// `epoch` (the epoch stays, so a stale writer is still refused). A later epoch is left alone.
    async fn release_owner(
        &self,
        creator: CreatorId,
        conversation: ConversationId,
        epoch: u64,
    ) -> Result<(), StoreError>;
}

/// A nudge as the store keeps it: enough to find its conversation when it falls due. What it says
/// and why is in the conversation's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledNudge {
    pub id: NudgeId,
    pub creator: CreatorId,
    pub conversation: ConversationId,
    pub user: UserId,
    pub due_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NudgeOutcome {
    Fired,
    Skipped,
    Cancelled,
}

impl NudgeOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            NudgeOutcome::Fired => "fired",
            NudgeOutcome::Skipped => "skipped",
            NudgeOutcome::Cancelled => "cancelled",
        }
    }
}

/// The nudge table as the scheduler sees it: across tenants (PostgreSQL's `twin_system` role).
#[async_trait::async_trait]
pub trait NudgeStore: Send + Sync + 'static {
    /// Pending nudges due before `horizon` that nobody holds a live claim on (none, or one that
    /// expired before `now`), earliest first, at most `limit`.
    async fn pending_before(
        &self,
        horizon: Timestamp,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<ScheduledNudge>, StoreError>;

    /// Claims these nudges until `lease_until` when they are still pending and unclaimed (or their
    /// claim expired); rows another node is claiming right now are skipped, not waited for
    /// (`FOR UPDATE SKIP LOCKED`). Returns the ones this call claimed.
    async fn claim(
        &self,
        ids: &[NudgeId],
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Vec<ScheduledNudge>, StoreError>;

    /// Drops every claim: a single node at start, when no other node can hold one.
    async fn release_claims(&self) -> Result<u64, StoreError>;

    /// Pending nudges of one conversation, earliest first (for the live view and tests).
    async fn pending_of(
        &self,
        creator: CreatorId,
        conversation: ConversationId,
    ) -> Result<Vec<ScheduledNudge>, StoreError>;
}

/// One version of a coaching program as its creator wrote it (YAML source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramSource {
    pub id: ProgramId,
    pub source: String,
}

/// A stored program version. Versions are immutable: a changed source becomes the next version,
/// and enrolments stay pinned to the version they started on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredProgram {
    pub id: ProgramId,
    pub version: u32,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredCreator {
    pub profile: CreatorProfile,
    pub documents: Vec<KnowledgeDocument>,
    /// Every version of every program of this creator, by id then version.
    pub programs: Vec<StoredProgram>,
    /// Incremented each time the profile, a document or a program changes.
    pub version: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    Updated { version: u64 },
    Unchanged,
}

#[async_trait::async_trait]
pub trait CreatorStore: Send + Sync + 'static {
    /// Stores a creator's profile and knowledge documents (the whole set: documents not given are
    /// removed) and its programs: a program whose source differs from its latest version becomes a
    /// new version; older versions are kept (running enrolments use them). Storing what is already
    /// there changes nothing.
    async fn put_creator(
        &self,
        profile: &CreatorProfile,
        documents: &[KnowledgeDocument],
        programs: &[ProgramSource],
    ) -> Result<PutOutcome, StoreError>;

    async fn creator(&self, id: CreatorId) -> Result<Option<StoredCreator>, StoreError>;
}
