//! Exponential back-off with a cap and jitter: [`BackoffPolicy`], [`Backoff`] and
//! the saver's [`RetryPolicy`].

use std::time::Duration;

/// How long to wait between attempts: exponential, capped, with jitter.
///
/// The `n`-th delay (from 0) is `min(initial · multiplierⁿ, max)`, then reduced by a
/// random fraction of at most `jitter`: with `jitter = 0.5` a 100 ms step waits
/// between 50 and 100 ms. Jitter spreads retries of many workers so they do not hit
/// a recovering database in lock-step.
///
/// ```
/// use std::time::Duration;
/// use pjp_core::BackoffPolicy;
///
/// let policy = BackoffPolicy::new(Duration::from_millis(10), Duration::from_secs(1))
///     .multiplier(2.0)
///     .jitter(0.0);
/// assert_eq!(policy.delay(0, 0), Duration::from_millis(10));
/// assert_eq!(policy.delay(3, 0), Duration::from_millis(80));
/// assert_eq!(policy.delay(20, 0), Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    initial: Duration,
    max: Duration,
    multiplier: f64,
    jitter: f64,
}

impl BackoffPolicy {
    /// A policy starting at `initial` and capped at `max`, doubling, with 50 % jitter.
    /// `max` below `initial` is raised to `initial`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            multiplier: 2.0,
            jitter: 0.5,
        }
    }

    /// The growth factor per attempt (clamped to at least 1).
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = if multiplier.is_finite() {
            multiplier.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// The largest fraction of a delay that jitter may remove, clamped to `0..=1`.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// The first delay.
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The cap.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The delay before retry number `attempt` (0-based), given a uniform random
    /// `u64` for the jitter.
    pub fn delay(&self, attempt: u32, random: u64) -> Duration {
        let cap = self.max.as_secs_f64();
        let grown = self.initial.as_secs_f64() * self.multiplier.powi(attempt.min(1_000) as i32);
        let base = if grown.is_finite() {
            grown.min(cap)
        } else {
            cap
        };
        let unit = random_fraction(random);
        // A cap too large for a `Duration` of f64 seconds saturates.
        Duration::try_from_secs_f64(base * (1.0 - self.jitter * unit)).unwrap_or(self.max)
    }
}

/// A uniform fraction in `[0, 1)` from a random `u64`: its top 53 bits, the
/// precision of an `f64`. The one place jitter, fault rates and simulated
/// latency turn random bits into a probability.
///
/// ```
/// use pjp_core::random_fraction;
///
/// assert_eq!(random_fraction(0), 0.0);
/// assert!(random_fraction(u64::MAX) < 1.0);
/// assert_eq!(random_fraction(1 << 63), 0.5);
/// ```
pub fn random_fraction(random: u64) -> f64 {
    (random >> 11) as f64 / (1u64 << 53) as f64
}

impl Default for BackoffPolicy {
    /// 100 ms doubling to 10 s, 50 % jitter.
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(10))
    }
}

/// The state of one back-off sequence: which attempt comes next.
///
/// ```
/// use std::time::Duration;
/// use pjp_core::{Backoff, BackoffPolicy};
///
/// let mut backoff = Backoff::new(BackoffPolicy::new(Duration::from_millis(1), Duration::from_millis(4)).jitter(0.0));
/// assert_eq!(backoff.next_delay(0), Duration::from_millis(1));
/// assert_eq!(backoff.next_delay(0), Duration::from_millis(2));
/// backoff.reset();
/// assert_eq!(backoff.next_delay(0), Duration::from_millis(1));
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    attempt: u32,
}

impl Backoff {
    /// Starts a sequence.
    pub fn new(policy: BackoffPolicy) -> Self {
        Self { policy, attempt: 0 }
    }

    /// The next delay; advances the sequence.
    pub fn next_delay(&mut self, random: u64) -> Duration {
        let delay = self.policy.delay(self.attempt, random);
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// Starts over (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// How many delays have been taken since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// How the runner retries a failed save: up to `max_attempts` tries in all, with
/// back-off between them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    max_attempts: u32,
    backoff: BackoffPolicy,
}

impl RetryPolicy {
    /// `max_attempts` tries in all (at least 1), waiting per `backoff` in between.
    pub fn new(max_attempts: u32, backoff: BackoffPolicy) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            backoff,
        }
    }

    /// Tries in all, including the first.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The back-off between tries.
    pub fn backoff(&self) -> BackoffPolicy {
        self.backoff
    }
}

impl RetryPolicy {
    /// The shortest time the retries can span (every delay at its most
    /// jittered): how long an outage of the backend this policy surely rides out.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pjp_core::RetryPolicy;
    ///
    /// assert!(RetryPolicy::default().min_span() >= Duration::from_secs(60));
    /// ```
    pub fn min_span(&self) -> Duration {
        (0..self.max_attempts.saturating_sub(1))
            .map(|n| self.backoff.delay(n, u64::MAX))
            .fold(Duration::ZERO, Duration::saturating_add)
    }
}

impl Default for RetryPolicy {
    /// 30 tries, 100 ms doubling to 10 s, 50 % jitter: the retries span at
    /// least 60 s (about three minutes on average), so a save rides out a
    /// database failover or restart.
    fn default() -> Self {
        Self::new(
            30,
            BackoffPolicy::new(Duration::from_millis(100), Duration::from_secs(10)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_then_caps() {
        let p =
            BackoffPolicy::new(Duration::from_millis(10), Duration::from_millis(100)).jitter(0.0);
        let delays: Vec<_> = (0..6).map(|n| p.delay(n, 12345).as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 100, 100]);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let p = BackoffPolicy::new(Duration::from_millis(100), Duration::from_secs(1)).jitter(0.25);
        assert_eq!(p.delay(0, 0), Duration::from_millis(100));
        let lowest = p.delay(0, u64::MAX);
        assert!(lowest >= Duration::from_millis(75) && lowest < Duration::from_micros(75_001));
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for attempt in 0..8 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let base = p.delay(attempt, 0);
            let d = p.delay(attempt, state);
            assert!(
                d <= base && d.as_secs_f64() >= base.as_secs_f64() * 0.75 - 1e-9,
                "{d:?} vs {base:?}"
            );
        }
    }

    #[test]
    fn huge_attempts_do_not_overflow() {
        let p =
            BackoffPolicy::new(Duration::from_millis(10), Duration::from_secs(30)).multiplier(10.0);
        assert_eq!(p.delay(u32::MAX, 0), Duration::from_secs(30));
    }

    #[test]
    fn an_unbounded_cap_does_not_panic() {
        let p = BackoffPolicy::new(Duration::from_millis(1), Duration::MAX);
        assert_eq!(p.delay(0, 0), Duration::from_millis(1));
        assert!(p.delay(2_000, 0) > Duration::from_secs(3600));
        assert!(p.delay(u32::MAX, u64::MAX) > Duration::ZERO);
    }

    #[test]
    fn the_default_save_retry_rides_out_a_minute() {
        assert!(RetryPolicy::default().min_span() >= Duration::from_secs(60));
    }

    #[test]
    fn bad_parameters_are_clamped() {
        let p = BackoffPolicy::new(Duration::from_secs(2), Duration::from_secs(1))
            .multiplier(f64::NAN)
            .jitter(7.0);
        assert_eq!(p.max(), Duration::from_secs(2));
        assert_eq!(p.delay(5, 0), Duration::from_secs(2));
        assert_eq!(p.delay(0, u64::MAX).as_millis(), 0);
        assert_eq!(RetryPolicy::new(0, p).max_attempts(), 1);
    }
}
