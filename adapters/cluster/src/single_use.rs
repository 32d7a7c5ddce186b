//! Values that may be taken once, within a lifetime: the widget's chat tickets. A value is put
//! under a fresh key (refused when the key is taken) and taken by exactly one caller, however many
//! ask at once; after its lifetime nobody gets it.
//!
//! [`LocalSingleUse`] keeps them in this process; [`RedisSingleUse`] in Redis (`SET … NX PX` and
//! `GETDEL`), so a value put on one node is taken on any other. Unlike the rate limits, the Redis
//! store has no local fallback: a value put only here could not be taken on another node, so an
//! unreachable Redis is an error the caller reports (503), never a silent split.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use fred::prelude::{Error as RedisError, KeysInterface};
use fred::types::{Expiration, SetOptions};

/// Redis did not answer (or answered with an error).
#[derive(Debug, thiserror::Error)]
#[error("the single-use store is unavailable: {0}")]
pub struct SingleUseError(#[source] RedisError);

#[async_trait::async_trait]
pub trait SingleUseStore: Send + Sync + 'static {
    /// Stores `value` under `key` for `ttl`; `false` (and nothing changed) when the key is taken.
    async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, SingleUseError>;

    /// The value under `key`, removed in the same step; `None` when it was never put, was taken
    /// already or has expired.
    async fn take(&self, key: &str) -> Result<Option<String>, SingleUseError>;
}

/// The values of one process.
#[derive(Debug, Default)]
pub struct LocalSingleUse {
    values: DashMap<String, (String, Instant)>,
    puts: AtomicU64,
}

/// Expired values are swept once per this many puts, so memory follows the live values.
const SWEEP_EVERY: u64 = 1024;

impl LocalSingleUse {
    /// How many values are held (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

#[async_trait::async_trait]
impl SingleUseStore for LocalSingleUse {
    async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, SingleUseError> {
        let now = Instant::now();
        if self.puts.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.values.retain(|_, (_, expires)| *expires > now);
        }
        let expires = now + ttl;
        match self.values.entry(key.to_owned()) {
            Entry::Occupied(mut held) if held.get().1 <= now => {
                held.insert((value.to_owned(), expires));
                Ok(true)
            }
            Entry::Occupied(_) => Ok(false),
            Entry::Vacant(vacant) => {
                vacant.insert((value.to_owned(), expires));
                Ok(true)
            }
        }
    }

    async fn take(&self, key: &str) -> Result<Option<String>, SingleUseError> {
        Ok(self.values.remove(key).and_then(|(_, (value, expires))| (expires > Instant::now()).then_some(value)))
    }
}

/// Single-use values shared by every node through Redis.
pub struct RedisSingleUse {
    client: fred::prelude::Client,
}

impl std::fmt::Debug for RedisSingleUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSingleUse").finish_non_exhaustive()
    }
}

/// How long one command may wait for Redis before the caller is told it is unavailable.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

impl RedisSingleUse {
    /// Connects to `url` (`redis://…`). Fails when the URL is invalid or Redis does not answer at
    /// start; later outages fail the calls made during them.
    pub async fn connect(url: &str) -> Result<Self, SingleUseError> {
        let client = crate::redis::connect(url, REDIS_TIMEOUT, Duration::from_secs(5)).await.map_err(SingleUseError)?;
        Ok(Self { client })
    }
}

#[async_trait::async_trait]
impl SingleUseStore for RedisSingleUse {
    async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, SingleUseError> {
        let millis = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        // `SET … NX` answers OK when it stored the value and nil when the key was taken.
        let stored: Option<String> = self
            .client
            .set(key, value, Some(Expiration::PX(millis)), Some(SetOptions::NX), false)
            .await
            .map_err(SingleUseError)?;
        Ok(stored.is_some())
    }

    async fn take(&self, key: &str) -> Result<Option<String>, SingleUseError> {
        self.client.getdel(key).await.map_err(SingleUseError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_value_is_taken_once() {
        let store = LocalSingleUse::default();
        assert!(store.put("k", "v", Duration::from_secs(60)).await.unwrap_or(false));
        assert!(!store.put("k", "other", Duration::from_secs(60)).await.unwrap_or(true), "the key is taken");
        assert_eq!(store.take("k").await.ok().flatten().as_deref(), Some("v"));
        assert_eq!(store.take("k").await.ok().flatten(), None);
    }

    #[tokio::test]
    async fn an_expired_value_is_gone_and_its_key_free_again() {
        let store = LocalSingleUse::default();
        assert!(store.put("k", "v", Duration::from_millis(1)).await.unwrap_or(false));
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(store.put("k", "w", Duration::from_millis(1)).await.unwrap_or(false), "an expired key is free");
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(store.take("k").await.ok().flatten(), None);
        assert!(store.is_empty());
    }
}
