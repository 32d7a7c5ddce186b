//! EngineHandle: the typed front door of the actor tree. The api crate routes events, reads
//! history and shuts down through it and never sees an actor message.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use dashmap::DashMap;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorId, ActorRef};
use tokio::sync::watch;
use twin_engine::conversation::Answer;
use twin_engine::ports::Recipient;
use twin_engine::ports::{
    Clock, Cluster, ConversationStore, CreatorStore, Delivery, ErrorCode, LivePublisher, Llm, NudgeStore, Outbound,
    Outbox, Placement,
};
use twin_engine::{
    ClientMsgId, ConversationId, CreatorId, Event, Message, ProgramId, Record, Seq, SessionId, TwinSnapshot, UserId,
};

use crate::conversation::{ConversationActor, ConversationArgs, ConversationMsg, ConversationView};
use crate::creator_twin::CreatorTwinMsg;
use crate::knowledge::KnowledgePorts;
use crate::metrics as m;
use crate::nudge_scheduler::{NudgeScheduler, NudgeSchedulerArgs, NudgeSchedulerMsg, SchedulerConfig, SchedulerStats};
use crate::registry::{Fence, Offer, Registry};
use crate::root::{RootActor, RootArgs, RootMsg};
use crate::twin_supervisor::TwinSupervisorMsg;
use crate::writer::{CommitError, WriterArgs, WriterMsg};

/// The ports the tree talks through. Adapters are chosen by the api crate.
#[derive(Clone)]
pub struct Ports {
    pub conversations: Arc<dyn ConversationStore>,
    pub creators: Arc<dyn CreatorStore>,
    /// The nudge table across tenants, for the scheduler.
    pub nudges: Arc<dyn NudgeStore>,
    pub llm: Arc<dyn Llm>,
    /// Embedder, vector index and ingestion status: retrieval for replies, and ingestion.
    pub knowledge: KnowledgePorts,
    pub delivery: Arc<dyn Delivery>,
    /// Sends to Telegram and WhatsApp users ([`twin_engine::ports::NoOutbox`] where there are none).
    pub outbox: Arc<dyn Outbox>,
    pub live: Arc<dyn LivePublisher>,
    pub clock: Arc<dyn Clock>,
    /// Several nodes over Redis (`None`: this process is the only node). See `crate::cluster`.
    pub cluster: Option<Arc<dyn Cluster>>,
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// A conversation with nothing in flight for this long is passivated at the next sweep.
    pub idle_ttl: Duration,
    /// Records waiting for the writer above which new messages are refused (`unavailable`).
    pub writer_max_pending_records: usize,
    /// Records per transaction at most.
    pub writer_max_batch_records: usize,
    /// A reply that takes longer fails.
    pub reply_timeout: Duration,
    /// A commit that takes longer counts as failed (the conversation reloads from the store).
    pub commit_timeout: Duration,
    /// The nudge scheduler; `None` runs without one (nudges are still stored, none fires).
    pub scheduler: Option<SchedulerConfig>,
    /// Cluster only: how long a new owner waits for the previous owner, still live, to hand a
    /// conversation over before it takes it anyway (the previous owner's writes are then fenced).
    pub handover_wait: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            idle_ttl: Duration::from_secs(300),
            writer_max_pending_records: 50_000,
            writer_max_batch_records: 2_000,
            reply_timeout: Duration::from_secs(120),
            commit_timeout: Duration::from_secs(30),
            scheduler: Some(SchedulerConfig::default()),
            handover_wait: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("no creator {0}")]
    UnknownCreator(CreatorId),
    /// The engine is shutting down or overloaded, or the store failed; the client retries later.
    #[error("the engine is unavailable: {0}")]
    Unavailable(String),
}

/// Conversation loads running against the store at once.
const MAX_CONCURRENT_LOADS: usize = 64;

/// Who starts a conversation actor, which decides who tells the senders if it cannot start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spawner {
    /// The routing function, whose caller learns of a failure from its result.
    Router,
    /// A passivation hand-over or a crash restart: every held event's sender is told.
    Successor,
}

/// A conversation as the outside names it: the tenant and the end user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConversationKey {
    pub creator: CreatorId,
    pub user: UserId,
}

impl ConversationKey {
    pub fn id(&self) -> ConversationId {
        ConversationId::of(self.creator, &self.user)
    }
}

/// The twin's current snapshot, swapped whole when the creator changes; conversations read it per
/// event (a read lock that is never held across an await).
pub(crate) struct TwinCell(RwLock<Arc<TwinSnapshot>>);

impl TwinCell {
    pub(crate) fn new(snapshot: TwinSnapshot) -> Self {
        Self(RwLock::new(Arc::new(snapshot)))
    }

    pub(crate) fn current(&self) -> Arc<TwinSnapshot> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(crate) fn replace(&self, snapshot: TwinSnapshot) {
        match self.0.write() {
            Ok(mut guard) => *guard = Arc::new(snapshot),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(snapshot),
        }
    }
}

#[derive(Clone)]
pub(crate) struct TwinEntry {
    pub(crate) actor: ActorRef<CreatorTwinMsg>,
    pub(crate) cell: Arc<TwinCell>,
}

/// Shared by the handle and every actor of the tree.
pub(crate) struct Engine {
    pub(crate) ports: Ports,
    pub(crate) config: EngineConfig,
    pub(crate) registry: Registry,
    /// Which conversation each live actor serves, to restart it after a crash.
    pub(crate) actors: DashMap<ActorId, ConversationKey>,
    twins: DashMap<CreatorId, TwinEntry>,
    /// Creators being erased: their events are refused and no twin or conversation of theirs
    /// starts until the erasure ends.
    erasing: dashmap::DashSet<CreatorId>,
    root: ActorRef<RootMsg>,
    supervisor: ActorRef<TwinSupervisorMsg>,
    writer: ActorRef<WriterMsg>,
    /// Set once, right after the engine is built (the scheduler routes through the engine).
    scheduler: std::sync::OnceLock<ActorRef<NudgeSchedulerMsg>>,
    closed: AtomicBool,
    /// Bounds the conversation loads in flight: a spawn storm (a restart, a broadcast) then queues
    /// cheaply instead of holding thousands of store queries, and their buffers, at once.
    pub(crate) load_permits: tokio::sync::Semaphore,
    /// Holds the reason once a top-level actor failed.
    failed: watch::Sender<Option<String>>,
    /// Cluster bookkeeping (unused on a single node).
    pub(crate) remote: crate::cluster::Remote,
}

#[derive(Clone)]
pub struct EngineHandle {
    pub(crate) engine: Arc<Engine>,
}

impl EngineHandle {
    pub async fn start(ports: Ports, config: EngineConfig) -> Result<Self, EngineError> {
        m::describe();
        let writer_args = WriterArgs {
            store: ports.conversations.clone(),
            max_pending_records: config.writer_max_pending_records,
            max_batch_records: config.writer_max_batch_records,
        };
        let (failed, _) = watch::channel(None);
        let root_args = RootArgs { writer: writer_args, creators: ports.creators.clone(), failed: failed.clone() };
        let (root, _) = Actor::spawn(None, RootActor, root_args).await.map_err(unavailable)?;
        let (writer, supervisor) = ractor::call!(root, RootMsg::Children).map_err(unavailable)?;
        let engine = Engine {
            ports,
            config,
            registry: Registry::default(),
            actors: DashMap::new(),
            twins: DashMap::new(),
            erasing: dashmap::DashSet::new(),
            root,
            supervisor,
            writer,
            scheduler: std::sync::OnceLock::new(),
            closed: AtomicBool::new(false),
            load_permits: tokio::sync::Semaphore::new(MAX_CONCURRENT_LOADS),
            failed,
            remote: crate::cluster::Remote::default(),
        };
        let engine = Arc::new(engine);
        if let Some(config) = engine.config.scheduler.clone() {
            let args = NudgeSchedulerArgs { engine: engine.clone(), config };
            // Unnamed: ractor's names are process-wide, and tests and the bench run several engines.
            let (scheduler, _) =
                Actor::spawn_linked(None, NudgeScheduler, args, engine.root.get_cell()).await.map_err(unavailable)?;
            let _ = engine.scheduler.set(scheduler);
        }
        Ok(Self { engine })
    }

    /// The twin of a creator, loading it on first use.
    pub async fn twin(&self, creator: CreatorId) -> Result<Arc<TwinSnapshot>, EngineError> {
        Ok(self.engine.twin(creator).await?.cell.current())
    }

    /// Re-reads a creator from the store (after an import or an API change); returns once the new
    /// snapshot is in place, so conversations and webhooks use it from their next event on.
    pub async fn reload_twin(&self, creator: CreatorId) -> Result<(), EngineError> {
        self.engine.twins.remove(&creator);
        let entry = self.engine.twin(creator).await?;
        ractor::call!(entry.actor, CreatorTwinMsg::Reload).map_err(unavailable)?;
        Ok(())
    }

    /// The one routing function: hands an event to the conversation's actor, starting it if needed.
    pub async fn route(&self, key: &ConversationKey, event: Event) -> Result<(), EngineError> {
        self.engine.route(key, ConversationMsg::Event(event)).await
    }

    /// Hands a human's command to the conversation and waits until its outcome is durable (a
    /// takeover, a human message, a draft decision; see `twin_engine::conversation::control`).
    pub async fn command(&self, key: &ConversationKey, event: Event) -> Result<Answer, EngineError> {
        let (port, answer) = tokio::sync::oneshot::channel();
        self.engine.route(key, ConversationMsg::Command(event, port.into())).await?;
        let wait = self.engine.config.commit_timeout + self.engine.config.commit_timeout;
        match tokio::time::timeout(wait, answer).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(EngineError::Unavailable("the change could not be saved; try again".to_owned())),
            Err(_) => Err(EngineError::Unavailable("the conversation did not answer in time; try again".to_owned())),
        }
    }

    /// Enrols the user in the latest version of a program (an explicit call rather than a trigger).
    pub async fn enrol(&self, key: &ConversationKey, program: ProgramId) -> Result<(), EngineError> {
        self.route(key, Event::Enrol { program }).await
    }

    /// Runs `erase` (the store's erasure of this user) serialised with the conversation's own
    /// events, so nothing the engine holds can write the erased data back:
    ///
    /// 1. the conversation is fenced in the registry: events routed from now on wait, and no actor
    ///    starts for it (an actor being started is waited for, then fenced);
    /// 2. its actor, if any, is stopped and awaited: the handler running now finishes (a commit it
    ///    started lands before the erasure), events still in its mailbox are dropped (they are of
    ///    the history being erased), its reply streams are aborted;
    /// 3. the group-commit writer is drained, so no record queued before the fence lands after it;
    /// 4. `erase` runs; then the fence is lifted and the events that waited start a fresh
    ///    conversation, loaded from the store as it is now: empty.
    ///
    /// A pending nudge of the conversation cannot fire afterwards: the scheduler claims a nudge in
    /// the store before routing it, and the erased row can no longer be claimed.
    pub async fn erase_user<T>(&self, key: &ConversationKey, erase: impl Future<Output = T>) -> Result<T, EngineError> {
        let engine = &self.engine;
        let id = key.id();
        let fenced = engine.fence(id).await?;
        if let Some(actor) = fenced {
            // Ends after the handler running now; `None`: a handler is bounded by the commit and
            // load timeouts, and the erasure must not start while it could still commit.
            let _ = actor.stop_and_wait(Some("erased".to_owned()), None).await;
        }
        engine.drain_writer().await;
        let outcome = erase.await;
        engine.unfence(key.clone());
        Ok(outcome)
    }

    /// Runs `erase` (the store's erasure of a whole creator) with the creator's twin and every one
    /// of its conversations stopped: events for the creator are refused meanwhile, no twin or
    /// conversation of it starts, and afterwards the twin is gone from memory (the next event finds
    /// no creator, unless it was imported again).
    pub async fn erase_creator<T>(&self, creator: CreatorId, erase: impl Future<Output = T>) -> Result<T, EngineError> {
        let engine = &self.engine;
        if !engine.erasing.insert(creator) {
            return Err(EngineError::Unavailable("this creator is being erased already".to_owned()));
        }
        let outcome = engine.erase_creator(creator, erase).await;
        engine.erasing.remove(&creator);
        outcome
    }

    /// Removes every vector of the creator from the vector index the engine retrieves from (the
    /// embedded index or Qdrant), of every embedder. Part of a creator erasure: the database
    /// transaction cannot reach a vector server, so this runs after it (and again on a retry).
    pub async fn remove_creator_vectors(&self, creator: CreatorId) -> Result<(), EngineError> {
        self.engine.ports.knowledge.index.remove_creator(creator).await.map_err(unavailable)
    }

    /// What the nudge scheduler holds and has claimed; `None` without a scheduler.
    pub async fn scheduler_stats(&self) -> Option<SchedulerStats> {
        let scheduler = self.engine.scheduler.get()?;
        ractor::call!(scheduler, NudgeSchedulerMsg::Stats).ok()
    }

    /// Durable messages after `after`, ascending, at most `limit` (for `resume`).
    pub async fn history(&self, key: &ConversationKey, after: Seq, limit: u32) -> Result<Vec<Message>, EngineError> {
        self.engine.ports.conversations.history(key.creator, key.id(), after, limit).await.map_err(unavailable)
    }

    /// The in-memory view of a conversation, if its actor is live.
    pub async fn inspect(&self, key: &ConversationKey) -> Option<ConversationView> {
        let actor = self.engine.registry.actor(key.id())?;
        ractor::call!(actor, ConversationMsg::Inspect).ok()
    }

    /// The conversations of `creator` that have an actor now (the ones in memory: active lately).
    pub fn active_conversations(&self, creator: CreatorId) -> Vec<ConversationKey> {
        self.engine.actors.iter().filter(|entry| entry.value().creator == creator).map(|e| e.value().clone()).collect()
    }

    /// Asks every live conversation whether it has been idle past the TTL (by the engine's clock).
    pub fn sweep_idle(&self) {
        for actor in self.engine.registry.live_actors() {
            let _ = actor.cast(ConversationMsg::IdleCheck);
        }
    }

    pub fn live_conversations(&self) -> usize {
        self.engine.registry.live_count()
    }

    /// Fault injection for tests and drills: makes a conversation's actor fail as a bug would.
    #[doc(hidden)]
    pub fn crash_conversation(&self, key: &ConversationKey, reason: &str) -> bool {
        self.engine
            .registry
            .actor(key.id())
            .is_some_and(|actor| actor.cast(ConversationMsg::Fail(reason.to_owned())).is_ok())
    }

    /// Stops taking events, lets every conversation finish what is in its mailbox, then flushes the
    /// writer. Replies still being generated are dropped; their messages are answered after the
    /// next start (the user message is committed, so [`Event::Recovered`] finds it).
    pub async fn shutdown(&self, deadline: Duration) {
        let engine = &self.engine;
        engine.closed.store(true, Ordering::SeqCst);
        // No new nudges are claimed from here on; the ones claimed and not yet settled are
        // claimable again after a restart (a single node drops its claims at start).
        let _ = engine.root.call(RootMsg::ShuttingDown, Some(deadline)).await;
        if let Some(scheduler) = engine.scheduler.get() {
            let _ = scheduler.stop_and_wait(None, Some(deadline)).await;
        }
        let twins: Vec<_> = engine.twins.iter().map(|t| t.actor.get_cell()).collect();
        let drains = twins.iter().map(|twin| twin.drain_children_and_wait(Some(deadline)));
        futures::future::join_all(drains).await;
        let _ = engine.writer.call(WriterMsg::Drain, Some(deadline)).await;
        let _ = engine.supervisor.stop_and_wait(None, Some(deadline)).await;
        let _ = engine.writer.stop_and_wait(None, Some(deadline)).await;
        let _ = engine.root.stop_and_wait(None, Some(deadline)).await;
    }

    /// Resolves with the reason if the engine fails beyond repair (a top-level actor died); the
    /// server then exits so its process supervisor restarts it.
    pub async fn failed(&self) -> String {
        let mut failed = self.engine.failed.subscribe();
        let reason = failed.wait_for(Option::is_some).await.map(|reason| reason.clone().unwrap_or_default());
        match reason {
            Ok(reason) => reason,
            // The sender lives as long as the engine; without it nothing can fail any more.
            Err(_) => std::future::pending().await,
        }
    }

    /// Fault injection for tests and drills: stops the group-commit writer as a crash would.
    #[doc(hidden)]
    pub fn crash_writer(&self) {
        self.engine.writer.stop(Some("injected".to_owned()));
    }
}

impl Engine {
    pub(crate) async fn twin(self: &Arc<Self>, creator: CreatorId) -> Result<TwinEntry, EngineError> {
        if self.erasing.contains(&creator) {
            return Err(EngineError::Unavailable("this creator is being erased".to_owned()));
        }
        if let Some(entry) = self.twins.get(&creator) {
            return Ok(entry.clone());
        }
        let engine = self.clone();
        let entry = ractor::call!(self.supervisor, |reply| TwinSupervisorMsg::Load { creator, engine, reply })
            .map_err(unavailable)??;
        self.twins.insert(creator, entry.clone());
        // Checked after the insert, as for conversations: an erasure that started meanwhile either
        // finds this twin in `twins` or is seen here.
        if self.erasing.contains(&creator) {
            self.twins.remove(&creator);
            entry.actor.stop(Some("erased".to_owned()));
            return Err(EngineError::Unavailable("this creator is being erased".to_owned()));
        }
        Ok(entry)
    }

    pub(crate) async fn route(
        self: &Arc<Self>,
        key: &ConversationKey,
        message: ConversationMsg,
    ) -> Result<(), EngineError> {
        self.route_hops(key, message, 0).await
    }

    /// [`Engine::route`] of an event that was forwarded `hops` times already. In a cluster, an
    /// event whose conversation belongs to another node goes there, unless an actor of it still
    /// runs here: the old owner finishes what it holds and hands over (see `crate::cluster`).
    pub(crate) async fn route_hops(
        self: &Arc<Self>,
        key: &ConversationKey,
        message: ConversationMsg,
        hops: u8,
    ) -> Result<(), EngineError> {
        if self.is_closed() {
            return Err(EngineError::Unavailable("the server is shutting down".to_owned()));
        }
        if self.erasing.contains(&key.creator) {
            return Err(EngineError::Unavailable("this creator is being erased".to_owned()));
        }
        // A single node skips this: every conversation is here.
        if self.ports.cluster.is_some() && !self.registry.has_slot(key.id()) {
            match self.placement(key.id()) {
                Placement::Here => {}
                Placement::There(node) => {
                    return self.forward_message(&node, key, message, hops).await.map_err(|(error, _)| error);
                }
                Placement::Nowhere => return Err(crate::cluster::not_a_member()),
            }
        }
        match self.registry.offer(key.id(), message) {
            Offer::Delivered | Offer::Held => Ok(()),
            Offer::Refused => {
                Err(EngineError::Unavailable("too many events are waiting for this conversation".to_owned()))
            }
            Offer::MustSpawn => self.spawn_conversation(key.clone(), Spawner::Router).await,
        }
    }

    /// Starts the actor for a conversation whose slot is held, then hands it the held events. If
    /// no actor can be started, the held events are refused (their senders are told).
    pub(crate) async fn spawn_conversation(
        self: &Arc<Self>,
        key: ConversationKey,
        spawner: Spawner,
    ) -> Result<(), EngineError> {
        /// A fresh actor that dies before taking its events is replaced this many times.
        const ATTEMPTS: usize = 3;
        let id = key.id();
        if self.placement(id) != Placement::Here {
            return self.forward_held(key, spawner).await;
        }
        let mut error = EngineError::Unavailable("the conversation failed to start".to_owned());
        for _ in 0..ATTEMPTS {
            if self.is_closed() {
                error = EngineError::Unavailable("the server is shutting down".to_owned());
                break;
            }
            match self.start_actor(&key).await {
                Ok(actor) => {
                    metrics::counter!(m::CONVERSATION_SPAWNS).increment(1);
                    metrics::gauge!(m::CONVERSATIONS_ACTIVE).increment(1.0);
                    self.actors.insert(actor.get_id(), key.clone());
                    // Checked after the actor is in `actors`: a creator erasure marks the creator
                    // before it lists the actors to stop, so it either lists this one or this
                    // check sees the mark.
                    if self.erasing.contains(&key.creator) {
                        actor.stop(Some("erased".to_owned()));
                        error = EngineError::Unavailable("this creator is being erased".to_owned());
                        break;
                    }
                    if self.registry.go_live(id, actor) {
                        return Ok(());
                    }
                }
                // The creator is unknown or the store is down: retrying now would not help.
                Err(e) => {
                    error = e;
                    break;
                }
            }
        }
        tracing::warn!(conversation = %id, %error, "could not start a conversation");
        let mut held = self.registry.abandon(id).into_iter();
        if spawner == Spawner::Router {
            // The first held event is the router's caller's own; the returned error tells it.
            held.next();
        }
        for message in held {
            self.refuse(id, message, &error);
        }
        Err(error)
    }

    async fn start_actor(self: &Arc<Self>, key: &ConversationKey) -> Result<ActorRef<ConversationMsg>, EngineError> {
        let twin = self.twin(key.creator).await?;
        let args = ConversationArgs { key: key.clone(), twin: twin.cell.clone(), engine: self.clone() };
        let (actor, _) =
            Actor::spawn_linked(None, ConversationActor, args, twin.actor.get_cell()).await.map_err(unavailable)?;
        Ok(actor)
    }

    /// Fences a conversation for an erasure (waiting while an actor of it is being started);
    /// returns the actor to stop, if one was running.
    async fn fence(&self, id: ConversationId) -> Result<Option<ActorRef<ConversationMsg>>, EngineError> {
        /// How often a conversation whose actor is starting is looked at again.
        const RETRY: Duration = Duration::from_millis(10);
        let waited_at_most = self.config.commit_timeout;
        let started = tokio::time::Instant::now();
        loop {
            if self.is_closed() {
                return Err(EngineError::Unavailable("the server is shutting down".to_owned()));
            }
            match self.registry.fence(id) {
                Fence::Idle => return Ok(None),
                Fence::Actor(actor) => return Ok(Some(actor)),
                Fence::Busy if started.elapsed() < waited_at_most => tokio::time::sleep(RETRY).await,
                Fence::Busy => {
                    return Err(EngineError::Unavailable("the conversation is busy; try again".to_owned()));
                }
            }
        }
    }

    /// Lifts an erasure's fence; events that waited start a fresh actor.
    fn unfence(self: &Arc<Self>, key: ConversationKey) {
        if self.registry.unfence(key.id()) {
            let engine = self.clone();
            tokio::spawn(async move {
                let _ = engine.spawn_conversation(key, Spawner::Successor).await;
            });
        }
    }

    /// Waits until every record handed to the writer so far is committed (or failed).
    async fn drain_writer(&self) {
        let _ = self.writer.call(WriterMsg::Drain, Some(self.config.commit_timeout)).await;
    }

    /// The body of [`EngineHandle::erase_creator`], with the creator marked as being erased.
    async fn erase_creator<T>(
        self: &Arc<Self>,
        creator: CreatorId,
        erase: impl Future<Output = T>,
    ) -> Result<T, EngineError> {
        // Every conversation actor of the creator: each is fenced, so its exit starts no successor,
        // and stopped. Actors started from now on stop themselves (see spawn_conversation).
        let keys: Vec<ConversationKey> =
            self.actors.iter().filter(|entry| entry.value().creator == creator).map(|e| e.value().clone()).collect();
        let mut fenced = Vec::with_capacity(keys.len());
        for key in keys {
            match self.fence(key.id()).await {
                Ok(actor) => {
                    if let Some(actor) = actor {
                        let _ = actor.stop_and_wait(Some("erased".to_owned()), None).await;
                    }
                    fenced.push(key);
                }
                Err(error) => {
                    for key in fenced {
                        self.unfence(key);
                    }
                    return Err(error);
                }
            }
        }
        if let Some((_, twin)) = self.twins.remove(&creator) {
            // Its knowledge ingestion is aborted with it.
            let _ = twin.actor.stop_children_and_wait(Some("erased".to_owned()), None).await;
            let _ = twin.actor.stop_and_wait(Some("erased".to_owned()), None).await;
        }
        self.drain_writer().await;
        let outcome = erase.await;
        // Events that waited meet a creator that no longer exists: their senders are told.
        for key in fenced {
            self.unfence(key);
        }
        Ok(outcome)
    }

    /// Tells the sender of an event that could not be handled, when it can be told.
    pub(crate) fn refuse(&self, id: ConversationId, message: ConversationMsg, error: &EngineError) {
        if let ConversationMsg::Event(Event::UserMessage { client_id, session, .. }) = message {
            self.refuse_sender(id, client_id, session, error);
        }
    }

    /// Tells the sender of the user message `client_id` (on `session`, if known) it was refused.
    pub(crate) fn refuse_sender(
        &self,
        id: ConversationId,
        client_id: ClientMsgId,
        session: Option<SessionId>,
        error: &EngineError,
    ) {
        let to = session.map_or(Recipient::User, Recipient::Session);
        let out =
            Outbound::Error { code: ErrorCode::Unavailable, message: error.to_string(), client_id: Some(client_id) };
        self.deliver(id, to, out);
    }

    /// Makes records durable through the group-commit writer.
    pub(crate) async fn commit(&self, records: Vec<Record>) -> Result<(), CommitError> {
        let call = self.writer.call(|reply| WriterMsg::Commit { records, reply }, Some(self.config.commit_timeout));
        match call.await {
            Ok(CallResult::Success(outcome)) => outcome,
            Ok(CallResult::Timeout) => Err(CommitError::Failed("the commit timed out".to_owned())),
            Ok(CallResult::SenderError) | Err(_) => Err(CommitError::Failed("the writer is gone".to_owned())),
        }
    }

    /// Tells the scheduler about nudge rows that were just committed.
    pub(crate) fn scheduled(&self, rows: Vec<twin_engine::ports::ScheduledNudge>) {
        if let Some(scheduler) = self.scheduler.get() {
            let _ = scheduler.cast(NudgeSchedulerMsg::Scheduled(rows));
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

fn unavailable(error: impl std::fmt::Display) -> EngineError {
    EngineError::Unavailable(error.to_string())
}
