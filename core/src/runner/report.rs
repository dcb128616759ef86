//! [`RunReport`]: what a run did.

use std::time::Duration;

use hdrhistogram::Histogram;

use super::counts::Counts;
use crate::JobId;

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StopReason {
    /// The picker reported its source exhausted and every job was saved.
    #[default]
    Exhausted,
    /// Shutdown asked for a drain and every picked job was saved.
    Drained,
    /// Shutdown (or the grace period, or a fatal error) abandoned the run:
    /// unstarted jobs were released.
    Abandoned,
    /// The next stage went away: jobs it could not take were released, and
    /// the runner stopped picking.
    DownstreamGone,
}

/// Percentiles of a latency distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatencySummary {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest sample.
    pub max: Duration,
}

impl LatencySummary {
    /// Exact nearest-rank percentiles of a sample (for code that measures
    /// outside a runner: a baseline loop, a simulation's ledger).
    ///
    /// ```
    /// use std::time::Duration;
    /// use pjp_core::LatencySummary;
    ///
    /// let ms = |n| Duration::from_millis(n);
    /// let summary = LatencySummary::from_samples((1..=100).map(ms).collect());
    /// assert_eq!((summary.count, summary.p50, summary.p99, summary.max), (100, ms(50), ms(99), ms(100)));
    /// assert_eq!(LatencySummary::from_samples(Vec::new()), LatencySummary::default());
    /// ```
    pub fn from_samples(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let at = |q: f64| {
            let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len().max(1));
            samples.get(rank - 1).copied().unwrap_or_default()
        };
        Self {
            count: samples.len() as u64,
            p50: at(0.5),
            p99: at(0.99),
            max: samples.last().copied().unwrap_or_default(),
        }
    }

    pub(crate) fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            p50: Duration::from_micros(h.value_at_quantile(0.5)),
            p99: Duration::from_micros(h.value_at_quantile(0.99)),
            max: Duration::from_micros(h.max()),
        }
    }
}

/// What a run did: counts, released jobs, latencies.
///
/// When a run ends, every picked job is accounted for:
/// `counts.picked == saved() + counts.fenced + released.len() + release_failed.len()`
/// ([`unaccounted`](Self::unaccounted) is zero). A job whose save gave up is
/// listed in `save_gave_up` *and* in `released` (or `release_failed`).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct RunReport {
    /// The stage name.
    pub stage: String,
    /// Why the run ended.
    pub stop: StopReason,
    /// What the run did with its jobs.
    pub counts: Counts,
    /// Jobs handed back to the picker, in release order.
    pub released: Vec<JobId>,
    /// Jobs whose release failed too (neither saved nor released).
    pub release_failed: Vec<JobId>,
    /// Jobs whose save gave up (retries spent, or a permanent error), in
    /// order; each was then released (or is in `release_failed`).
    pub save_gave_up: Vec<JobId>,
    /// The most jobs held claimed at once.
    pub peak_claimed: u64,
    /// The configured bound on jobs held claimed.
    pub max_claimed: u64,
    /// Executor workers.
    pub workers: usize,
    /// Wall time of the run (virtual under simulation).
    pub elapsed: Duration,
    /// Time workers spent executing, summed over workers.
    pub busy: Duration,
    /// From pick to saved, per saved job.
    pub job_latency: LatencySummary,
    /// Execution time, per executed job.
    pub exec_time: LatencySummary,
}

impl RunReport {
    /// Jobs saved, successful or not.
    pub fn saved(&self) -> u64 {
        self.counts.saved()
    }

    /// Picked jobs neither saved nor released nor reported as failing to release.
    /// Zero unless a task died.
    pub fn unaccounted(&self) -> u64 {
        self.counts
            .picked
            .saturating_sub(self.saved())
            .saturating_sub(self.counts.fenced)
            .saturating_sub(self.released.len() as u64)
            .saturating_sub(self.release_failed.len() as u64)
    }

    /// Saved jobs per second of wall time.
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.saved() as f64 / secs
        } else {
            0.0
        }
    }

    /// Fraction of worker time spent executing, in `0..=1`.
    pub fn utilisation(&self) -> f64 {
        let capacity = self.elapsed.as_secs_f64() * self.workers as f64;
        if capacity > 0.0 {
            (self.busy.as_secs_f64() / capacity).min(1.0)
        } else {
            0.0
        }
    }
}
