//! The Redis limiter against the Redis server on this machine (`TWIN_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`): two limiters (two nodes) share one budget; an unreachable Redis falls
//! back to local limits instead of refusing everything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use twin_cluster::{Decision, Limiter, Rate, RedisLimiter};

fn redis_url() -> String {
    std::env::var("TWIN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn unique_key() -> String {
    format!("twin:test:rl:{}", std::process::id()) + &format!(":{}", rand_suffix())
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

#[tokio::test]
async fn two_nodes_share_one_budget() {
    let node_a = RedisLimiter::connect(&redis_url()).await.expect("Redis answers");
    let node_b = RedisLimiter::connect(&redis_url()).await.expect("Redis answers");
    let rate = Rate { count: 1, period: Duration::from_secs(60), burst: 4 };
    let key = unique_key();
    let mut allowed = 0;
    for i in 0..10 {
        let node = if i % 2 == 0 { &node_a } else { &node_b };
        if node.check(&key, rate).await == Decision::Allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 4, "the burst is shared across both nodes");
    let Decision::Limited { retry_after } = node_a.check(&key, rate).await else { panic!("over budget") };
    assert!(retry_after > Duration::from_secs(50) && retry_after <= Duration::from_secs(60), "{retry_after:?}");
}

#[tokio::test]
async fn the_key_expires_when_its_budget_is_whole_again() {
    let node = RedisLimiter::connect(&redis_url()).await.expect("Redis answers");
    let key = unique_key();
    let rate = Rate { count: 10, period: Duration::from_secs(1), burst: 1 };
    assert_eq!(node.check(&key, rate).await, Decision::Allowed);
    assert!(matches!(node.check(&key, rate).await, Decision::Limited { .. }));
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(node.check(&key, rate).await, Decision::Allowed);
}

#[tokio::test]
async fn an_unreachable_redis_is_refused_at_start() {
    // Port 1 on loopback: nothing listens there.
    assert!(RedisLimiter::connect("redis://127.0.0.1:1").await.is_err());
}

/// A loopback TCP proxy to Redis that the test can cut (a Redis outage, as a node sees it).
struct CuttableProxy {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl CuttableProxy {
    async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = upstream.to_owned();
        let links = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let held = links.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                held.lock().unwrap().push(link);
            }
        });
        Self { addr, task, links }
    }

    /// Stops accepting and drops every open link.
    fn cut(&self) {
        self.task.abort();
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }
}

#[tokio::test]
async fn a_redis_outage_falls_back_to_local_limits() {
    let upstream = redis_url().trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let proxy = CuttableProxy::start(&upstream).await;
    let node =
        RedisLimiter::connect(&format!("redis://{}", proxy.addr)).await.expect("Redis answers through the proxy");
    let rate = Rate { count: 1, period: Duration::from_secs(60), burst: 2 };
    let key = unique_key();
    assert_eq!(node.check(&key, rate).await, Decision::Allowed);

    proxy.cut();
    // Redis is gone: the node limits on its own (a fresh local budget of 2), it does not refuse
    // everyone and it does not let everyone through.
    let decisions = [node.check(&key, rate).await, node.check(&key, rate).await, node.check(&key, rate).await];
    assert_eq!(&decisions[..2], &[Decision::Allowed, Decision::Allowed]);
    assert!(matches!(decisions[2], Decision::Limited { .. }), "{decisions:?}");
}
