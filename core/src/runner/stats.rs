//! Live counters shared by a runner's tasks, and the [`Progress`] view of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::counts::{Count, Counts};

/// Counters updated on the hot path (relaxed atomics: they are statistics, not
/// synchronisation): the [`Counts`], one atomic each, and the gauges.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    counts: [AtomicU64; Count::ALL.len()],
    pub(crate) claimed: AtomicU64,
    pub(crate) peak_claimed: AtomicU64,
    pub(crate) busy: AtomicU64,
    pub(crate) busy_nanos: AtomicU64,
}

impl Stats {
    /// Adds `n` to `count`.
    pub(crate) fn add(&self, count: Count, n: u64) {
        self.counts[count.index()].fetch_add(n, Relaxed);
    }

    /// Every count, now.
    pub(crate) fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for count in Count::ALL {
            counts.set(count, self.counts[count.index()].load(Relaxed));
        }
        counts
    }

    /// One more job held claimed (the caller counts it as picked).
    pub(crate) fn claim(&self) -> u64 {
        let now = self.claimed.fetch_add(1, Relaxed) + 1;
        self.peak_claimed.fetch_max(now, Relaxed);
        now
    }

    pub(crate) fn unclaim(&self) -> u64 {
        self.claimed.fetch_sub(1, Relaxed).saturating_sub(1)
    }
}

/// A live view of a runner's counters, for progress bars and health checks.
///
/// Obtained from [`JobRunner::progress`](crate::JobRunner::progress); cheap to
/// clone and to read from any thread. Counts accumulate over every run of the
/// runner.
#[derive(Debug, Clone)]
pub struct Progress(pub(crate) Arc<Stats>);

/// One reading of a [`Progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ProgressSnapshot {
    /// What the runner did, over every run so far.
    pub counts: Counts,
    /// Jobs held claimed right now.
    pub claimed: u64,
    /// Workers executing right now.
    pub busy_workers: u64,
}

impl Progress {
    /// Reads the counters.
    pub fn snapshot(&self) -> ProgressSnapshot {
        let s = &self.0;
        ProgressSnapshot {
            counts: s.counts(),
            claimed: s.claimed.load(Relaxed),
            busy_workers: s.busy.load(Relaxed),
        }
    }
}
