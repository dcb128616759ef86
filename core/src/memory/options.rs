//! How a job is pushed ([`JobOptions`]), what a failure does ([`FailurePolicy`]),
//! and what a row keeps of them.

#[allow(clippy::wildcard_imports)]
use super::*;

/// How a job is queued ([`MemoryQueue::push_with`]); the same knobs as a
/// durable queue's job row.
///
/// ```
/// use std::time::Duration;
/// use pjp_core::memory::{JobOptions, MemoryQueue};
///
/// let queue: MemoryQueue<u64, u64> = MemoryQueue::new();
/// queue.push_with(7, JobOptions::new().priority(5).delay(Duration::from_secs(1)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobOptions {
    pub(super) priority: i16,
    pub(super) delay: Duration,
    pub(super) max_attempts: u32,
    pub(super) max_lost_leases: u32,
    pub(super) batch: i64,
    pub(super) depth: u16,
    pub(super) kind: JobKind,
}

impl Default for JobOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl JobOptions {
    /// Priority 0, runnable now, 5 attempts, 3 lost leases (the durable
    /// queue's defaults).
    pub const fn new() -> Self {
        Self {
            priority: 0,
            delay: Duration::ZERO,
            max_attempts: 5,
            max_lost_leases: 3,
            batch: 0,
            depth: 0,
            kind: JobKind::none(),
        }
    }

    /// Its kind: a picker with [`kinds`](QueuePicker::kinds) or
    /// [`except_kinds`](QueuePicker::except_kinds) hands out only the kinds
    /// it serves (the proving runner takes `basic`, the aggregation runner
    /// `aggregate`, from one queue). Default: no kind.
    pub const fn kind(mut self, kind: JobKind) -> Self {
        self.kind = kind;
        self
    }

    /// The batch (or deadline) it belongs to: the proof-first order takes
    /// the oldest (lowest) first. Default 0.
    pub const fn batch(mut self, batch: i64) -> Self {
        self.batch = batch;
        self
    }

    /// Rounds between it and its tree's final proof (0 for the final proof):
    /// within a batch, the proof-first order takes the lowest first.
    pub const fn depth(mut self, depth: u16) -> Self {
        self.depth = depth;
        self
    }

    /// Higher is claimed first; equal priorities go oldest first.
    pub const fn priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }

    /// Not claimable before `delay` has passed (on a leased queue's clock;
    /// ignored without one).
    pub const fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Executor failures before the job is dead (with a [`FailurePolicy`];
    /// at least 1).
    pub const fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = if attempts == 0 { 1 } else { attempts };
        self
    }

    /// Lost leases before the job is dead: a job that kills or strands every
    /// worker that takes it stops being handed out (at least 1).
    pub const fn max_lost_leases(mut self, leases: u32) -> Self {
        self.max_lost_leases = if leases == 0 { 1 } else { leases };
        self
    }
}

/// What a saved failure does to its job ([`MemoryQueue::set_failure_policy`]).
///
/// Without one, every save settles its job, failures included (a results
/// log). With one, the queue behaves like a durable queue: a failure uses an
/// attempt and the job runs again after `base × 2^attempts` (capped at
/// `max`), or ends dead once its attempts are spent; a failure that
/// [`permanent`](Self::permanent) matches ends `Failed` at once; a cancelled
/// execution goes back without using an attempt.
pub struct FailurePolicy<F> {
    pub(super) base: Duration,
    pub(super) max: Duration,
    pub(super) permanent: Option<Arc<PermanentIf<F>>>,
}

type PermanentIf<F> = dyn Fn(&ExecError<F>) -> bool + Send + Sync;

impl<F> Clone for FailurePolicy<F> {
    fn clone(&self) -> Self {
        Self {
            base: self.base,
            max: self.max,
            permanent: self.permanent.clone(),
        }
    }
}

impl<F> fmt::Debug for FailurePolicy<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailurePolicy")
            .field("base", &self.base)
            .field("max", &self.max)
            .field("permanent", &self.permanent.is_some())
            .finish()
    }
}

impl<F> FailurePolicy<F> {
    /// Retries after `base × 2^attempts`, capped at `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
            permanent: None,
        }
    }

    /// Failures `is_permanent` matches end `Failed` at once, no retry.
    pub fn permanent(
        mut self,
        is_permanent: impl Fn(&ExecError<F>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.permanent = Some(Arc::new(is_permanent));
        self
    }

    /// The wait before the run after `attempts` failures.
    pub(super) fn delay(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.min(30));
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// What a row keeps of its [`JobOptions`]: its place in line and its
/// budgets (the kind lives in the row's line; the delay is spent on push).
/// Small, since every save copies its row.
#[derive(Debug, Clone, Copy)]
pub(super) struct RowOptions {
    pub(super) priority: i16,
    pub(super) depth: u16,
    pub(super) batch: i64,
    pub(super) max_attempts: u32,
    pub(super) max_lost_leases: u32,
}

impl From<&JobOptions> for RowOptions {
    fn from(options: &JobOptions) -> Self {
        Self {
            priority: options.priority,
            depth: options.depth,
            batch: options.batch,
            max_attempts: options.max_attempts,
            max_lost_leases: options.max_lost_leases,
        }
    }
}
