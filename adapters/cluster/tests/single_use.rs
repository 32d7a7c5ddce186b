//! The single-use store's contract, run against both implementations: the in-process one and the
//! Redis one against the Redis server on this machine (`TWIN_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`). Two Redis clients stand for two nodes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use twin_cluster::{LocalSingleUse, RedisSingleUse, SingleUseStore};

fn redis_url() -> String {
    std::env::var("TWIN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key no earlier run has used.
fn unique_key(name: &str) -> String {
    format!("twin:test:once:{}:{}", uuid_like(), name)
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

async fn redis() -> Arc<dyn SingleUseStore> {
    Arc::new(RedisSingleUse::connect(&redis_url()).await.expect("Redis answers"))
}

async fn a_value_is_taken_once_and_only_by_one(store: Arc<dyn SingleUseStore>) {
    let key = unique_key("once");
    assert!(store.put(&key, "v1", Duration::from_secs(60)).await.unwrap());
    assert!(!store.put(&key, "v2", Duration::from_secs(60)).await.unwrap(), "a taken key is refused");
    // Many takers at once: exactly one gets the value, and it is the first one put.
    let takers: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            let key = key.clone();
            tokio::spawn(async move { store.take(&key).await.unwrap() })
        })
        .collect();
    let mut got = Vec::new();
    for taker in takers {
        got.extend(taker.await.unwrap());
    }
    assert_eq!(got, vec!["v1".to_owned()]);
    assert_eq!(store.take(&key).await.unwrap(), None);
    assert_eq!(store.take(&unique_key("never-put")).await.unwrap(), None);
}

async fn a_value_expires(store: Arc<dyn SingleUseStore>) {
    let key = unique_key("expiring");
    assert!(store.put(&key, "v", Duration::from_millis(50)).await.unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    // Poll the key's absence through a second key put with the same lifetime, so the value under
    // test is not taken by looking.
    let probe = unique_key("probe");
    assert!(store.put(&probe, "p", Duration::from_millis(50)).await.unwrap());
    while !store.put(&probe, "p", Duration::from_millis(50)).await.unwrap() {
        assert!(tokio::time::Instant::now() < deadline, "the probe never expired");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.take(&key).await.unwrap(), None, "the value outlived its lifetime");
}

#[tokio::test]
async fn local_a_value_is_taken_once_and_only_by_one() {
    a_value_is_taken_once_and_only_by_one(Arc::new(LocalSingleUse::default())).await;
}

#[tokio::test]
async fn redis_a_value_is_taken_once_and_only_by_one() {
    a_value_is_taken_once_and_only_by_one(redis().await).await;
}

#[tokio::test]
async fn local_a_value_expires() {
    a_value_expires(Arc::new(LocalSingleUse::default())).await;
}

#[tokio::test]
async fn redis_a_value_expires() {
    a_value_expires(redis().await).await;
}

#[tokio::test]
async fn a_value_put_on_one_node_is_taken_on_another() {
    let node_a = redis().await;
    let node_b = redis().await;
    let key = unique_key("shared");
    assert!(node_a.put(&key, "ticket", Duration::from_secs(60)).await.unwrap());
    assert!(!node_b.put(&key, "other", Duration::from_secs(60)).await.unwrap());
    assert_eq!(node_b.take(&key).await.unwrap().as_deref(), Some("ticket"));
    assert_eq!(node_a.take(&key).await.unwrap(), None);
}

#[tokio::test]
async fn an_unreachable_redis_is_refused_at_start() {
    assert!(RedisSingleUse::connect("redis://127.0.0.1:1").await.is_err());
}
