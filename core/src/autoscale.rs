//! How many workers a backlog needs: a pure planner for autoscalers.
//!
//! ```text
//! desired = clamp(ceil(work × p95 duration / drain window / jobs per worker), min, max)
//! ```
//!
//! `work` is the jobs queued and running of one kind (and resource class);
//! the p95 duration is how long such jobs have been running lately. A
//! durable queue reports both (`pjp_postgres::PgQueue::load`, planned by
//! `pjp_postgres::autoscale::plan`); the fleet simulation replays the plan.
//!
//! ```
//! use std::time::Duration;
//! use pjp_core::autoscale::{ScalePolicy, desired_workers};
//!
//! let policy = ScalePolicy::new(Duration::from_secs(600)).max(50);
//! // 1,000 proofs of 30 s each, drained in 10 minutes: 50 workers.
//! assert_eq!(desired_workers(1_000, Some(Duration::from_secs(30)), &policy), 50);
//! // Capped by `max`; no work, `min` (0 by default).
//! assert_eq!(desired_workers(100_000, Some(Duration::from_secs(30)), &policy), 50);
//! assert_eq!(desired_workers(0, None, &policy), 0);
//! ```

use std::time::Duration;

/// What the planner aims for and within which bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScalePolicy {
    /// The backlog should be done within this long.
    pub drain_window: Duration,
    /// Never fewer workers than this.
    pub min: u32,
    /// Never more workers than this.
    pub max: u32,
    /// Jobs one worker runs at once.
    pub jobs_per_worker: u32,
    /// A job's duration when none finished in the load's window (a cold
    /// queue): a guess, on the side of too many workers.
    pub fallback_duration: Duration,
}

impl ScalePolicy {
    /// Drain within `drain_window`; 0 to 100 workers of one job each; a
    /// job lasts a minute when there is no measure yet.
    pub fn new(drain_window: Duration) -> Self {
        Self {
            drain_window,
            min: 0,
            max: 100,
            jobs_per_worker: 1,
            fallback_duration: Duration::from_secs(60),
        }
    }

    /// Never fewer workers than `min`.
    pub fn min(mut self, min: u32) -> Self {
        self.min = min;
        self
    }

    /// Never more workers than `max`.
    pub fn max(mut self, max: u32) -> Self {
        self.max = max;
        self
    }

    /// Jobs one worker runs at once (at least 1).
    pub fn jobs_per_worker(mut self, jobs: u32) -> Self {
        self.jobs_per_worker = jobs.max(1);
        self
    }

    /// A job's duration when there is no measure.
    pub fn fallback_duration(mut self, duration: Duration) -> Self {
        self.fallback_duration = duration;
        self
    }
}

/// Workers needed for `work` jobs of `p95` each (the policy's fallback
/// when `None`) to finish within the policy's drain window, within its
/// bounds.
pub fn desired_workers(work: u64, p95: Option<Duration>, policy: &ScalePolicy) -> u32 {
    let (min, max) = (policy.min, policy.max.max(policy.min));
    if work == 0 {
        return min;
    }
    let duration = p95.unwrap_or(policy.fallback_duration).as_secs_f64();
    let window = policy.drain_window.as_secs_f64();
    let per_worker = f64::from(policy.jobs_per_worker.max(1));
    let needed = if window > 0.0 {
        (work as f64 * duration / window / per_worker).ceil()
    } else {
        // No time at all: as many as allowed.
        f64::INFINITY
    };
    // At least one worker for any work, whatever its duration.
    let needed = needed.max(1.0);
    if needed >= f64::from(max) {
        max
    } else {
        (needed as u32).clamp(min, max)
    }
}

/// Holds a fleet at its recent peak: the workers to run now are the most
/// [`desired_workers`] asked for within the last `window` (Kubernetes'
/// scale-down stabilization). Without it a fleet re-planned as its backlog
/// shrinks shrinks with it, and the backlog decays instead of draining: at
/// `work × duration / window` workers, the work left after one window is
/// still a third of it.
///
/// ```
/// use std::time::Duration;
/// use pjp_core::autoscale::Stabilizer;
///
/// let s = Duration::from_secs;
/// let mut stabilizer = Stabilizer::new(s(60));
/// assert_eq!(stabilizer.recommend(s(0), 30), 30);
/// assert_eq!(stabilizer.recommend(s(10), 12), 30, "held at the peak");
/// assert_eq!(stabilizer.recommend(s(69), 5), 12, "the peak has aged out");
/// assert_eq!(stabilizer.recommend(s(71), 40), 40, "up at once");
/// ```
#[derive(Debug, Clone)]
pub struct Stabilizer {
    window: Duration,
    /// Recommendations within the window: (when, desired).
    recent: std::collections::VecDeque<(Duration, u32)>,
}

impl Stabilizer {
    /// Holds each peak for `window` (zero: follows the plan at once).
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            recent: std::collections::VecDeque::new(),
        }
    }

    /// The workers to run at `now` (any clock's time since a fixed origin,
    /// not decreasing) when the plan asks for `desired`.
    pub fn recommend(&mut self, now: Duration, desired: u32) -> u32 {
        while self
            .recent
            .front()
            .is_some_and(|&(at, _)| now.saturating_sub(at) >= self.window && at < now)
        {
            self.recent.pop_front();
        }
        // Older recommendations no larger than this one can never be the
        // peak again: the list stays short (decreasing).
        while self.recent.back().is_some_and(|&(_, d)| d <= desired) {
            self.recent.pop_back();
        }
        self.recent.push_back((now, desired));
        self.recent.front().map_or(desired, |&(_, d)| d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ScalePolicy {
        ScalePolicy::new(Duration::from_secs(100)).min(1).max(40)
    }

    #[test]
    fn work_times_duration_over_the_window() {
        let s = Duration::from_secs;
        // 10 × 50 s in 100 s: 5 workers.
        assert_eq!(desired_workers(10, Some(s(50)), &policy()), 5);
        // Rounded up: 11 × 50 s is 5.5 workers' worth.
        assert_eq!(desired_workers(11, Some(s(50)), &policy()), 6);
        // Two jobs per worker halve it.
        let two = policy().jobs_per_worker(2);
        assert_eq!(desired_workers(10, Some(s(50)), &two), 3);
    }

    #[test]
    fn the_stabilizer_holds_each_peak_for_its_window() {
        let s = Duration::from_secs;
        let mut held = Stabilizer::new(s(10));
        let plan = [(0, 8), (2, 3), (5, 9), (9, 1), (14, 2), (16, 0), (30, 4)];
        let got: Vec<u32> = plan
            .iter()
            .map(|&(at, desired)| held.recommend(s(at), desired))
            .collect();
        // 9 at 5 s holds until 15 s; then the largest since 6 s (2 at 14 s).
        assert_eq!(got, [8, 8, 9, 9, 9, 2, 4]);
        let mut none = Stabilizer::new(Duration::ZERO);
        assert_eq!(none.recommend(s(1), 9), 9);
        assert_eq!(none.recommend(s(2), 1), 1);
    }

    #[test]
    fn bounds_hold() {
        let s = Duration::from_secs;
        assert_eq!(desired_workers(0, Some(s(50)), &policy()), 1, "min");
        assert_eq!(desired_workers(1, Some(Duration::ZERO), &policy()), 1);
        assert_eq!(
            desired_workers(1_000_000, Some(s(50)), &policy()),
            40,
            "max"
        );
        assert_eq!(
            desired_workers(u64::MAX, Some(s(u64::MAX / 4)), &policy()),
            40
        );
        // Any work gets a worker, even with min 0.
        let lazy = policy().min(0);
        assert_eq!(desired_workers(1, Some(Duration::from_millis(1)), &lazy), 1);
        assert_eq!(desired_workers(0, None, &lazy), 0);
        // A window of zero asks for the most allowed; min above max is min.
        let now = ScalePolicy::new(Duration::ZERO).max(7);
        assert_eq!(desired_workers(3, Some(s(1)), &now), 7);
        let odd = ScalePolicy::new(s(10)).min(9).max(3);
        assert_eq!(desired_workers(1, Some(s(1)), &odd), 9);
    }
}
