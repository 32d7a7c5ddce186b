//! The webhook inbox: verified deliveries are stored with their dedup keys in one transaction
//! before the webhook answers 200, then fed to their conversations. A user message marks its inbox
//! row processed in the same commit as the message (`Arrival`), so a crash anywhere between the
//! 200 and that commit replays the row at the next start, and a replay of a row whose turn exists
//! only marks it. Other items (a block, a status report) are marked right after they are handled.
//!
//! Items are fed by a few shard tasks, each item to the shard of its sender, so one person's
//! messages reach their conversation in the order they were stored while different people's are
//! fed in parallel.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::mpsc;

use twin_actors::{ConversationKey, EngineError, EngineHandle};
use twin_channels::{Content, InboundEvent, InboundItem, Sender};
use twin_engine::channel::{Arrival, ChannelAddress, ChannelKind, DeliveryState};
use twin_engine::ports::{ChannelStore, Clock, InboxRow, LiveEvent, LiveEventKind, LivePublisher, StoreError};
use twin_engine::{ClientMsgId, ConversationId, CreatorId, Event, UserId};

use super::identity::{self, LinkCommand};
use super::providers::ChannelRegistry;

/// Rows replayed per batch at start and by the sweep.
const REPLAY_BATCH: u32 = 500;
/// A row still pending this long after it arrived is fed again by the sweep (its first feeding
/// failed, or the server was busy); a duplicate feed only marks it.
const SWEEP_AFTER: Duration = Duration::from_secs(30);
/// Feeding tasks; each feeds its share of senders in order.
const SHARDS: usize = 16;

#[derive(Clone)]
pub struct Inbox {
    inner: Arc<InboxInner>,
}

struct InboxInner {
    store: Arc<dyn ChannelStore>,
    engine: EngineHandle,
    registry: Arc<ChannelRegistry>,
    live: Arc<dyn LivePublisher>,
    clock: Arc<dyn Clock>,
    /// Crash drill hook (`TWIN_FAULT_INBOX_HOLD_AFTER_STORE`): store deliveries and never feed
    /// them, so a test can kill the server between the 200 and the turn. Never set in production.
    hold: bool,
    /// The shard tasks' queues. Unbounded: every row in them is stored already, so a backlog costs
    /// memory only for rows the webhook accepted (bounded by the providers' send rate).
    shards: Vec<mpsc::UnboundedSender<InboxRow>>,
    /// Rows queued or being fed; the sweep leaves them alone.
    queued: Mutex<HashSet<i64>>,
}

impl Inbox {
    pub fn new(
        store: Arc<dyn ChannelStore>,
        engine: EngineHandle,
        registry: Arc<ChannelRegistry>,
        live: Arc<dyn LivePublisher>,
        clock: Arc<dyn Clock>,
        hold: bool,
    ) -> Self {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..SHARDS).map(|_| mpsc::unbounded_channel()).unzip();
        let inner = Arc::new(InboxInner {
            store,
            engine,
            registry,
            live,
            clock,
            hold,
            shards: senders,
            queued: Mutex::new(HashSet::new()),
        });
        for receiver in receivers {
            tokio::spawn(feed_shard(Arc::downgrade(&inner), receiver));
        }
        Self { inner }
    }

    /// Queues a stored row on its sender's shard, unless it is queued already.
    fn enqueue(&self, row: InboxRow, item: Option<&InboundItem>) {
        if !self.inner.lock_queued().insert(row.id) {
            return;
        }
        let key = match item {
            Some(item) => shard_key(item),
            None => serde_json::from_str::<InboundItem>(&row.payload).map(|item| shard_key(&item)).unwrap_or_default(),
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (row.creator, key).hash(&mut hasher);
        let shard = (hasher.finish() % SHARDS as u64) as usize;
        if let Err(unsent) = self.inner.shards[shard].send(row) {
            // Only when the server is shutting down: the row stays pending for the next start.
            self.inner.lock_queued().remove(&unsent.0.id);
        }
    }

    /// Stores the items of one delivery (one transaction) and starts feeding the new ones. When
    /// this returns Ok the webhook may answer 200: nothing of it can be lost any more.
    pub async fn accept(
        &self,
        creator: CreatorId,
        channel: ChannelKind,
        items: &[InboundItem],
    ) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let rows: Vec<(String, String)> = items
            .iter()
            .map(|item| {
                // Serialising our own enum cannot fail; an empty payload would be dropped on replay.
                (item.dedup_key.clone(), serde_json::to_string(item).unwrap_or_default())
            })
            .collect();
        let fresh = self.inner.store.inbox_put(creator, channel, &rows, self.inner.clock.now()).await?;
        metrics::counter!("twin_webhook_items_total", "channel" => channel.as_str()).increment(items.len() as u64);
        metrics::counter!("twin_webhook_duplicates_total", "channel" => channel.as_str())
            .increment((items.len() - fresh.len()) as u64);
        if self.inner.hold {
            tracing::warn!(items = fresh.len(), "TWIN_FAULT_INBOX_HOLD_AFTER_STORE: holding webhook deliveries unfed");
            return Ok(());
        }
        for row in fresh {
            let item = items.iter().find(|item| item.dedup_key == row.dedup_key);
            self.enqueue(row, item);
        }
        Ok(())
    }

    /// Feeds every row still pending (at start: what a crash left behind), then keeps sweeping
    /// for rows whose feeding failed.
    pub async fn replay_forever(self) {
        if self.inner.hold {
            return;
        }
        let mut older_than = Duration::ZERO;
        loop {
            let replayed = self.replay(older_than).await;
            if replayed > 0 {
                tracing::info!(rows = replayed, "fed webhook deliveries again from the inbox");
            }
            older_than = SWEEP_AFTER;
            tokio::time::sleep(SWEEP_AFTER).await;
        }
    }

    /// Feeds pending rows that arrived more than `older_than` ago (all of them at start). Returns
    /// how many were fed.
    pub async fn replay(&self, older_than: Duration) -> usize {
        let mut fed = 0;
        // Rows fed by this call: one that stays pending (its feeding failed) is not fed again here.
        let mut seen = HashSet::new();
        loop {
            let now = self.inner.clock.now();
            let cutoff = now.plus_millis(-(older_than.as_millis() as i64));
            let rows = match self.inner.store.inbox_pending(cutoff, now, REPLAY_BATCH).await {
                Ok(rows) => rows,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the webhook inbox");
                    return fed;
                }
            };
            let due: Vec<InboxRow> =
                rows.iter().filter(|row| row.received_at <= cutoff && seen.insert(row.id)).cloned().collect();
            // A full batch of due rows may hide more behind it: wait for these to be fed first.
            let more = rows.len() == REPLAY_BATCH as usize && !due.is_empty();
            let ids: Vec<i64> = due.iter().map(|row| row.id).collect();
            for row in due {
                self.enqueue(row, None);
                fed += 1;
            }
            if !more {
                return fed;
            }
            while ids.iter().any(|id| self.inner.lock_queued().contains(id)) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Handles one stored item. Errors are logged; the row then stays pending for the sweep.
    async fn feed(&self, row: InboxRow) {
        self.feed_row(&row).await;
        self.inner.lock_queued().remove(&row.id);
    }

    async fn feed_row(&self, row: &InboxRow) {
        let item: InboundItem = match serde_json::from_str(&row.payload) {
            Ok(item) => item,
            Err(error) => {
                tracing::error!(id = row.id, %error, "an inbox row cannot be read; dropped");
                self.done(row).await;
                return;
            }
        };
        let outcome = self.handle(row, item).await;
        match outcome {
            Ok(Marked::InCommit) => {}
            Ok(Marked::Now) => self.done(row).await,
            Err(FeedError::Engine(EngineError::UnknownCreator(creator))) => {
                tracing::warn!(id = row.id, %creator, "a webhook item for a creator that no longer exists; dropped");
                self.done(row).await;
            }
            Err(FeedError::Item(error)) => {
                tracing::error!(id = row.id, creator = %row.creator, %error, "a webhook item cannot be fed; dropped");
                self.done(row).await;
            }
            Err(error) => {
                tracing::warn!(id = row.id, creator = %row.creator, %error, "could not feed a webhook item; it will be retried")
            }
        }
    }

    async fn done(&self, row: &InboxRow) {
        if let Err(error) = self.inner.store.inbox_done(row.creator, row.id, self.inner.clock.now()).await {
            tracing::warn!(id = row.id, %error, "cannot mark an inbox row processed; it will be fed again");
        }
    }

    async fn handle(&self, row: &InboxRow, item: InboundItem) -> Result<Marked, FeedError> {
        let creator = row.creator;
        let channel = row.channel;
        match item.event {
            InboundEvent::Message { from, message_id, text, content } => {
                self.acknowledge(creator, channel, &message_id, &content).await;
                let address = ChannelAddress::new(channel, from.chat.clone());
                // Only a private chat can be linked to a person (a group is many people).
                let private = from.chat == from.user;
                if let Some(command) = identity::link_command(&text, &content).filter(|_| private) {
                    return self.link(creator, channel, &from, address, command).await;
                }
                let user = self.user_of(creator, channel, &from).await?;
                let key = ConversationKey { creator, user };
                // `/start PAYLOAD` deep links are the program triggers' business (`commands`).
                let client_id = ClientMsgId::parse(&item.dedup_key).map_err(|e| FeedError::Item(e.to_string()))?;
                let arrival = Arrival { address, inbox: Some(row.id) };
                let event = Event::UserMessage { client_id, text, session: None, channel: Some(arrival) };
                self.inner.engine.route(&key, event).await?;
                Ok(Marked::InCommit)
            }
            InboundEvent::Edited { from, message_id, text } => {
                let user = self.user_of(creator, channel, &from).await?;
                let kind = LiveEventKind::MessageEdited { channel, provider_message_id: message_id, text };
                self.publish(creator, ConversationId::of(creator, &user), kind);
                Ok(Marked::Now)
            }
            InboundEvent::Reachability { from, reachable } => {
                let user = self.user_of(creator, channel, &from).await?;
                let address = ChannelAddress::new(channel, from.chat);
                let key = ConversationKey { creator, user };
                self.inner.engine.route(&key, Event::Reachability { address, reachable }).await?;
                Ok(Marked::Now)
            }
            InboundEvent::Status { recipient, provider_message_id, state, error } => {
                let now = self.inner.clock.now();
                let change = self
                    .inner
                    .store
                    .outbox_status(creator, channel, &provider_message_id, state, error.as_deref(), now)
                    .await?;
                if let Some(change) = change {
                    let undeliverable = change.state == DeliveryState::Failed
                        && error.as_deref().is_some_and(identity::means_unreachable);
                    let kind = LiveEventKind::Delivery { seq: change.seq, channel, state: change.state, error };
                    self.publish(change.creator, change.conversation, kind);
                    if undeliverable {
                        // WhatsApp reports most undeliverable sends later, as a failed status.
                        let from = Sender { user: recipient.clone(), chat: recipient, name: None };
                        let user = self.user_of(creator, channel, &from).await?;
                        let address = ChannelAddress::new(channel, from.chat);
                        let event = Event::Reachability { address, reachable: false };
                        self.inner.engine.route(&ConversationKey { creator, user }, event).await?;
                    }
                }
                Ok(Marked::Now)
            }
        }
    }

    /// Links the sender's channel identity to the user a one-time code names, and greets them there.
    async fn link(
        &self,
        creator: CreatorId,
        channel: ChannelKind,
        from: &Sender,
        address: ChannelAddress,
        command: LinkCommand,
    ) -> Result<Marked, FeedError> {
        let store = &self.inner.store;
        let now = self.inner.clock.now();
        let linked = store.take_link_code(creator, &command.code, now).await?;
        let (user, event) = match linked {
            Some(user) => {
                if let Err(error) = store.bind_identity(creator, channel, &from.user, &user, now).await {
                    // Give the code back, so the retry of this item can still use it.
                    let expires_at = now.plus_millis(identity::CODE_TTL_MS);
                    let _ = store.put_link_code(creator, &command.code, &user, expires_at).await;
                    return Err(error.into());
                }
                tracing::info!(%creator, channel = channel.as_str(), "a channel identity was linked to a user");
                (user, Event::Linked { address })
            }
            None => {
                // An unknown or expired code: the sender's own conversation is told so.
                let user = self.user_of(creator, channel, from).await?;
                (user, Event::LinkRefused { address })
            }
        };
        self.inner.engine.route(&ConversationKey { creator, user }, event).await?;
        Ok(Marked::Now)
    }

    /// The end user behind a channel identity: the one it was linked to, else one of its own.
    async fn user_of(&self, creator: CreatorId, channel: ChannelKind, from: &Sender) -> Result<UserId, FeedError> {
        if let Some(user) = self.inner.store.identity(creator, channel, &from.user).await? {
            return Ok(user);
        }
        identity::default_user(channel, &from.user).map_err(FeedError::Item)
    }

    /// Provider courtesies that do not change the conversation: Telegram wants every button press
    /// answered (or the button spins), WhatsApp shows blue ticks once a message is marked read.
    async fn acknowledge(&self, creator: CreatorId, channel: ChannelKind, message_id: &str, content: &Content) {
        let Ok(channels) = self.inner.registry.channels(creator).await else { return };
        match (channel, content) {
            (ChannelKind::Telegram, Content::Choice { callback_id: Some(id) }) => {
                if let Some(Ok(client)) = channels.telegram.clone() {
                    let id = id.clone();
                    tokio::spawn(async move {
                        if let Err(error) = client.answer_callback_query(&id).await {
                            tracing::debug!(%error, "cannot answer a callback query");
                        }
                    });
                }
            }
            (ChannelKind::WhatsApp, _) => {
                if let Some(Ok(client)) = channels.whatsapp.clone() {
                    let id = message_id.to_owned();
                    tokio::spawn(async move {
                        if let Err(error) = client.mark_read(&id).await {
                            tracing::debug!(%error, "cannot mark a WhatsApp message read");
                        }
                    });
                }
            }
            _ => {}
        }
    }

    fn publish(&self, creator: CreatorId, conversation: ConversationId, kind: LiveEventKind) {
        self.inner.live.publish(LiveEvent { creator, conversation, kind });
    }
}

impl InboxInner {
    fn lock_queued(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.queued.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One shard: feeds its rows in order until the inbox is gone.
async fn feed_shard(inbox: Weak<InboxInner>, mut rows: mpsc::UnboundedReceiver<InboxRow>) {
    while let Some(row) = rows.recv().await {
        let Some(inner) = inbox.upgrade() else { return };
        Inbox { inner }.feed(row).await;
    }
}

/// Items of one sender share a shard (so they are fed in order); a status report is keyed by the
/// message it is about.
fn shard_key(item: &InboundItem) -> String {
    match &item.event {
        InboundEvent::Message { from, .. }
        | InboundEvent::Edited { from, .. }
        | InboundEvent::Reachability { from, .. } => from.user.clone(),
        InboundEvent::Status { provider_message_id, .. } => provider_message_id.clone(),
    }
}

/// Who marks an inbox row processed.
enum Marked {
    /// The conversation does, in the commit of the message.
    InCommit,
    /// The caller does, now.
    Now,
}

#[derive(Debug, thiserror::Error)]
enum FeedError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the item cannot be fed: {0}")]
    Item(String),
}
