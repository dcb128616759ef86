//! What a failure does ([`FailurePolicy`]), and what a row keeps of a job's
//! [`JobOptions`].

#[allow(clippy::wildcard_imports)]
use super::*;

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
            // The fields can be set directly: a count of 0 means 1, as the
            // setters make it.
            max_attempts: options.max_attempts.max(1),
            max_lost_leases: options.max_lost_leases.max(1),
        }
    }
}
