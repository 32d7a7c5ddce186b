//! In-memory ports for driving the real actor tree: a store with fault injection, a scripted
//! model, a delivery port that records what each client saw and whether it was durable then.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use twin_actors::{ConversationKey, EngineConfig, EngineHandle, LiveHub, Ports};
use twin_engine::knowledge::KnowledgeDocument;
use twin_engine::persona::Persona;
use twin_engine::ports::*;
use twin_engine::prompt::ReplyRequest;
use twin_engine::twin::CreatorProfile;
use twin_engine::*;

#[derive(Default)]
pub struct MemoryStore {
    conversations: Mutex<HashMap<ConversationId, ConversationHeader>>,
    messages: Mutex<HashMap<ConversationId, BTreeMap<u64, Message>>>,
    creators: Mutex<HashMap<CreatorId, StoredCreator>>,
    /// The nudge table: the row, its status and its claim.
    nudges: Mutex<HashMap<NudgeId, NudgeRow>>,
    /// Fail this many next commits.
    pub fail_commits: AtomicUsize,
    pub commits: AtomicUsize,
    /// What the store tells the writer about overlapping commits (0 means the default, 1).
    pub concurrent: AtomicUsize,
    /// Ingestion status by (creator, document).
    ingestion: Mutex<BTreeMap<(CreatorId, String), DocumentStatus>>,
    /// The embedded index's vectors by (creator, embedder, document): content hash and vectors.
    vectors: Mutex<BTreeMap<(CreatorId, String, String), StoredVectors>>,
    /// Scale-out ownership: epoch and holder by conversation, and the last epoch handed out.
    owners: Mutex<Owners>,
}

/// Epoch and holder by conversation, and the last epoch handed out.
type Owners = (HashMap<ConversationId, (u64, Option<String>)>, u64);

/// One document's vectors of one embedder: its content hash and (ordinal, vector) pairs.
type StoredVectors = (String, Vec<(u32, Vec<f32>)>);

#[derive(Debug, Clone)]
pub struct NudgeRow {
    pub nudge: ScheduledNudge,
    pub status: &'static str,
    pub claimed_until: Option<Timestamp>,
}

impl MemoryStore {
    pub fn nudge_rows(&self) -> Vec<NudgeRow> {
        let mut rows: Vec<_> = self.nudges.lock().unwrap().values().cloned().collect();
        rows.sort_by_key(|r| r.nudge.due_at);
        rows
    }

    pub fn header(&self, id: ConversationId) -> Option<ConversationHeader> {
        self.conversations.lock().unwrap().get(&id).cloned()
    }

    pub fn committed(&self, id: ConversationId, seq: Seq) -> bool {
        self.messages.lock().unwrap().get(&id).is_some_and(|m| m.contains_key(&seq.0))
    }

    pub fn messages(&self, id: ConversationId) -> Vec<Message> {
        self.messages.lock().unwrap().get(&id).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    /// What a GDPR erasure of the conversation does to the store: its rows are gone.
    pub fn erase(&self, id: ConversationId) {
        self.conversations.lock().unwrap().remove(&id);
        self.messages.lock().unwrap().remove(&id);
        self.nudges.lock().unwrap().retain(|_, row| row.nudge.conversation != id);
    }

    /// What a GDPR erasure of a whole creator does to the store.
    pub fn erase_creator(&self, creator: CreatorId) {
        self.creators.lock().unwrap().remove(&creator);
        let ids: Vec<ConversationId> =
            self.conversations.lock().unwrap().values().filter(|h| h.creator == creator).map(|h| h.id).collect();
        for id in ids {
            self.erase(id);
        }
    }
}

#[async_trait::async_trait]
impl ConversationStore for MemoryStore {
    async fn load(
        &self,
        creator: CreatorId,
        id: ConversationId,
        limits: LoadLimits,
    ) -> Result<Option<StoredConversation>, StoreError> {
        let Some(header) = self.conversations.lock().unwrap().get(&id).cloned() else { return Ok(None) };
        assert_eq!(header.creator, creator);
        let all = self.messages(id);
        let last_seq = all.last().map_or(Seq::ZERO, |m| m.seq);
        let recent = all[all.len().saturating_sub(limits.history)..].to_vec();
        let users: Vec<_> = all.iter().filter_map(|m| m.client_id.clone().map(|c| (c, m.seq))).collect();
        let client_ids = users[users.len().saturating_sub(limits.client_ids)..].to_vec();
        Ok(Some(StoredConversation { header, last_seq, recent, client_ids }))
    }

    async fn commit(&self, records: &[Record]) -> Result<(), StoreError> {
        if self.fail_commits.load(Ordering::SeqCst) > 0 {
            self.fail_commits.fetch_sub(1, Ordering::SeqCst);
            return Err(StoreError::unavailable(std::io::Error::other("injected failure")));
        }
        let mut conversations = self.conversations.lock().unwrap();
        let mut messages = self.messages.lock().unwrap();
        let mut nudges = self.nudges.lock().unwrap();
        // Validate everything first: all or nothing. Fences before anything else.
        let owners = self.owners.lock().unwrap();
        for record in records {
            if let Record::Fence { conversation, epoch, .. } = record
                && owners.0.get(conversation).is_none_or(|(stored, _)| stored != epoch)
            {
                return Err(StoreError::Fenced { conversation: *conversation, epoch: *epoch });
            }
        }
        drop(owners);
        for record in records {
            if let Record::Conversation(h) = record {
                let stored = conversations.get(&h.id).map_or(0, |c| c.version);
                if stored + 1 != h.version {
                    return Err(StoreError::Conflict { conversation: h.id, expected: h.version - 1 });
                }
            }
            if let Record::Message(m) = record {
                let existing = messages.get(&m.conversation);
                if existing.is_some_and(|e| {
                    e.contains_key(&m.seq.0) || e.values().any(|x| x.client_id.is_some() && x.client_id == m.client_id)
                }) {
                    return Err(StoreError::Corrupt(format!("duplicate seq or client id in {}", m.conversation)));
                }
            }
        }
        for record in records {
            match record {
                Record::Conversation(h) => {
                    conversations.insert(h.id, h.clone());
                }
                Record::Message(m) => {
                    messages.entry(m.conversation).or_default().insert(m.seq.0, m.clone());
                }
                Record::NudgeScheduled(n) => {
                    nudges.entry(n.id).or_insert(NudgeRow { nudge: n.clone(), status: "pending", claimed_until: None });
                }
                Record::NudgeSettled { id, outcome, .. } => {
                    if let Some(row) = nudges.get_mut(id).filter(|r| r.status == "pending") {
                        row.status = outcome.as_str();
                        row.claimed_until = None;
                    }
                }
                // The actor tests have no provider channels; the store tests cover the outbox and
                // the step history.
                Record::Outbox(_) | Record::InboxDone { .. } | Record::StepEntered { .. } | Record::Fence { .. } => {}
            }
        }
        self.commits.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn history(
        &self,
        _creator: CreatorId,
        id: ConversationId,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        Ok(self.messages(id).into_iter().filter(|m| m.seq > after).take(limit as usize).collect())
    }

    async fn claim_owner(
        &self,
        _creator: CreatorId,
        conversation: ConversationId,
        node: &str,
        live: &[String],
        force: bool,
    ) -> Result<Option<u64>, StoreError> {
        let mut owners = self.owners.lock().unwrap();
        let (rows, last) = &mut *owners;
        let blocked = rows
            .get(&conversation)
            .and_then(|(_, holder)| holder.as_deref())
            .is_some_and(|holder| holder != node && live.iter().any(|l| l == holder));
        if blocked && !force {
            return Ok(None);
        }
        *last += 1;
        rows.insert(conversation, (*last, Some(node.to_owned())));
        Ok(Some(*last))
    }

    async fn release_owner(
        &self,
        _creator: CreatorId,
        conversation: ConversationId,
        epoch: u64,
    ) -> Result<(), StoreError> {
        if let Some((stored, holder)) = self.owners.lock().unwrap().0.get_mut(&conversation)
            && *stored == epoch
        {
            *holder = None;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl CreatorStore for MemoryStore {
    async fn put_creator(
        &self,
        profile: &CreatorProfile,
        documents: &[KnowledgeDocument],
        programs: &[ProgramSource],
    ) -> Result<PutOutcome, StoreError> {
        let programs =
            programs.iter().map(|p| StoredProgram { id: p.id.clone(), version: 1, source: p.source.clone() }).collect();
        let stored = StoredCreator { profile: profile.clone(), documents: documents.to_vec(), programs, version: 1 };
        self.creators.lock().unwrap().insert(profile.slug.creator_id(), stored);
        Ok(PutOutcome::Created)
    }

    async fn creator(&self, id: CreatorId) -> Result<Option<StoredCreator>, StoreError> {
        Ok(self.creators.lock().unwrap().get(&id).cloned())
    }
}

#[async_trait::async_trait]
impl KnowledgeStore for MemoryStore {
    async fn ingestion(&self, creator: CreatorId) -> Result<Vec<DocumentStatus>, StoreError> {
        let rows = self.ingestion.lock().unwrap();
        Ok(rows.iter().filter(|((c, _), _)| *c == creator).map(|(_, s)| s.clone()).collect())
    }

    async fn set_ingestion(&self, creator: CreatorId, status: &DocumentStatus) -> Result<(), StoreError> {
        let known = self
            .creators
            .lock()
            .unwrap()
            .get(&creator)
            .is_some_and(|c| c.documents.iter().any(|d| d.path == status.document));
        if known {
            self.ingestion.lock().unwrap().insert((creator, status.document.clone()), status.clone());
        }
        Ok(())
    }

    async fn vectors(&self, creator: CreatorId, embedder: &str) -> Result<Vec<(ChunkKey, Vec<f32>)>, StoreError> {
        let rows = self.vectors.lock().unwrap();
        Ok(rows
            .iter()
            .filter(|((c, e, _), _)| *c == creator && e == embedder)
            .flat_map(|((_, _, document), (hash, vectors))| {
                vectors.iter().map(|(ordinal, v)| {
                    (ChunkKey { document: document.clone(), content_hash: hash.clone(), ordinal: *ordinal }, v.clone())
                })
            })
            .collect())
    }

    async fn replace_vectors(
        &self,
        creator: CreatorId,
        embedder: &str,
        document: &str,
        content_hash: &str,
        vectors: &[(u32, Vec<f32>)],
    ) -> Result<(), StoreError> {
        let mut rows = self.vectors.lock().unwrap();
        rows.retain(|(c, _, d), _| !(*c == creator && d == document));
        rows.insert((creator, embedder.to_owned(), document.to_owned()), (content_hash.to_owned(), vectors.to_vec()));
        Ok(())
    }

    async fn retain_vectors(&self, creator: CreatorId, embedder: &str, keep: &[String]) -> Result<(), StoreError> {
        self.vectors.lock().unwrap().retain(|(c, e, d), _| *c != creator || (e == embedder && keep.contains(d)));
        Ok(())
    }
}

/// The embedded defaults over the in-memory store: hashed n-grams, the embedded index.
pub fn knowledge_ports(store: Arc<MemoryStore>) -> twin_actors::KnowledgePorts {
    twin_actors::KnowledgePorts {
        embedder: Arc::new(twin_engine::knowledge::HashedEmbedder::default()),
        index: Arc::new(twin_store::EmbeddedIndex::new(store.clone())),
        store,
    }
}

#[async_trait::async_trait]
impl NudgeStore for MemoryStore {
    async fn pending_before(
        &self,
        horizon: Timestamp,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<ScheduledNudge>, StoreError> {
        let rows = self.nudge_rows();
        Ok(rows
            .into_iter()
            .filter(|r| r.status == "pending" && r.nudge.due_at < horizon && r.claimed_until.is_none_or(|c| c < now))
            .take(limit as usize)
            .map(|r| r.nudge)
            .collect())
    }

    async fn claim(
        &self,
        ids: &[NudgeId],
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Vec<ScheduledNudge>, StoreError> {
        let mut nudges = self.nudges.lock().unwrap();
        let mut claimed = Vec::new();
        for id in ids {
            if let Some(row) = nudges.get_mut(id)
                && row.status == "pending"
                && row.claimed_until.is_none_or(|c| c < now)
            {
                row.claimed_until = Some(lease_until);
                claimed.push(row.nudge.clone());
            }
        }
        Ok(claimed)
    }

    async fn release_claims(&self) -> Result<u64, StoreError> {
        let mut nudges = self.nudges.lock().unwrap();
        let mut released = 0;
        for row in nudges.values_mut().filter(|r| r.claimed_until.is_some()) {
            row.claimed_until = None;
            released += 1;
        }
        Ok(released)
    }

    async fn pending_of(
        &self,
        creator: CreatorId,
        conversation: ConversationId,
    ) -> Result<Vec<ScheduledNudge>, StoreError> {
        Ok(self
            .nudge_rows()
            .into_iter()
            .filter(|r| r.status == "pending" && r.nudge.creator == creator && r.nudge.conversation == conversation)
            .map(|r| r.nudge)
            .collect())
    }
}

/// A model whose replies the test controls: echo by default, or held until released, or failing.
#[derive(Default)]
pub struct ScriptedLlm {
    pub hold: AtomicBool,
    pub fail: AtomicBool,
    released: tokio::sync::Notify,
    pub started: AtomicUsize,
}

impl ScriptedLlm {
    pub fn release(&self) {
        self.hold.store(false, Ordering::SeqCst);
        self.released.notify_waiters();
    }
}

#[async_trait::async_trait]
impl Llm for ScriptedLlm {
    async fn reply(&self, request: ReplyRequest) -> Result<ReplyStream, LlmError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(LlmError::Unavailable("scripted failure".into()));
        }
        while self.hold.load(Ordering::SeqCst) {
            let notified = self.released.notified();
            if !self.hold.load(Ordering::SeqCst) {
                break;
            }
            notified.await;
        }
        let last = request.turns.last().map(|t| t.text.clone()).unwrap_or_default();
        let parts = vec![Ok("you said: ".to_owned()), Ok(last)];
        Ok(futures::stream::iter(parts).boxed())
    }
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub to: Recipient,
    pub out: Outbound,
    /// For acks and messages: was the seq committed when the frame was handed over?
    pub durable: Option<bool>,
}

pub struct RecordingDelivery {
    pub store: Arc<MemoryStore>,
    pub seen: Mutex<HashMap<ConversationId, Vec<Seen>>>,
}

impl Delivery for RecordingDelivery {
    fn deliver(&self, conversation: ConversationId, to: Recipient, out: Outbound) {
        let durable = match &out {
            Outbound::Ack { seq, .. } => Some(self.store.committed(conversation, *seq)),
            Outbound::Message(m) => Some(self.store.committed(conversation, m.seq)),
            _ => None,
        };
        self.seen.lock().unwrap().entry(conversation).or_default().push(Seen { to, out, durable });
    }
}

pub struct Harness {
    pub engine: EngineHandle,
    pub store: Arc<MemoryStore>,
    pub llm: Arc<ScriptedLlm>,
    pub delivery: Arc<RecordingDelivery>,
    pub clock: Arc<ManualClock>,
    pub creator: CreatorId,
}

pub const IDLE_TTL: Duration = Duration::from_secs(60);

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(MemoryStore::default()).await
    }

    pub async fn start_with(store: MemoryStore) -> Self {
        Self::start_full(store, None, twin_engine::twin::NudgeSettings::default()).await
    }

    /// A creator whose default program is `program` (YAML), with these nudge settings.
    pub async fn start_coaching(program: &str, nudges: twin_engine::twin::NudgeSettings) -> Self {
        Self::start_full(MemoryStore::default(), Some(program), nudges).await
    }

    async fn start_full(store: MemoryStore, program: Option<&str>, nudges: twin_engine::twin::NudgeSettings) -> Self {
        let store = Arc::new(store);
        let program_id = ProgramId::parse("coaching").unwrap();
        let profile = CreatorProfile {
            slug: Slug::parse("demo").unwrap(),
            persona: Persona { name: "Maya".into(), ..Persona::default() },
            replies: Default::default(),
            allowed_origins: vec![],
            default_program: program.map(|_| program_id.clone()),
            nudges,
            model: Default::default(),
            channels: Default::default(),
            user_tokens: None,
        };
        let programs: Vec<ProgramSource> =
            program.map(|source| ProgramSource { id: program_id, source: source.to_owned() }).into_iter().collect();
        store.put_creator(&profile, &[], &programs).await.unwrap();
        let llm = Arc::new(ScriptedLlm::default());
        let delivery = Arc::new(RecordingDelivery { store: store.clone(), seen: Mutex::default() });
        let clock = Arc::new(ManualClock::starting_at(Timestamp(1_700_000_000_000)));
        let ports = Ports {
            conversations: store.clone(),
            creators: store.clone(),
            nudges: store.clone(),
            llm: llm.clone(),
            knowledge: knowledge_ports(store.clone()),
            delivery: delivery.clone(),
            outbox: Arc::new(twin_engine::ports::NoOutbox),
            live: Arc::new(LiveHub::new()),
            clock: clock.clone(),
            cluster: None,
        };
        let scheduler = twin_actors::SchedulerConfig {
            tick: Duration::from_millis(5),
            lease: Duration::from_secs(30),
            reload_every: Duration::from_secs(5),
            ..twin_actors::SchedulerConfig::default()
        };
        let config = EngineConfig { idle_ttl: IDLE_TTL, scheduler: Some(scheduler), ..EngineConfig::default() };
        let engine = EngineHandle::start(ports, config).await.unwrap();
        Self { engine, store, llm, delivery, clock, creator: profile.slug.creator_id() }
    }

    pub fn key(&self, user: &str) -> ConversationKey {
        ConversationKey { creator: self.creator, user: UserId::parse(user).unwrap() }
    }

    pub async fn say(&self, key: &ConversationKey, client_id: &str, text: &str) {
        let event = Event::UserMessage {
            client_id: ClientMsgId::parse(client_id).unwrap(),
            text: text.into(),
            session: Some(SessionId(1)),
            channel: None,
        };
        self.engine.route(key, event).await.unwrap();
    }

    pub fn seen(&self, key: &ConversationKey) -> Vec<Seen> {
        self.delivery.seen.lock().unwrap().get(&key.id()).cloned().unwrap_or_default()
    }

    pub fn acks(&self, key: &ConversationKey) -> Vec<(String, u64)> {
        self.seen(key)
            .into_iter()
            .filter_map(|s| match s.out {
                Outbound::Ack { client_id, seq } => Some((client_id.to_string(), seq.0)),
                _ => None,
            })
            .collect()
    }

    pub fn finals(&self, key: &ConversationKey) -> Vec<Message> {
        self.seen(key)
            .into_iter()
            .filter_map(|s| match s.out {
                Outbound::Message(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    /// Polls until `check` holds, failing the test after a generous deadline. No fixed sleeps.
    pub async fn until(&self, what: &str, mut check: impl FnMut(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !check(self) {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}
