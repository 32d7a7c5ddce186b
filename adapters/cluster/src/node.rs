//! `RedisCluster`: the engine's cluster port over Redis. Membership (see [`crate::membership`])
//! decides placement; each node reads its own Redis Stream (`{prefix}:stream:{node}`, consumer
//! group `twin`), where the others append what they forward to it.
//!
//! Delivery is at least once and deduplicated by an id in each entry:
//! - an entry is acknowledged and deleted only after the engine took it (an event is in its
//!   conversation's mailbox or was forwarded on; a command was routed);
//! - a node restarted with the same id first re-reads what it had read and not acknowledged;
//! - the stream of a node that left the live set is drained by one live node (a Redis lock per dead
//!   stream): its events and commands are routed again, to their new owners; frames for its sockets
//!   are dropped (those sockets died with it), and the stream is deleted once empty.
//!
//! What was taken and not yet committed when a node dies is recovered end to end, not here: a web
//! client resends what was not acknowledged (deduplicated on its client id), a webhook's inbox row
//! is replayed, a claimed nudge's lease runs out and it is claimed again.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::prelude::{Client, ClientLike, Error as RedisError, KeysInterface, SetsInterface, StreamsInterface};
use fred::types::scripts::Script;
use fred::types::{Expiration, SetOptions, Value};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use twin_engine::ConversationId;
use twin_engine::ports::{Cluster, ClusterError, Forward, Placement};
use uuid::Uuid;

use crate::membership::Membership;

const GROUP: &str = "twin";
/// Entries read per round trip.
const BATCH: u64 = 128;
/// Frames and answers queued for sending before new ones are dropped.
const SEND_QUEUE: usize = 65_536;
/// Entry ids remembered for deduplication.
const SEEN: usize = 100_000;

/// 1 when node ARGV[1] has an unexpired heartbeat in the set KEYS[1] (Redis's clock).
const ALIVE_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) > now then return 1 end
return 0
";

/// Deletes stream KEYS[1] (and its entry in the set KEYS[2]) if it is empty and its node ARGV[1]
/// has no unexpired heartbeat in KEYS[3]; 1 when deleted.
const DROP_STREAM_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[3], ARGV[1])
if score and tonumber(score) > now then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('XLEN', KEYS[1]) > 0 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], KEYS[1])
return 1
";

/// Appends an entry and records the stream, in one round trip.
const FORWARD_LUA: &str = r"
redis.call('SADD', KEYS[2], KEYS[1])
return redis.call('XADD', KEYS[1], '*', 'm', ARGV[1])
";

/// A Redis client for the cluster: commands time out after `command_timeout`, and it reconnects
/// quickly (the lease is short).
pub async fn connect(url: &str, command_timeout: Duration) -> Result<Client, RedisError> {
    crate::redis::connect(url, command_timeout, Duration::from_secs(2)).await
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    id: Uuid,
    item: Forward,
}

/// What reads a node's stream hands entries to: the engine.
#[async_trait::async_trait]
pub trait Inbound: Send + Sync + 'static {
    async fn receive(&self, item: Forward);
}

pub struct RedisCluster {
    membership: Arc<Membership>,
    client: Client,
    script: Script,
    alive_script: Script,
    drop_script: Script,
    queue: mpsc::Sender<(String, Forward)>,
    queue_rx: Mutex<Option<mpsc::Receiver<(String, Forward)>>>,
}

impl RedisCluster {
    /// `client` serves the short commands; the stream reader opens a connection of its own (a
    /// blocking read would hold up everything else on a shared one).
    pub fn new(client: Client, membership: Arc<Membership>) -> Arc<Self> {
        let (queue, rx) = mpsc::channel(SEND_QUEUE);
        Arc::new(Self {
            membership,
            client,
            script: Script::from_lua(FORWARD_LUA),
            alive_script: Script::from_lua(ALIVE_LUA),
            drop_script: Script::from_lua(DROP_STREAM_LUA),
            queue,
            queue_rx: Mutex::new(Some(rx)),
        })
    }

    pub fn membership(&self) -> &Arc<Membership> {
        &self.membership
    }

    fn block_millis(&self) -> u64 {
        u64::try_from(self.membership.lease().as_millis() / 8).unwrap_or(100).max(50)
    }

    /// The stream a node reads.
    pub fn stream_key(&self, node: &str) -> String {
        format!("{}:stream:{node}", self.membership.prefix())
    }

    /// Every stream that may hold entries, so dead nodes' streams are found without `KEYS`.
    fn streams_key(&self) -> String {
        format!("{}:streams", self.membership.prefix())
    }

    fn node_of<'a>(&self, stream: &'a str) -> Option<&'a str> {
        stream.strip_prefix(self.membership.prefix())?.strip_prefix(":stream:")
    }

    async fn append(&self, to: &str, item: Forward) -> Result<(), RedisError> {
        let envelope = Envelope { id: Uuid::new_v4(), item };
        let payload = serde_json::to_string(&envelope)
            .map_err(|e| RedisError::new(fred::error::ErrorKind::Parse, e.to_string()))?;
        let _: String = self
            .script
            .evalsha_with_reload(&self.client, vec![self.stream_key(to), self.streams_key()], vec![payload])
            .await?;
        Ok(())
    }

    /// Sends what [`Cluster::send`] queued, in order. Runs until the cluster is dropped.
    pub async fn run_sender(self: Arc<Self>) {
        let Some(mut rx) = self.queue_rx.lock().unwrap_or_else(|p| p.into_inner()).take() else { return };
        while let Some((to, item)) = rx.recv().await {
            if let Err(error) = self.append(&to, item).await {
                metrics::counter!("twin_cluster_send_failures_total").increment(1);
                tracing::debug!(%error, node = %to, "cluster: a frame or answer was not sent");
            }
        }
    }

    /// Reads this node's stream and hands each entry to `inbound`, forever; then, every lease,
    /// drains the streams of nodes that are gone.
    pub async fn run_reader(self: Arc<Self>, inbound: Arc<dyn Inbound>) {
        let reader = self.client.clone_new();
        if let Err(error) = reader.init().await {
            tracing::error!(%error, "cluster: the stream reader cannot connect to Redis");
        }
        let me = self.membership.node().to_owned();
        let key = self.stream_key(&me);
        let mut seen = Seen::default();
        let mut own_pending = true;
        let drainer = tokio::spawn(self.clone().drain_dead_forever(inbound.clone()));
        let _guard = AbortOnDrop(drainer);
        loop {
            // First what an earlier run with this id read and did not acknowledge, then new entries.
            let from = if own_pending { "0" } else { ">" };
            // Below the command timeout (a quarter lease), or the wait itself would time out.
            let block = if own_pending { None } else { Some(self.block_millis()) };
            match read(&reader, &me, &key, from, block).await {
                Ok(entries) => {
                    if own_pending && entries.is_empty() {
                        own_pending = false;
                        continue;
                    }
                    self.handle(&key, entries, inbound.as_ref(), &mut seen).await;
                }
                Err(error) => {
                    if error.details().contains("NOGROUP") {
                        let _ = ensure_group(&self.client, &key).await;
                        let _: Result<i64, _> = self.client.sadd(self.streams_key(), key.clone()).await;
                    } else {
                        tracing::warn!(%error, "cluster: cannot read this node's stream");
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    async fn handle(&self, key: &str, entries: Vec<(String, String)>, inbound: &dyn Inbound, seen: &mut Seen) {
        if entries.is_empty() {
            return;
        }
        let mut ids = Vec::with_capacity(entries.len());
        for (id, payload) in entries {
            if payload.is_empty() {
                ids.push(id);
                continue;
            }
            match serde_json::from_str::<Envelope>(&payload) {
                Ok(envelope) if seen.first_time(envelope.id) => inbound.receive(envelope.item).await,
                Ok(_) => metrics::counter!("twin_cluster_duplicates_total").increment(1),
                Err(error) => tracing::error!(%error, entry = %id, "cluster: an unreadable stream entry was dropped"),
            }
            ids.push(id);
        }
        // One round trip: queuing in a pipeline only buffers the commands; `all` sends them.
        let pipeline = self.client.pipeline();
        let _: Result<(), RedisError> = pipeline.xack(key, GROUP, ids.clone()).await;
        let _: Result<(), RedisError> = pipeline.xdel(key, ids).await;
        if let Err(error) = pipeline.all::<Vec<Value>>().await {
            // Read again after a restart, and dropped as duplicates only within this run.
            tracing::warn!(%error, "cluster: could not acknowledge stream entries");
        }
    }

    async fn drain_dead_forever(self: Arc<Self>, inbound: Arc<dyn Inbound>) {
        let mut ticks = tokio::time::interval(self.membership.lease());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut changes = self.membership.subscribe();
        let mut seen = Seen::default();
        loop {
            // At once when a node leaves the live set (what waits for it is re-routed without
            // delay), and every lease for what a late writer appended after a drain.
            tokio::select! {
                _ = ticks.tick() => {}
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
            if let Err(error) = self.drain_dead(inbound.as_ref(), &mut seen).await {
                tracing::warn!(%error, "cluster: could not drain the streams of nodes that left");
            }
        }
    }

    /// Drains every stream whose node is not in the live set (one live node per dead stream).
    async fn drain_dead(&self, inbound: &dyn Inbound, seen: &mut Seen) -> Result<(), RedisError> {
        let live = self.membership.current();
        if live.nodes.is_empty() {
            return Ok(());
        }
        let streams: Vec<String> = self.client.smembers(self.streams_key()).await?;
        let me = self.membership.node().to_owned();
        for stream in streams {
            let Some(node) = self.node_of(&stream) else { continue };
            if live.nodes.iter().any(|n| n == node) || self.alive_in_redis(node).await? {
                // This node's view may lag (a node that just joined): Redis's own set decides.
                continue;
            }
            let lock = format!("{}:drain:{node}", self.membership.prefix());
            let lease = i64::try_from(self.membership.lease().as_millis()).unwrap_or(i64::MAX);
            let locked: Option<String> = self
                .client
                .set(&lock, me.clone(), Some(Expiration::PX(lease * 4)), Some(SetOptions::NX), false)
                .await?;
            if locked.is_none() {
                continue;
            }
            let drained = self.drain(&stream, node, &me, inbound, seen).await;
            let _: Result<i64, _> = self.client.del(&lock).await;
            let moved = drained?;
            if moved > 0 {
                tracing::info!(node, entries = moved, "cluster: re-routed what was waiting for a node that left");
            }
        }
        Ok(())
    }

    /// Whether Redis counts `node` live now (its heartbeat has not expired).
    async fn alive_in_redis(&self, node: &str) -> Result<bool, RedisError> {
        let alive: i64 = self
            .alive_script
            .evalsha_with_reload(
                &self.client,
                vec![format!("{}:nodes", self.membership.prefix())],
                vec![node.to_owned()],
            )
            .await?;
        Ok(alive == 1)
    }

    async fn drain(
        &self,
        stream: &str,
        dead: &str,
        me: &str,
        inbound: &dyn Inbound,
        seen: &mut Seen,
    ) -> Result<usize, RedisError> {
        ensure_group(&self.client, stream).await?;
        let mut moved = 0;
        // What the dead node had read and not acknowledged, then what an earlier drain of this
        // node read, then what nobody read.
        for (consumer, from) in [(dead, "0"), (me, "0"), (me, ">")] {
            loop {
                let entries = read(&self.client, consumer, stream, from, None).await?;
                if entries.is_empty() {
                    break;
                }
                moved += entries.len();
                self.handle(stream, entries, inbound, seen).await;
            }
        }
        // Deleted only if still empty and its node still dead, in one step: an entry appended
        // meanwhile, or a node that came back under the same id, keeps the stream.
        let _: i64 = self
            .drop_script
            .evalsha_with_reload(
                &self.client,
                vec![stream.to_owned(), self.streams_key(), format!("{}:nodes", self.membership.prefix())],
                vec![dead.to_owned()],
            )
            .await?;
        Ok(moved)
    }
}

#[async_trait::async_trait]
impl Cluster for RedisCluster {
    fn node(&self) -> &str {
        self.membership.node()
    }

    fn live(&self) -> Arc<[String]> {
        self.membership.current().nodes
    }

    fn place(&self, conversation: ConversationId) -> Placement {
        let view = self.membership.current();
        match twin_engine::placement::owner(conversation, &view.nodes) {
            None => Placement::Nowhere,
            Some(node) if node == self.membership.node() => Placement::Here,
            Some(node) => Placement::There(node.clone()),
        }
    }

    async fn forward(&self, to: &str, item: Forward) -> Result<(), ClusterError> {
        self.append(to, item).await.map_err(|error| ClusterError(error.to_string()))
    }

    fn send(&self, to: &str, item: Forward) {
        if self.queue.try_send((to.to_owned(), item)).is_err() {
            metrics::counter!("twin_cluster_send_dropped_total").increment(1);
        }
    }
}

async fn ensure_group(client: &Client, stream: &str) -> Result<(), RedisError> {
    let created: Result<String, RedisError> = client.xgroup_create(stream, GROUP, "0", true).await;
    match created {
        Ok(_) => Ok(()),
        Err(error) if error.details().contains("BUSYGROUP") => Ok(()),
        Err(error) => Err(error),
    }
}

/// One XREADGROUP: `(entry id, payload)` in stream order. Parsed from the raw reply (an empty
/// read is nil, a pending entry deleted meanwhile has no fields), which fred's typed map
/// conversion refuses.
async fn read(
    client: &Client,
    consumer: &str,
    stream: &str,
    from: &str,
    block: Option<u64>,
) -> Result<Vec<(String, String)>, RedisError> {
    let response: Value = client.xreadgroup(GROUP, consumer, Some(BATCH), block, false, stream, from).await?;
    let mut entries = Vec::new();
    // RESP2: [[stream, [[id, [field, value, …]], …]], …]; RESP3: {stream: [[id, …], …]}.
    let per_stream: Vec<Value> = match response {
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|s| match s {
                Value::Array(mut pair) if pair.len() == 2 => pair.pop(),
                _ => None,
            })
            .collect(),
        Value::Map(map) => map.inner().into_values().collect(),
        _ => Vec::new(),
    };
    for list in per_stream {
        let Value::Array(list) = list else { continue };
        for entry in list {
            let Value::Array(mut entry) = entry else { continue };
            if entry.len() != 2 {
                continue;
            }
            let fields = entry.pop();
            let Some(id) = entry.pop().and_then(|id| id.into_string()) else { continue };
            let payload = match fields {
                Some(Value::Array(fields)) => fields
                    .chunks(2)
                    .find(|kv| kv[0].as_str().as_deref() == Some("m"))
                    .and_then(|kv| kv.get(1)?.as_string()),
                _ => None,
            };
            match payload {
                Some(payload) => entries.push((id, payload)),
                // Deleted after it was read: acknowledged below with the rest.
                None => entries.push((id, String::new())),
            }
        }
    }
    entries.sort_by_key(|entry| entry_order(&entry.0));
    Ok(entries)
}

fn entry_order(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// The entry ids seen lately, oldest forgotten first.
#[derive(Default)]
struct Seen {
    ids: HashSet<Uuid>,
    order: VecDeque<Uuid>,
}

impl Seen {
    fn first_time(&mut self, id: Uuid) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > SEEN
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        true
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
