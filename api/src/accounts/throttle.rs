//! Login throttling: after a few free failures, each further attempt must wait a delay that doubles
//! with every failure, up to a cap. An attempt inside the delay is answered 429 without checking the
//! password. Never a hard lock: the delay only grows to the cap, so an attacker can slow an
//! account down but never lock its owner out.
//!
//! Failures are counted per client address and per account. The address allows fewer free
//! failures than the account, so one address spraying one account is slowed before the account
//! is, and the owner (elsewhere, with the right password) meets only the account's shorter delay.

use std::time::Duration;

use twin_engine::Timestamp;

/// Free failures per account before delays start.
pub const ACCOUNT_FREE_FAILURES: u32 = 5;
/// Free failures per client address before delays start (stricter than per account).
pub const ADDRESS_FREE_FAILURES: u32 = 3;
/// No delay grows beyond this.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// Counts whose last failure is older than this start over.
pub const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// The first delay (`TWIN_LOGIN_THROTTLE_BASE_MS`); each further failure doubles it.
    pub base: Duration,
}

impl ThrottlePolicy {
    /// How long an attempt at `now` must still wait after `failures` failures of which the last
    /// was at `last_at`, with `free` failures allowed; `None` when it may go ahead.
    pub fn wait(&self, failures: u32, last_at: Option<Timestamp>, free: u32, now: Timestamp) -> Option<Duration> {
        let last_at = last_at?;
        let elapsed = Duration::from_millis(u64::try_from(now.millis_since(last_at)).unwrap_or(0));
        if elapsed >= FORGET_AFTER || failures < free {
            return None;
        }
        let delay = self.delay(failures - free);
        delay.checked_sub(elapsed).filter(|left| !left.is_zero())
    }

    /// The delay after `extra` failures beyond the free ones: base, 2·base, 4·base, … up to the cap.
    pub fn delay(&self, extra: u32) -> Duration {
        let factor = 1u32.checked_shl(extra.min(30)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(MAX_DELAY)
    }

    /// The time before which a stored count is forgotten.
    pub fn forget_before(now: Timestamp) -> Timestamp {
        now.plus_millis(-i64::try_from(FORGET_AFTER.as_millis()).unwrap_or(i64::MAX))
    }
}

/// `Retry-After` in whole seconds, rounded up (never 0).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_millis().div_ceil(1000).max(1).try_into().unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: ThrottlePolicy = ThrottlePolicy { base: Duration::from_secs(1) };

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millis(1_000_000_000 + ms)
    }

    #[test]
    fn delays_start_after_the_free_failures_double_and_stop_at_the_cap() {
        assert_eq!(P.wait(2, Some(t(0)), 3, t(0)), None);
        assert_eq!(P.wait(3, Some(t(0)), 3, t(0)), Some(Duration::from_secs(1)));
        assert_eq!(P.wait(4, Some(t(0)), 3, t(500)), Some(Duration::from_millis(1500)));
        assert_eq!(P.wait(4, Some(t(0)), 3, t(2000)), None);
        assert_eq!(P.wait(60, Some(t(0)), 3, t(0)), Some(MAX_DELAY));
        assert_eq!(P.wait(60, Some(t(0)), 3, t(901_000)), None, "never longer than the cap");
        assert_eq!(P.wait(9, None, 3, t(0)), None);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
    }
}
