//! A circuit breaker per model provider: after a run of failures the adapter stops calling the
//! provider for a cool-down and fails fast, then lets one probe through to see whether it is back.
//! Used by [`crate::OpenAiChat`]; time is passed in, so tests drive it with made-up instants.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the breaker lets through. Reported for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; `failures` consecutive ones have failed.
    Closed { failures: u32 },
    /// Calls fail fast until `until`.
    Open { until: Instant },
    /// One probe is in flight; other calls fail fast until it reports back, or until `until` if it
    /// never does (its caller dropped the reply).
    HalfOpen { until: Instant },
}

/// Counts consecutive failures of one provider. A failure is the provider not serving (connect
/// errors, timeouts, 5xx, a reply cut short); an answer of any kind, a refusal or a rate limit
/// included, shows it is up and counts as a success.
#[derive(Debug)]
pub struct CircuitBreaker {
    /// Consecutive failures that open the circuit (at least 1).
    threshold: u32,
    /// How long the circuit stays open before a probe. Also how long a probe that never reports
    /// back (its caller dropped the reply) blocks the next one.
    cool_down: Duration,
    state: Mutex<BreakerState>,
}

impl CircuitBreaker {
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        Self { threshold: threshold.max(1), cool_down, state: Mutex::new(BreakerState::Closed { failures: 0 }) }
    }

    pub fn state(&self) -> BreakerState {
        *self.lock()
    }

    /// Whether a call may go out at `now`. `Err` carries how long until the next probe may.
    /// When the cool-down has passed, the caller that gets `Ok` is the probe.
    pub fn try_acquire(&self, now: Instant) -> Result<(), Duration> {
        let mut state = self.lock();
        match *state {
            BreakerState::Closed { .. } => Ok(()),
            BreakerState::Open { until } | BreakerState::HalfOpen { until } if now < until => Err(until - now),
            BreakerState::Open { .. } | BreakerState::HalfOpen { .. } => {
                *state = BreakerState::HalfOpen { until: now + self.cool_down };
                Ok(())
            }
        }
    }

    /// The provider served a call: the circuit closes.
    pub fn record_success(&self) {
        *self.lock() = BreakerState::Closed { failures: 0 };
    }

    /// The provider failed a call at `now`. Opens the circuit at the threshold, or again at once
    /// when the probe failed.
    pub fn record_failure(&self, now: Instant) {
        let mut state = self.lock();
        *state = match *state {
            BreakerState::Closed { failures } if failures + 1 < self.threshold => {
                BreakerState::Closed { failures: failures + 1 }
            }
            _ => BreakerState::Open { until: now + self.cool_down },
        };
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        // A panic while holding this lock cannot leave the state half-written (plain copies), so a
        // poisoned lock is still sound to use.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self::new(5, Duration::from_secs(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL: Duration = Duration::from_secs(30);

    #[test]
    fn the_circuit_opens_after_the_threshold_of_consecutive_failures() {
        let breaker = CircuitBreaker::new(3, COOL);
        let t0 = Instant::now();
        for _ in 0..2 {
            assert!(breaker.try_acquire(t0).is_ok());
            breaker.record_failure(t0);
        }
        assert_eq!(breaker.state(), BreakerState::Closed { failures: 2 });
        breaker.record_failure(t0);
        assert_eq!(breaker.state(), BreakerState::Open { until: t0 + COOL });
        assert_eq!(breaker.try_acquire(t0 + Duration::from_secs(10)), Err(Duration::from_secs(20)));
    }

    #[test]
    fn a_success_resets_the_count() {
        let breaker = CircuitBreaker::new(3, COOL);
        let t0 = Instant::now();
        breaker.record_failure(t0);
        breaker.record_failure(t0);
        breaker.record_success();
        breaker.record_failure(t0);
        breaker.record_failure(t0);
        assert_eq!(breaker.state(), BreakerState::Closed { failures: 2 });
        assert!(breaker.try_acquire(t0).is_ok());
    }

    #[test]
    fn after_the_cool_down_one_probe_goes_through_and_its_success_closes_the_circuit() {
        let breaker = CircuitBreaker::new(1, COOL);
        let t0 = Instant::now();
        breaker.record_failure(t0);
        let later = t0 + COOL;
        assert!(breaker.try_acquire(later).is_ok(), "the probe");
        assert!(breaker.try_acquire(later + Duration::from_secs(1)).is_err(), "only one probe at a time");
        breaker.record_success();
        assert_eq!(breaker.state(), BreakerState::Closed { failures: 0 });
        assert!(breaker.try_acquire(later + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn a_failed_probe_opens_the_circuit_for_another_cool_down() {
        let breaker = CircuitBreaker::new(5, COOL);
        let t0 = Instant::now();
        for _ in 0..5 {
            breaker.record_failure(t0);
        }
        let probe_at = t0 + COOL + Duration::from_secs(1);
        assert!(breaker.try_acquire(probe_at).is_ok());
        breaker.record_failure(probe_at);
        assert_eq!(breaker.state(), BreakerState::Open { until: probe_at + COOL });
        assert!(breaker.try_acquire(probe_at + Duration::from_secs(29)).is_err());
    }

    #[test]
    fn a_probe_that_never_reports_back_is_replaced_after_a_cool_down() {
        let breaker = CircuitBreaker::new(1, COOL);
        let t0 = Instant::now();
        breaker.record_failure(t0);
        assert!(breaker.try_acquire(t0 + COOL).is_ok());
        assert!(breaker.try_acquire(t0 + COOL + COOL - Duration::from_secs(1)).is_err());
        assert!(breaker.try_acquire(t0 + COOL + COOL).is_ok(), "a new probe");
    }
}
