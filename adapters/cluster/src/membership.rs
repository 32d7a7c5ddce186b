//! Membership: which nodes are alive. Each node renews a heartbeat in Redis (a sorted set scored by
//! the heartbeat's expiry, on Redis's own clock) and reads the live set back in the same script, so
//! every node sees the same set within one heartbeat period.
//!
//! A node that cannot renew stops counting itself a member *before* the others may count it gone:
//! its own lease ends at `sent + lease - margin` (measured from before the request left), while the
//! others drop it only once Redis's clock passes `received + lease`. Between the two nothing of it
//! is owned by anyone new, and from its own end on it owns nothing (routing answers `unavailable`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fred::prelude::{Client, Error as RedisError, SortedSetsInterface};
use fred::types::scripts::Script;
use tokio::sync::watch;

/// The sorted set of live nodes (`{prefix}:nodes`): member = node id, score = expiry (Redis time,
/// ms); `{prefix}:nodes:addr` maps node id → address, for operators.
fn nodes_key(prefix: &str) -> String {
    format!("{prefix}:nodes")
}

/// Renews this node and returns the live set: drops expired members (and their addresses) first.
const HEARTBEAT_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  redis.call('HDEL', KEYS[2], unpack(expired))
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return redis.call('ZRANGE', KEYS[1], 0, -1)
";

#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// Every key of this cluster starts with it (`twin:c:{cluster}`): nodes on another database
    /// (another cluster, or a parallel test) sharing the Redis never see each other.
    pub prefix: String,
    /// This node's id (unique in the cluster).
    pub node: String,
    /// Where this node listens, for operators.
    pub address: String,
    /// A heartbeat keeps a node alive this long; renewed four times per lease.
    pub lease: Duration,
}

/// The live set as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct View {
    /// Sorted node ids; empty while this node is not a member itself.
    pub nodes: Arc<[String]>,
}

pub struct Membership {
    client: Client,
    config: MembershipConfig,
    script: Script,
    view: watch::Sender<View>,
    /// When this node's own lease ends, in ms after `epoch`.
    valid_until: AtomicU64,
    epoch: Instant,
    /// Renewals failed in a row (for logs).
    failures: AtomicU32,
}

impl Membership {
    /// Joins: the first heartbeat must succeed, so a node never starts without knowing the set.
    pub async fn join(client: Client, config: MembershipConfig) -> Result<Arc<Self>, RedisError> {
        let (view, _) = watch::channel(View::default());
        let membership = Arc::new(Self {
            client,
            config,
            script: Script::from_lua(HEARTBEAT_LUA),
            view,
            valid_until: AtomicU64::new(0),
            epoch: Instant::now(),
            failures: AtomicU32::new(0),
        });
        membership.renew().await?;
        Ok(membership)
    }

    pub fn node(&self) -> &str {
        &self.config.node
    }

    pub fn prefix(&self) -> &str {
        &self.config.prefix
    }

    pub fn lease(&self) -> Duration {
        self.config.lease
    }

    /// The live set now: empty once this node's own lease ran out, even if the renewal loop is
    /// stuck (a paused process, a Redis that does not answer).
    pub fn current(&self) -> View {
        if self.is_member() { self.view.borrow().clone() } else { View::default() }
    }

    /// Whether this node's lease is still running.
    pub fn is_member(&self) -> bool {
        self.millis_now() < self.valid_until.load(Ordering::Acquire)
    }

    /// Changes of the live set (also when this node drops out or comes back).
    pub fn subscribe(&self) -> watch::Receiver<View> {
        self.view.subscribe()
    }

    /// Renews every quarter lease until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(self.config.lease / 4);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(error) = self.renew().await
                && self.failures.fetch_add(1, Ordering::Relaxed) == 0
            {
                tracing::warn!(%error, "cluster: cannot renew this node's heartbeat in Redis");
            }
            if !self.is_member() && !self.view.borrow().nodes.is_empty() {
                tracing::error!(
                    "cluster: this node's lease ran out; it owns no conversation until Redis answers again"
                );
                self.view.send_replace(View::default());
            }
        }
    }

    /// Leaves the cluster now (a graceful shutdown), so the others take over without waiting for
    /// the lease to run out.
    pub async fn leave(&self) {
        self.valid_until.store(0, Ordering::Release);
        self.view.send_replace(View::default());
        let removed: Result<i64, _> = self.client.zrem(nodes_key(&self.config.prefix), self.config.node.clone()).await;
        if let Err(error) = removed {
            tracing::warn!(%error, "cluster: could not leave; the others will notice when the lease runs out");
        }
    }

    async fn renew(&self) -> Result<(), RedisError> {
        let sent = self.millis_now();
        let lease = u64::try_from(self.config.lease.as_millis()).unwrap_or(u64::MAX);
        let nodes: Vec<String> = self
            .script
            .evalsha_with_reload(
                &self.client,
                vec![nodes_key(&self.config.prefix), format!("{}:nodes:addr", self.config.prefix)],
                vec![self.config.node.clone(), lease.to_string(), self.config.address.clone()],
            )
            .await?;
        // A tenth of the lease for the two clocks' rates to differ and for this node's own
        // decisions to take effect (a commit already sent is still fenced by the store).
        let margin = lease / 10;
        self.valid_until.store(sent + lease - margin, Ordering::Release);
        if self.failures.swap(0, Ordering::Relaxed) > 0 {
            tracing::info!("cluster: Redis answers again; this node is a member");
        }
        let mut nodes = nodes;
        nodes.sort();
        let view = View { nodes: nodes.into() };
        self.view.send_if_modified(|current| {
            if *current == view {
                false
            } else {
                tracing::info!(nodes = ?view.nodes, "cluster: the live set changed");
                *current = view;
                true
            }
        });
        Ok(())
    }

    fn millis_now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}
