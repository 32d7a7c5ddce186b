//! Cluster mode (`TWIN_REDIS_URL` set): this node joins the others that share its database, and
//! the engine routes through them (docs/CLUSTER.md). Nodes on different databases never form one
//! cluster, even on one Redis: every key carries a hash of the database URL.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sha2::{Digest, Sha256};
use twin_actors::EngineHandle;
use twin_cluster::{Inbound, Membership, MembershipConfig, RedisCluster};
use twin_engine::ports::Forward;

use crate::settings::Settings;

/// Joins the cluster of this node's database; `None` without `TWIN_REDIS_URL`.
pub async fn join(settings: &Settings, address: String) -> anyhow::Result<Option<Arc<RedisCluster>>> {
    let Some(url) = &settings.redis_url else { return Ok(None) };
    // Commands time out below the lease: a Redis that hangs is noticed before this node's lease
    // runs out.
    let client = twin_cluster::node::connect(url.expose(), settings.cluster_lease / 4)
        .await
        .context("cannot reach Redis at TWIN_REDIS_URL")?;
    let node = settings.node_id.clone().unwrap_or_else(generated_node_id);
    let name = settings.cluster.clone().unwrap_or_else(|| cluster_of(&settings.database_url()));
    let prefix = format!("twin:c:{name}");
    let config = MembershipConfig { prefix, node: node.clone(), address, lease: settings.cluster_lease };
    let membership = Membership::join(client.clone(), config).await.context("cannot join the cluster in Redis")?;
    tracing::info!(node, nodes = ?membership.current().nodes, "joined the cluster");
    Ok(Some(RedisCluster::new(client, membership)))
}

/// Runs this node's part of the cluster: the heartbeat, the stream reader and sender, and a
/// rebalance each time the live set changes.
pub fn start(cluster: &Arc<RedisCluster>, engine: &EngineHandle) -> Vec<tokio::task::JoinHandle<()>> {
    let membership = cluster.membership().clone();
    let mut changes = membership.subscribe();
    let rebalancing = engine.clone();
    let rebalance = tokio::spawn(async move {
        rebalancing.rebalance();
        while changes.changed().await.is_ok() {
            let handed = rebalancing.rebalance();
            if handed > 0 {
                tracing::info!(conversations = handed, "cluster: handing conversations over to their new owners");
            }
        }
    });
    let inbound: Arc<dyn Inbound> = Arc::new(EngineInbound(engine.clone()));
    vec![
        tokio::spawn(membership.run()),
        tokio::spawn(cluster.clone().run_sender()),
        tokio::spawn(cluster.clone().run_reader(inbound)),
        rebalance,
    ]
}

/// Leaves the cluster and hands every conversation over before the engine shuts down, so the
/// other nodes take over at once instead of after the lease.
pub async fn leave(cluster: &RedisCluster, engine: &EngineHandle, grace: Duration) {
    cluster.membership().leave().await;
    let handed = engine.rebalance();
    let started = tokio::time::Instant::now();
    while engine.live_conversations() > 0 && started.elapsed() < grace {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::info!(conversations = handed, "left the cluster");
}

struct EngineInbound(EngineHandle);

#[async_trait::async_trait]
impl Inbound for EngineInbound {
    async fn receive(&self, item: Forward) {
        self.0.receive(item).await;
    }
}

/// The cluster a database URL makes: the same URL, the same cluster.
fn cluster_of(database_url: &str) -> String {
    let digest = Sha256::digest(database_url.as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

fn generated_node_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let host = if host.is_empty() { "twin".to_owned() } else { host };
    format!("{host}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}
