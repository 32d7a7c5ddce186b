//! The channel storage port: the webhook inbox, channel identities and link codes, and the outbox
//! of provider sends. Used by the webhook handlers and the outbox worker, not by conversations
//! (their outbox entries arrive through [`super::Record::Outbox`] in their own commits).
//!
//! The scans (`inbox_pending`, `outbox_due`, `whatsapp_creator`) cross
//! tenants: on PostgreSQL they run as `twin_system` under narrow policies; everything else runs
//! as the tenant. Several nodes may scan one store (scale-out): the inbox and outbox scans claim
//! what they return for a lease, so each row has one worker at a time.

use std::time::Duration;

use crate::channel::{ChannelKind, DeliveryState, OutboxEntry};
use crate::ids::{ConversationId, CreatorId, Seq, UserId};
use crate::ports::StoreError;
use crate::time::Timestamp;

/// How long [`ChannelStore::outbox_due`] holds the entries it returns for its caller: several nodes
/// scan one outbox, and only one of them may send an entry at a time. Long enough for one entry's
/// parts to go out (each recorded part renews it); an entry whose sender died is taken up again
/// once it passes.
pub const OUTBOX_LEASE: Duration = Duration::from_secs(60);

/// How long [`ChannelStore::inbox_pending`] holds the items it returns for the caller that feeds
/// them: several nodes sweep one inbox, and only one of them may feed an item at a time. Feeding
/// commits the item's turn (which marks it processed) well within it; an item whose feeder died
/// or failed is swept again once it passes.
pub const INBOX_LEASE: Duration = Duration::from_secs(60);

/// `now` plus a lease, in the store's milliseconds.
pub fn lease_until(now: Timestamp, lease: Duration) -> Timestamp {
    now.plus_millis(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
}

/// One stored webhook item waiting to be fed to its conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxRow {
    /// Monotonic per store: rows are replayed in arrival order.
    pub id: i64,
    pub creator: CreatorId,
    pub channel: ChannelKind,
    /// The provider's id of the item (`tg:update:…`, `wa:msg:…`); unique per (creator, channel).
    pub dedup_key: String,
    /// The item as the adapter parsed it (JSON), enough to process it again after a crash.
    pub payload: String,
    pub received_at: Timestamp,
}

/// An outbox entry with where its delivery stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub entry: OutboxEntry,
    pub state: DeliveryState,
    /// Attempts that failed so far.
    pub attempts: u32,
    /// Parts of the rendered message already accepted by the provider: a retry resumes after them.
    pub parts_done: u32,
    pub next_attempt_at: Timestamp,
}

/// What became of an attempt to send an outbox entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxUpdate {
    /// One more part was accepted (`provider_message_id` of it); more follow.
    PartSent { parts_done: u32, provider_message_id: Option<String> },
    /// Every part was accepted.
    Sent { provider_message_id: Option<String> },
    /// Try again at `at`; `attempts` counts this failure.
    Retry { attempts: u32, at: Timestamp, error: String },
    /// Given up; `error` says why.
    Failed { error: String },
}

/// A status report matched to the message it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub creator: CreatorId,
    pub conversation: ConversationId,
    pub seq: Seq,
    pub state: DeliveryState,
}

#[async_trait::async_trait]
pub trait ChannelStore: Send + Sync + 'static {
    /// Stores webhook items of one creator in one transaction; an item whose dedup key is already
    /// stored is skipped. Returns the rows that are new (the ones to process), in order.
    async fn inbox_put(
        &self,
        creator: CreatorId,
        channel: ChannelKind,
        items: &[(String, String)],
        now: Timestamp,
    ) -> Result<Vec<InboxRow>, StoreError>;

    /// Items not processed yet that were received at or before `received_by`, oldest first, across
    /// tenants (replayed at start, then swept), at most `limit`. Claims the items it returns until
    /// `now` plus [`INBOX_LEASE`]: items another caller is claiming right now, or holds a claim on
    /// that has not expired at `now`, are skipped, so two nodes never feed one item at once.
    async fn inbox_pending(
        &self,
        received_by: Timestamp,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<InboxRow>, StoreError>;

    /// Drops every inbox claim: a single node at start, when no other node can hold one (what a
    /// crashed run claimed is fed again at once instead of after its lease). Returns how many.
    async fn inbox_release_claims(&self) -> Result<u64, StoreError>;

    /// The item was fed to its conversation (or deliberately dropped).
    async fn inbox_done(&self, creator: CreatorId, id: i64, now: Timestamp) -> Result<(), StoreError>;

    /// The end user a channel identity belongs to.
    async fn identity(
        &self,
        creator: CreatorId,
        channel: ChannelKind,
        external: &str,
    ) -> Result<Option<UserId>, StoreError>;

    /// Binds a channel identity to an end user (replacing an earlier binding).
    async fn bind_identity(
        &self,
        creator: CreatorId,
        channel: ChannelKind,
        external: &str,
        user: &UserId,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Stores a one-time code that links a channel identity to `user` until `expires_at`.
    async fn put_link_code(
        &self,
        creator: CreatorId,
        code: &str,
        user: &UserId,
        expires_at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Uses up a link code: the user it names when it exists and has not expired, once.
    async fn take_link_code(
        &self,
        creator: CreatorId,
        code: &str,
        now: Timestamp,
    ) -> Result<Option<UserId>, StoreError>;

    /// The creator whose WhatsApp number this is (the shared webhook endpoint routes by it).
    async fn whatsapp_creator(&self, phone_number_id: &str) -> Result<Option<CreatorId>, StoreError>;

    /// Pending outbox entries whose next attempt is due at `now`, oldest first, across tenants: the
    /// earliest pending entry of each conversation only (the ones after it wait for it). Claims the
    /// entries it returns until `now` plus [`OUTBOX_LEASE`]: entries another caller is claiming
    /// right now, or holds a claim on that has not expired at `now`, are skipped (and so are the
    /// entries after them), so two nodes never send one entry at once.
    async fn outbox_due(&self, now: Timestamp, limit: u32) -> Result<Vec<OutboxRow>, StoreError>;

    /// Drops every outbox claim: a single node at start, when no other node can hold one (what a
    /// crashed run claimed goes out at once instead of after its lease). Returns how many.
    async fn outbox_release_claims(&self) -> Result<u64, StoreError>;

    /// Records the outcome of an attempt. `Sent`, `Retry` and `Failed` end the entry's claim; a
    /// `PartSent` renews it until `now` plus [`OUTBOX_LEASE`] (the sender goes on with the next
    /// part, and no other node may start the entry meanwhile).
    async fn outbox_update(
        &self,
        creator: CreatorId,
        conversation: ConversationId,
        seq: Seq,
        update: &OutboxUpdate,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Applies a provider's status report to the message it sent with that id (states only move
    /// forward, `failed` is final, and the first error reported is kept). Returns the new state
    /// when the report changed it; `None` when it changed nothing: no sent message has that id
    /// (unknown, or an entry still pending because parts of it are still going out), or the
    /// report is a repeat or arrives after a later state (`delivered` after `read`). So callers
    /// publish every `Some` as a change. Only `creator`'s messages are considered: the webhook
    /// that carried the report was verified with that creator's secret.
    async fn outbox_status(
        &self,
        creator: CreatorId,
        channel: ChannelKind,
        provider_message_id: &str,
        state: DeliveryState,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<Option<StatusChange>, StoreError>;

    /// One message's outbox row (for tests and the live view).
    async fn outbox_entry(
        &self,
        creator: CreatorId,
        conversation: ConversationId,
        seq: Seq,
    ) -> Result<Option<OutboxRow>, StoreError>;
}

/// The outbox as conversations see it: told about entries right after they commit, so a send
/// does not wait for the next scan. Never blocks.
pub trait Outbox: Send + Sync + 'static {
    fn dispatch(&self, entries: Vec<OutboxEntry>);
}

/// No provider channels here (tests, the bench): committed entries wait in the store.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoOutbox;

impl Outbox for NoOutbox {
    fn dispatch(&self, _entries: Vec<OutboxEntry>) {}
}
