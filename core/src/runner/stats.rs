//! Live counters shared by a runner's tasks, and the [`Progress`] view of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters updated on the hot path (relaxed atomics: they are statistics, not
/// synchronisation).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) picked: AtomicU64,
    pub(crate) succeeded: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) panicked: AtomicU64,
    pub(crate) timed_out: AtomicU64,
    pub(crate) released: AtomicU64,
    pub(crate) save_retries: AtomicU64,
    pub(crate) fenced: AtomicU64,
    pub(crate) stragglers: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) pick_errors: AtomicU64,
    pub(crate) claimed: AtomicU64,
    pub(crate) peak_claimed: AtomicU64,
    pub(crate) busy: AtomicU64,
    pub(crate) busy_nanos: AtomicU64,
}

impl Stats {
    pub(crate) fn claim(&self) -> u64 {
        self.picked.fetch_add(1, Relaxed);
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
    /// Jobs picked.
    pub picked: u64,
    /// Jobs saved with an output.
    pub succeeded: u64,
    /// Jobs saved with a failure.
    pub failed: u64,
    /// Jobs released.
    pub released: u64,
    /// Jobs held claimed right now.
    pub claimed: u64,
    /// Workers executing right now.
    pub busy_workers: u64,
}

impl ProgressSnapshot {
    /// Jobs saved, successful or not.
    pub fn saved(&self) -> u64 {
        self.succeeded + self.failed
    }
}

impl Progress {
    /// Reads the counters.
    pub fn snapshot(&self) -> ProgressSnapshot {
        let s = &self.0;
        ProgressSnapshot {
            picked: s.picked.load(Relaxed),
            succeeded: s.succeeded.load(Relaxed),
            failed: s.failed.load(Relaxed),
            released: s.released.load(Relaxed),
            claimed: s.claimed.load(Relaxed),
            busy_workers: s.busy.load(Relaxed),
        }
    }
}
