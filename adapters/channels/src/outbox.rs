//! The outbox worker: sends the committed outbox entries of Telegram and WhatsApp users, in order
//! per conversation, within each provider's rate limits, retrying with back-off, and records every
//! outcome in the store before it is forgotten. Started by the server; conversations wake it
//! through the [`Outbox`] port right after a commit, and it scans the store on a timer anyway, so
//! entries committed before a crash go out after the restart.
//!
//! Delivery is at-least-once with one window (ARCHITECTURE §5): a crash after the provider accepted
//! a part and before the store recorded it sends that part again. Everything else happens once:
//! parts already recorded are never sent again (`parts_done`), and a conversation's entries are
//! sent by one task at a time, in seq order. Several nodes may run a worker on one store: each
//! scan claims what it returns for a lease (`ChannelStore::outbox_due`), so an entry has one
//! sender at a time.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use twin_engine::channel::{
    ChannelAddress, ChannelKind, DeliveryState, MAX_ATTEMPTS, OutboxEntry, Pacer, Rate, retry_delay_ms,
};
use twin_engine::ports::{
    ChannelStore, Clock, LiveEvent, LiveEventKind, LivePublisher, Outbox, OutboxRow, OutboxUpdate,
};
use twin_engine::{ConversationId, CreatorId, Timestamp};

use crate::channel::{ProviderClient, SendError};

/// The provider clients of creators' channels.
#[async_trait::async_trait]
pub trait Providers: Send + Sync + 'static {
    /// The client of a creator's channel; `None` when the creator has not configured that channel
    /// (or its secrets cannot be resolved, which the implementation logs); an error (normally
    /// [`SendError::Transient`]) when that cannot be known right now.
    async fn client(&self, creator: CreatorId, kind: ChannelKind)
    -> Result<Option<Arc<dyn ProviderClient>>, SendError>;
}

/// What the outbox tells the rest of the server about users it cannot reach.
pub trait Feedback: Send + Sync + 'static {
    /// The provider said the user blocked the twin (or is gone) on `address`.
    fn unreachable(&self, entry: &OutboxEntry, address: &ChannelAddress);
}

#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// The store is scanned this often even when nobody wakes the worker.
    pub scan_interval: Duration,
    /// Rows read per scan.
    pub batch: u32,
    /// Conversations sending at once.
    pub max_in_flight: usize,
    /// A pacing wait longer than this is not slept in the sending task: the entry is rescheduled.
    pub max_inline_wait: Duration,
    /// Crash drill hook: claim due entries and never send them (tests kill the server meanwhile).
    pub hold_before_send: bool,
    /// Drop every outbox claim before the first scan, so what a crashed run claimed goes out at
    /// once rather than when its lease ends. Right for a single node only: with several nodes
    /// sharing the store, another node's claims are live.
    pub release_claims_at_start: bool,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            scan_interval: Duration::from_secs(1),
            batch: 256,
            max_in_flight: 64,
            max_inline_wait: Duration::from_secs(2),
            hold_before_send: false,
            release_claims_at_start: true,
        }
    }
}

/// The [`Outbox`] port of the running worker.
#[derive(Clone)]
pub struct OutboxHandle {
    inner: Arc<Inner>,
}

impl Outbox for OutboxHandle {
    fn dispatch(&self, _entries: Vec<OutboxEntry>) {
        // The entries are in the store already: waking the scan is all it takes.
        self.inner.wake.notify_one();
    }
}

impl OutboxHandle {
    /// Wakes the worker (after a restart, or when a provider's settings changed).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }
}

struct Inner {
    store: Arc<dyn ChannelStore>,
    providers: Arc<dyn Providers>,
    feedback: Arc<dyn Feedback>,
    live: Arc<dyn LivePublisher>,
    clock: Arc<dyn Clock>,
    config: OutboxConfig,
    wake: Notify,
    /// Conversations a task is sending for; the scan leaves their rows alone.
    in_flight: Mutex<HashSet<ConversationId>>,
    /// One pacer per sender (a creator's bot or number).
    pacers: Mutex<HashMap<(CreatorId, ChannelKind), Pacer>>,
    permits: Arc<Semaphore>,
}

/// Starts the worker on the current runtime; it runs until the runtime ends or `stop` fires.
pub fn start(
    store: Arc<dyn ChannelStore>,
    providers: Arc<dyn Providers>,
    feedback: Arc<dyn Feedback>,
    live: Arc<dyn LivePublisher>,
    clock: Arc<dyn Clock>,
    config: OutboxConfig,
) -> (OutboxHandle, tokio::task::JoinHandle<()>) {
    let inner = Arc::new(Inner {
        store,
        providers,
        feedback,
        live,
        clock,
        permits: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
        config,
        wake: Notify::new(),
        in_flight: Mutex::new(HashSet::new()),
        pacers: Mutex::new(HashMap::new()),
    });
    let task = tokio::spawn(scan_loop(inner.clone()));
    (OutboxHandle { inner }, task)
}

async fn scan_loop(inner: Arc<Inner>) {
    if inner.config.release_claims_at_start {
        match inner.store.outbox_release_claims().await {
            Ok(0) => {}
            Ok(released) => tracing::info!(released, "released outbox claims of an earlier run"),
            Err(error) => tracing::warn!(%error, "cannot release outbox claims; they lapse with their lease"),
        }
    }
    loop {
        let rows = match inner.store.outbox_due(inner.clock.now(), inner.config.batch).await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%error, "cannot read the outbox; retrying");
                Vec::new()
            }
        };
        let full = rows.len() >= inner.config.batch as usize;
        let mut spawned = 0;
        for (conversation, rows) in by_conversation(rows) {
            if !inner.lock_in_flight().insert(conversation) {
                continue;
            }
            spawned += 1;
            let Ok(permit) = inner.permits.clone().acquire_owned().await else { return };
            let task = inner.clone();
            tokio::spawn(async move {
                if task.config.hold_before_send {
                    tracing::warn!(%conversation, "TWIN_FAULT_OUTBOX_HOLD_BEFORE_SEND: holding outbox entries unsent");
                    std::future::pending::<()>().await;
                }
                task.send_conversation(rows).await;
                task.lock_in_flight().remove(&conversation);
                drop(permit);
                // Later entries of this conversation may be due now.
                task.wake.notify_one();
            });
        }
        // A full batch may hide more due rows, unless it was all conversations already sending
        // (then scanning again at once would only spin).
        if full && spawned > 0 {
            continue;
        }
        tokio::select! {
            () = inner.wake.notified() => {}
            () = tokio::time::sleep(inner.config.scan_interval) => {}
        }
    }
}

/// Rows grouped by conversation, each group in seq order, groups in order of their first row.
fn by_conversation(rows: Vec<OutboxRow>) -> Vec<(ConversationId, Vec<OutboxRow>)> {
    let mut groups: Vec<(ConversationId, Vec<OutboxRow>)> = Vec::new();
    let mut index: HashMap<ConversationId, usize> = HashMap::new();
    for row in rows {
        let conversation = row.entry.conversation;
        match index.get(&conversation) {
            Some(&i) => groups[i].1.push(row),
            None => {
                index.insert(conversation, groups.len());
                groups.push((conversation, vec![row]));
            }
        }
    }
    for (_, rows) in &mut groups {
        rows.sort_by_key(|row| row.entry.seq);
    }
    groups
}

/// How one entry ended for now.
enum Outcome {
    /// Sent, or failed for good: the next entry may go.
    Settled,
    /// Must wait until then (rate limit, outage); later entries of the conversation wait too.
    Later(Timestamp),
}

impl Inner {
    fn lock_in_flight(&self) -> MutexGuard<'_, HashSet<ConversationId>> {
        self.in_flight.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_pacers(&self) -> MutexGuard<'_, HashMap<(CreatorId, ChannelKind), Pacer>> {
        self.pacers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn send_conversation(&self, rows: Vec<OutboxRow>) {
        let mut rows = rows.into_iter();
        while let Some(scanned) = rows.next() {
            // The scan may predate a task of this conversation that finished just before this one
            // started: read the row again, so nothing sent already is sent twice.
            let entry = &scanned.entry;
            let row = match self.store.outbox_entry(entry.creator, entry.conversation, entry.seq).await {
                Ok(Some(row)) if row.state == DeliveryState::Pending && row.next_attempt_at <= self.clock.now() => row,
                Ok(_) => continue,
                Err(error) => {
                    tracing::warn!(conversation = %entry.conversation, %error, "cannot read an outbox entry; later");
                    return;
                }
            };
            if let Outcome::Later(at) = self.send_entry(&row).await {
                // Order within a conversation holds: what follows waits for this one.
                for later in rows.by_ref() {
                    let update = OutboxUpdate::Retry {
                        attempts: later.attempts,
                        at: at.plus_millis(1),
                        error: "waiting for an earlier message".to_owned(),
                    };
                    let _ = self.record(&later.entry, &update).await;
                }
                return;
            }
        }
    }

    async fn send_entry(&self, row: &OutboxRow) -> Outcome {
        let entry = &row.entry;
        let kind = entry.address.kind;
        let client = match self.providers.client(entry.creator, kind).await {
            Ok(Some(client)) => client,
            Ok(None) => {
                let error = format!("the creator has no working {} channel", kind.as_str());
                return self.fail(entry, error).await;
            }
            Err(error) => return self.failed_send(row, error).await,
        };
        let parts = client.render(&entry.address.chat, &entry.body);
        let total = parts.len();
        let mut last_id = None;
        for (i, part) in parts.iter().enumerate().skip(row.parts_done as usize) {
            if let Some(at) = self.pace(entry, kind).await {
                let update = OutboxUpdate::Retry { attempts: row.attempts, at, error: "rate limit".to_owned() };
                let _ = self.record(entry, &update).await;
                return Outcome::Later(at);
            }
            match client.send(part).await {
                Ok(sent) if i + 1 < total => {
                    let update = OutboxUpdate::PartSent {
                        parts_done: (i + 1) as u32,
                        provider_message_id: sent.provider_message_id,
                    };
                    if !self.record(entry, &update).await {
                        // Sending on would outrun the record; the next scan resends this part.
                        return Outcome::Later(self.clock.now().plus_millis(1_000));
                    }
                }
                Ok(sent) => last_id = sent.provider_message_id,
                Err(error) => return self.failed_send(row, error).await,
            }
        }
        if !self.record(entry, &OutboxUpdate::Sent { provider_message_id: last_id }).await {
            // Unrecorded, the entry is still pending and goes out again after the next scan (the
            // at-least-once window); what follows it must not overtake it.
            return Outcome::Later(self.clock.now().plus_millis(1_000));
        }
        self.publish(entry, DeliveryState::Sent, None);
        metrics::counter!("twin_outbox_sent_total", "channel" => kind.as_str()).increment(1);
        Outcome::Settled
    }

    /// Waits for the sender's and the chat's rate limits; `Some(at)` when the wait is too long to
    /// sleep here.
    async fn pace(&self, entry: &OutboxEntry, kind: ChannelKind) -> Option<Timestamp> {
        loop {
            let now = self.clock.now();
            let ready = {
                let mut pacers = self.lock_pacers();
                let pacer = pacers.entry((entry.creator, kind)).or_insert_with(|| pacer_for(kind));
                pacer.try_send(&entry.address.chat, now)
            };
            match ready {
                Ok(()) => return None,
                Err(at) => {
                    let wait = Duration::from_millis(at.millis_since(now).max(1) as u64);
                    if wait > self.config.max_inline_wait {
                        return Some(at);
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn failed_send(&self, row: &OutboxRow, error: SendError) -> Outcome {
        let entry = &row.entry;
        let now = self.clock.now();
        let kind = entry.address.kind.as_str();
        match error {
            SendError::RateLimited { retry_after, whole_sender } => {
                metrics::counter!("twin_outbox_rate_limited_total", "channel" => kind).increment(1);
                let at = now.plus_millis(retry_after.as_millis() as i64);
                if let Some(pacer) = self.lock_pacers().get_mut(&(entry.creator, entry.address.kind)) {
                    pacer.hold(&entry.address.chat, whole_sender, at, now);
                }
                let update = OutboxUpdate::Retry { attempts: row.attempts, at, error: "rate limited".to_owned() };
                let _ = self.record(entry, &update).await;
                Outcome::Later(at)
            }
            SendError::Transient(error) => {
                let attempts = row.attempts + 1;
                if attempts >= MAX_ATTEMPTS {
                    return self.fail(entry, format!("gave up after {attempts} attempts: {error}")).await;
                }
                metrics::counter!("twin_outbox_retries_total", "channel" => kind).increment(1);
                let at = now.plus_millis(retry_delay_ms(attempts));
                tracing::info!(conversation = %entry.conversation, seq = entry.seq.0, attempts, %error, "send failed; retrying");
                let _ = self.record(entry, &OutboxUpdate::Retry { attempts, at, error }).await;
                Outcome::Later(at)
            }
            SendError::Unreachable(error) => {
                self.feedback.unreachable(entry, &entry.address);
                self.fail(entry, error).await
            }
            SendError::WindowClosed(error) | SendError::Rejected(error) => self.fail(entry, error).await,
        }
    }

    async fn fail(&self, entry: &OutboxEntry, error: String) -> Outcome {
        tracing::warn!(conversation = %entry.conversation, seq = entry.seq.0, %error, "message not delivered");
        metrics::counter!("twin_outbox_failed_total", "channel" => entry.address.kind.as_str()).increment(1);
        let _ = self.record(entry, &OutboxUpdate::Failed { error: error.clone() }).await;
        self.publish(entry, DeliveryState::Failed, Some(error));
        Outcome::Settled
    }

    /// Writes an outcome. If the store is down the row stays pending and is attempted again after
    /// the next scan: for a send the provider accepted, that is the documented repeat window.
    async fn record(&self, entry: &OutboxEntry, update: &OutboxUpdate) -> bool {
        let now = self.clock.now();
        match self.store.outbox_update(entry.creator, entry.conversation, entry.seq, update, now).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(conversation = %entry.conversation, seq = entry.seq.0, %error, "cannot record an outbox outcome");
                false
            }
        }
    }

    fn publish(&self, entry: &OutboxEntry, state: DeliveryState, error: Option<String>) {
        self.live.publish(LiveEvent {
            creator: entry.creator,
            conversation: entry.conversation,
            kind: LiveEventKind::Delivery { seq: entry.seq, channel: entry.address.kind, state, error },
        });
    }
}

fn pacer_for(kind: ChannelKind) -> Pacer {
    match kind {
        ChannelKind::WhatsApp => Pacer::new(Rate::WHATSAPP_NUMBER, Rate::WHATSAPP_PAIR),
        ChannelKind::Telegram | ChannelKind::Web => Pacer::new(Rate::TELEGRAM_BOT, Rate::TELEGRAM_CHAT),
    }
}
