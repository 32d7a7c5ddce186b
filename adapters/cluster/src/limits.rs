//! Rate limits by GCRA (the generic cell rate algorithm): one number per key, the theoretical
//! arrival time (TAT) of the next request. A rate of `n` per period with a burst of `b` lets `b`
//! requests through at once, then one every `period / n`.
//!
//! [`LocalLimiter`] keeps the TATs in this process; [`RedisLimiter`] keeps them in Redis (one Lua
//! script per check, timed by the Redis server's clock so every node agrees) and falls back to its
//! own local limiter while Redis does not answer: limits then hold per node, and no request is
//! refused because Redis is down.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use fred::prelude::Error as RedisError;
use fred::types::scripts::Script;

/// Requests allowed per period, with a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Requests per period.
    pub count: u32,
    pub period: Duration,
    /// How many may come at once (at least 1).
    pub burst: u32,
}

impl Rate {
    /// The time one request "costs": `period / count`, in microseconds.
    fn emission_micros(&self) -> u64 {
        let micros = u64::try_from(self.period.as_micros()).unwrap_or(u64::MAX);
        (micros / u64::from(self.count.max(1))).max(1)
    }

    /// How far ahead of now the TAT may run before requests are refused.
    fn tolerance_micros(&self) -> u64 {
        self.emission_micros().saturating_mul(u64::from(self.burst.max(1)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a rate: write it as `20/s`, `600/min` or `1000/h`, optionally with a burst: `20/s burst 40`")]
pub struct RateError(String);

impl FromStr for Rate {
    type Err = RateError;

    /// `20/s`, `600/min`, `1000/h`, with an optional ` burst N` (default: the count).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || RateError(text.to_owned());
        let (rate, burst) = match text.split_once("burst") {
            Some((rate, burst)) => (rate.trim(), Some(burst.trim().parse::<u32>().map_err(|_| error())?)),
            None => (text.trim(), None),
        };
        let (count, unit) = rate.split_once('/').ok_or_else(error)?;
        let count: u32 = count.trim().parse().map_err(|_| error())?;
        let period = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(error()),
        };
        let burst = burst.unwrap_or(count);
        if count == 0 || burst == 0 {
            return Err(error());
        }
        Ok(Rate { count, period, burst })
    }
}

/// What a check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Refused; a request after `retry_after` would pass.
    Limited {
        retry_after: Duration,
    },
}

/// One GCRA step: the new TAT when allowed, or how long to wait.
fn gcra(tat: u64, now: u64, rate: &Rate) -> Result<u64, Duration> {
    let next = tat.max(now) + rate.emission_micros();
    let ahead = next - now;
    if ahead > rate.tolerance_micros() { Err(Duration::from_micros(ahead - rate.tolerance_micros())) } else { Ok(next) }
}

#[async_trait::async_trait]
pub trait Limiter: Send + Sync + 'static {
    /// Counts one request against `key` at `rate`.
    async fn check(&self, key: &str, rate: Rate) -> Decision;
}

/// The limits of one process.
#[derive(Debug)]
pub struct LocalLimiter {
    epoch: Instant,
    tats: DashMap<String, u64>,
    checks: AtomicU64,
}

/// Keys are swept of expired TATs once per this many checks, so memory follows the active keys.
const SWEEP_EVERY: u64 = 4096;

impl Default for LocalLimiter {
    fn default() -> Self {
        Self { epoch: Instant::now(), tats: DashMap::new(), checks: AtomicU64::new(0) }
    }
}

impl LocalLimiter {
    fn now_micros(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The check itself, at a given time (tests drive the time).
    pub fn check_at(&self, key: &str, rate: Rate, now_micros: u64) -> Decision {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.tats.retain(|_, tat| *tat > now_micros);
        }
        let mut entry = self.tats.entry(key.to_owned()).or_insert(0);
        match gcra(*entry, now_micros, &rate) {
            Ok(next) => {
                *entry = next;
                Decision::Allowed
            }
            Err(retry_after) => Decision::Limited { retry_after },
        }
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.tats.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tats.is_empty()
    }
}

#[async_trait::async_trait]
impl Limiter for LocalLimiter {
    async fn check(&self, key: &str, rate: Rate) -> Decision {
        self.check_at(key, rate, self.now_micros())
    }
}

/// GCRA in Redis, atomically, with the server's clock. Returns 0 when allowed, else the wait in
/// microseconds. The key expires when its TAT has passed, so idle keys cost nothing.
const GCRA_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local emission = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local nxt = tat + emission
local ahead = nxt - now
if ahead > tolerance then
  return ahead - tolerance
end
redis.call('SET', KEYS[1], string.format('%d', nxt), 'PX', math.ceil(ahead / 1000))
return 0
";

/// Rate limits shared by every node through Redis.
pub struct RedisLimiter {
    client: fred::prelude::Client,
    script: Script,
    fallback: LocalLimiter,
    failing: Arc<AtomicU64>,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter").finish_non_exhaustive()
    }
}

/// How long a limit check may wait for Redis before the local limiter decides instead.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

impl RedisLimiter {
    /// Connects to `url` (`redis://…`). Fails when the URL is invalid or Redis does not answer at
    /// start; later outages fall back to local limits.
    pub async fn connect(url: &str) -> Result<Self, RedisError> {
        let client = crate::redis::connect(url, REDIS_TIMEOUT, Duration::from_secs(5)).await?;
        Ok(Self {
            client,
            script: Script::from_lua(GCRA_LUA),
            fallback: LocalLimiter::default(),
            failing: Arc::new(AtomicU64::new(0)),
        })
    }

    async fn check_redis(&self, key: &str, rate: &Rate) -> Result<Decision, RedisError> {
        let wait: i64 = self
            .script
            .evalsha_with_reload(
                &self.client,
                key.to_owned(),
                vec![rate.emission_micros().to_string(), rate.tolerance_micros().to_string()],
            )
            .await?;
        Ok(match u64::try_from(wait) {
            Ok(0) | Err(_) => Decision::Allowed,
            Ok(micros) => Decision::Limited { retry_after: Duration::from_micros(micros) },
        })
    }
}

#[async_trait::async_trait]
impl Limiter for RedisLimiter {
    async fn check(&self, key: &str, rate: Rate) -> Decision {
        match self.check_redis(key, &rate).await {
            Ok(decision) => {
                if self.failing.swap(0, Ordering::Relaxed) > 0 {
                    tracing::info!("rate limits: Redis answers again; limits are shared by all nodes");
                }
                decision
            }
            Err(error) => {
                metrics::counter!("twin_rate_limit_redis_errors_total").increment(1);
                if self.failing.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!(%error, "rate limits: Redis does not answer; each node limits on its own until it does");
                }
                self.fallback.check(key, rate).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(text: &str) -> Rate {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn rates_parse_with_and_without_burst() {
        assert_eq!(rate("20/s"), Rate { count: 20, period: Duration::from_secs(1), burst: 20 });
        assert_eq!(rate("600/min burst 50"), Rate { count: 600, period: Duration::from_secs(60), burst: 50 });
        assert_eq!(rate(" 5 / h "), Rate { count: 5, period: Duration::from_secs(3600), burst: 5 });
        for bad in ["", "20", "20/d", "0/s", "x/s", "5/s burst 0", "5/s burst"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn a_burst_passes_then_one_per_interval() {
        let limiter = LocalLimiter::default();
        let r = rate("10/s burst 3"); // one per 100 ms
        let t0 = 1_000_000;
        for _ in 0..3 {
            assert_eq!(limiter.check_at("k", r, t0), Decision::Allowed);
        }
        let Decision::Limited { retry_after } = limiter.check_at("k", r, t0) else { panic!("the fourth passed") };
        assert_eq!(retry_after, Duration::from_millis(100));
        assert_eq!(limiter.check_at("k", r, t0 + 99_000), Decision::Limited { retry_after: Duration::from_millis(1) });
        assert_eq!(limiter.check_at("k", r, t0 + 100_000), Decision::Allowed);
        // Another key has its own budget.
        assert_eq!(limiter.check_at("other", r, t0), Decision::Allowed);
    }

    #[test]
    fn a_refused_request_costs_nothing() {
        let limiter = LocalLimiter::default();
        let r = rate("1/s burst 1");
        assert_eq!(limiter.check_at("k", r, 0), Decision::Allowed);
        for _ in 0..100 {
            assert!(matches!(limiter.check_at("k", r, 10), Decision::Limited { .. }));
        }
        assert_eq!(limiter.check_at("k", r, 1_000_000), Decision::Allowed);
    }

    #[test]
    fn an_idle_key_regains_its_whole_burst() {
        let limiter = LocalLimiter::default();
        let r = rate("2/s burst 4");
        for _ in 0..4 {
            assert_eq!(limiter.check_at("k", r, 0), Decision::Allowed);
        }
        let later = 10_000_000;
        for _ in 0..4 {
            assert_eq!(limiter.check_at("k", r, later), Decision::Allowed);
        }
        assert!(matches!(limiter.check_at("k", r, later), Decision::Limited { .. }));
    }
}
