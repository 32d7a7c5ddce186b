//! Live events between nodes: a creator watching through node A sees the conversations node C
//! owns. [`RedisLive`] is the engine's [`LivePublisher`] in cluster mode: it hands each event to
//! the local sink (the node's LiveHub, whose watchers are on this node) and to Redis, channel
//! `{prefix}:live:{creator}` (the cluster's key prefix); its subscriber feeds the events of the other nodes into the same sink.
//! Built by the api's startup when `TWIN_REDIS_URL` is set.
//!
//! # Policy and cost
//!
//! - **The caller never waits.** `publish` is the local sink's publish plus a `try_send` into a
//!   bounded queue ([`LiveConfig::queue`], 4096 events) read by one publishing task. When the queue
//!   is full (Redis slow or away) the event is dropped for the other nodes only, counted in
//!   `twin_cluster_live_dropped_total`; watchers on this node still get it. Live events are a
//!   view, not a record: a watcher who misses one sees the durable state in the next snapshot.
//! - **Order.** One queue, one publishing connection (batches of up to 128 events go out as one
//!   pipeline, in order), one subscriber connection and one receiving loop: events of one creator
//!   (and so of one conversation) reach the other nodes in the order they were published.
//! - **No echo, exactly once.** Every message carries the sender's node id; a node ignores its own
//!   (its local sink had them already). Each sender numbers its events, so a receiver notices what
//!   it missed (queue drops, a Redis outage) and counts it in `twin_cluster_live_gaps_total`.
//! - **Cost.** Every live event is one `PUBLISH`, deltas included (a streamed reply is dozens of
//!   events), whether or not anybody watches: about 150–400 bytes of JSON each, batched into
//!   pipelines so a busy node pays far less than one round trip per event. Every node
//!   subscribes to the pattern `{prefix}:live:*` and so receives and decodes every other node's
//!   events; the LiveHub then drops those of creators nobody on the node watches at the price of
//!   a map lookup. With N nodes and E events per second in the whole cluster Redis sends N·E
//!   messages per second. That is the simple choice, right while the cluster is a handful of
//!   nodes; a per-creator `SUBSCRIBE` driven by the number of local watchers (which needs the
//!   live route to tell this module when a watcher comes and goes) would cut the receiving side
//!   to the creators actually watched, and is the next step if the fan-in shows in profiles.
//! - **Redis outages.** Both connections reconnect with exponential backoff (capped at 5 s);
//!   the subscriber subscribes again after each reconnect. Losing and regaining a connection is
//!   logged (warn, then info). Events published meanwhile are lost to the other nodes (counted),
//!   never to the local watchers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fred::prelude::{ClientLike, Config, Error as RedisError, EventInterface, PubsubInterface};
use fred::types::Value;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use twin_engine::CreatorId;
use twin_engine::ports::{LiveEvent, LivePublisher};

/// Events dropped for the other nodes because the publishing queue was full.
pub const LIVE_DROPPED: &str = "twin_cluster_live_dropped_total";
/// Events lost to a failed `PUBLISH` (Redis away or too slow).
pub const LIVE_PUBLISH_FAILED: &str = "twin_cluster_live_publish_failed_total";
/// Events of other nodes handed to the local sink.
pub const LIVE_RECEIVED: &str = "twin_cluster_live_received_total";
/// Events of other nodes this node noticed it missed (numbering gaps).
pub const LIVE_GAPS: &str = "twin_cluster_live_gaps_total";

/// The channel pattern every node subscribes to.
/// The most events one pipeline carries.
const BATCH: usize = 128;
/// How long one pipeline may wait for Redis before its events count as lost.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

/// The Redis channel of one creator's live events in the cluster whose keys start with `prefix`.
pub fn live_channel(prefix: &str, creator: CreatorId) -> String {
    format!("{prefix}:live:{}", creator.0)
}

#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// The cluster's key prefix (`twin:c:{cluster}`): clusters sharing a Redis never see each
    /// other's events (they carry tenants' conversations).
    pub prefix: String,
    /// Events waiting for the publishing task; beyond it they are dropped for the other nodes.
    pub queue: usize,
    /// Messages the subscriber connection may hold for the receiving loop before it lags.
    pub receive_buffer: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self { prefix: "twin".to_owned(), queue: 4096, receive_buffer: 4096 }
    }
}

/// Redis did not answer at start, or the URL is not one.
#[derive(Debug, thiserror::Error)]
#[error("the live fan-out cannot reach Redis: {0}")]
pub struct LiveError(#[source] RedisError);

/// What this node's fan-out did so far (the counters behind its metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// Events handed to Redis.
    pub published: u64,
    /// Events dropped for the other nodes: queue full.
    pub dropped: u64,
    /// Events lost to failed `PUBLISH`es.
    pub failed: u64,
    /// Events of other nodes handed to the local sink.
    pub received: u64,
    /// Events of other nodes missed (gaps in their numbering).
    pub gaps: u64,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    received: AtomicU64,
    gaps: AtomicU64,
}

/// The message on the wire: `{"n":"<node>","s":<number>,"e":{…event…}}`.
#[derive(Serialize)]
struct Outgoing<'a> {
    n: &'a str,
    s: u64,
    e: &'a LiveEvent,
}

#[derive(Deserialize)]
struct Incoming {
    n: String,
    s: u64,
    e: LiveEvent,
}

/// The live fan-out of one node. Dropping it stops its tasks.
pub struct RedisLive {
    node: Arc<str>,
    local: Arc<dyn LivePublisher>,
    queue: mpsc::Sender<(u64, LiveEvent)>,
    /// The number of this node's next event; taken even when the event is dropped, so the other
    /// nodes see the gap.
    next: AtomicU64,
    counters: Arc<Counters>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RedisLive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLive").field("node", &self.node).finish_non_exhaustive()
    }
}

impl RedisLive {
    /// Connects to `url` (`redis://…`) as node `node` (unique in the cluster) and starts fanning
    /// out: on return this node already receives the other nodes' events. `local` is the node's
    /// own sink (its LiveHub). Fails when the URL is invalid or Redis does not answer at start;
    /// later outages are ridden out (see the module docs).
    pub async fn connect(
        url: &str,
        node: impl Into<String>,
        local: Arc<dyn LivePublisher>,
        config: LiveConfig,
    ) -> Result<Self, LiveError> {
        let node: Arc<str> = Arc::from(node.into());
        let counters = Arc::new(Counters::default());
        let redis_config = Config::from_url(url).map_err(LiveError)?;
        let builder = |receive_buffer: usize| {
            let mut builder = fred::prelude::Builder::from_config(redis_config.clone());
            builder
                .with_connection_config(|c| c.connection_timeout = Duration::from_secs(2))
                .with_performance_config(|p| {
                    p.default_command_timeout = PUBLISH_TIMEOUT;
                    p.broadcast_channel_capacity = receive_buffer;
                })
                .set_policy(fred::prelude::ReconnectPolicy::new_exponential(0, 100, 5_000, 2));
            builder
        };

        let publisher = builder(32).build().map_err(LiveError)?;
        let subscriber = builder(config.receive_buffer.max(1)).build_subscriber_client().map_err(LiveError)?;
        let mut tasks = vec![
            report_connection(&publisher, node.clone(), "publisher"),
            report_connection(&subscriber.to_client(), node.clone(), "subscriber"),
        ];
        publisher.init().await.map_err(LiveError)?;
        subscriber.init().await.map_err(LiveError)?;
        // Listen before subscribing, so nothing between the two is missed; `manage_subscriptions`
        // subscribes again after every reconnect.
        let messages = subscriber.message_rx();
        tasks.push(subscriber.manage_subscriptions());
        subscriber.psubscribe(format!("{}:live:*", config.prefix)).await.map_err(LiveError)?;

        let (queue, outgoing) = mpsc::channel(config.queue.max(1));
        tasks.push(tokio::spawn(publish_forever(
            publisher,
            node.clone(),
            config.prefix.clone(),
            outgoing,
            counters.clone(),
        )));
        tasks.push(tokio::spawn(receive_forever(subscriber, messages, node.clone(), local.clone(), counters.clone())));
        tracing::info!(node = %node, "live events fan out through Redis");
        Ok(Self { node, local, queue, next: AtomicU64::new(1), counters, tasks })
    }

    /// This node's id, as carried by its messages.
    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn stats(&self) -> LiveStats {
        let c = &self.counters;
        LiveStats {
            published: c.published.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            gaps: c.gaps.load(Ordering::Relaxed),
        }
    }
}

impl Drop for RedisLive {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl LivePublisher for RedisLive {
    fn publish(&self, event: LiveEvent) {
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        // Reserve first, so a full queue costs no clone.
        match self.queue.try_reserve() {
            Ok(permit) => permit.send((number, event.clone())),
            Err(_) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(LIVE_DROPPED).increment(1);
            }
        }
        self.local.publish(event);
    }
}

/// Sends the queued events, a pipeline per batch, until the fan-out is dropped.
async fn publish_forever(
    client: fred::prelude::Client,
    node: Arc<str>,
    prefix: String,
    mut queue: mpsc::Receiver<(u64, LiveEvent)>,
    counters: Arc<Counters>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut failing = false;
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        let pipeline = client.pipeline();
        let mut queued = 0_u64;
        for (number, event) in batch.drain(..) {
            let message = Outgoing { n: &node, s: number, e: &event };
            let payload = match serde_json::to_string(&message) {
                Ok(payload) => payload,
                Err(error) => {
                    // Only a bug could get here (every field serializes); lose the event, say so.
                    tracing::error!(%error, "a live event could not be serialized");
                    continue;
                }
            };
            // Queuing in a pipeline only buffers the command; it is sent by `all` below.
            let _: Result<(), RedisError> = pipeline.publish(live_channel(&prefix, event.creator), payload).await;
            queued += 1;
        }
        match pipeline.all::<Vec<Value>>().await {
            Ok(_) => {
                counters.published.fetch_add(queued, Ordering::Relaxed);
                if failing {
                    failing = false;
                    tracing::info!("live fan-out: publishing to Redis again");
                }
            }
            Err(error) => {
                counters.failed.fetch_add(queued, Ordering::Relaxed);
                metrics::counter!(LIVE_PUBLISH_FAILED).increment(queued);
                if !failing {
                    failing = true;
                    tracing::warn!(%error, lost = queued, "live fan-out: cannot publish to Redis; other nodes miss these events");
                }
            }
        }
    }
}

/// Hands the other nodes' events to the local sink, in the order they arrive.
async fn receive_forever(
    // Held so the connection lives as long as the loop.
    _subscriber: fred::clients::SubscriberClient,
    mut messages: broadcast::Receiver<fred::types::Message>,
    node: Arc<str>,
    local: Arc<dyn LivePublisher>,
    counters: Arc<Counters>,
) {
    // The last number seen from each other node (a handful of entries: one per node).
    let mut last: HashMap<String, u64> = HashMap::new();
    loop {
        let message = match messages.recv().await {
            Ok(message) => message,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "live fan-out: this node fell behind the other nodes' events");
                counters.gaps.fetch_add(missed, Ordering::Relaxed);
                metrics::counter!(LIVE_GAPS).increment(missed);
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let incoming: Incoming = match message.value.as_bytes().map(serde_json::from_slice) {
            Some(Ok(incoming)) => incoming,
            Some(Err(error)) => {
                tracing::warn!(channel = %message.channel, %error, "live fan-out: a message that is not a live event");
                continue;
            }
            None => continue,
        };
        if *incoming.n == *node {
            continue; // Our own: the local sink had it when it was published.
        }
        match last.insert(incoming.n.clone(), incoming.s) {
            // A lower number means the sender restarted and counts afresh.
            Some(previous) if incoming.s > previous + 1 => {
                let missed = incoming.s - previous - 1;
                tracing::debug!(from = %incoming.n, missed, "live fan-out: events of another node were lost");
                counters.gaps.fetch_add(missed, Ordering::Relaxed);
                metrics::counter!(LIVE_GAPS).increment(missed);
            }
            _ => {}
        }
        counters.received.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(LIVE_RECEIVED).increment(1);
        local.publish(incoming.e);
    }
}

/// Logs when a connection is lost (once per outage) and when it is back.
fn report_connection(client: &fred::prelude::Client, node: Arc<str>, role: &'static str) -> JoinHandle<()> {
    let mut errors = client.error_rx();
    let mut reconnects = client.reconnect_rx();
    tokio::spawn(async move {
        let mut lost = false;
        loop {
            tokio::select! {
                error = errors.recv() => match error {
                    Ok((error, _)) if !lost => {
                        lost = true;
                        tracing::warn!(node = %node, role, %error, "live fan-out lost its Redis connection; reconnecting");
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                reconnected = reconnects.recv() => match reconnected {
                    Ok(_) if lost => {
                        lost = false;
                        tracing::info!(node = %node, role, "live fan-out reconnected to Redis");
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    })
}
