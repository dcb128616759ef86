//! Per-job cancellation: [`JobCancels`] cancels a running job by id, and the
//! executor sees it through its [`JobContext`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::JobId;
use crate::guard::lock;

/// What an executor can ask about the job it runs
/// ([`Executor::execute_with`](crate::Executor::execute_with)).
#[derive(Debug, Clone, Default)]
pub struct JobContext {
    cancel: Option<CancellationToken>,
}

impl JobContext {
    /// A context whose job is never cancelled (for code that runs an executor
    /// itself, outside a runner).
    pub fn detached() -> Self {
        Self::default()
    }

    /// Whether the job was cancelled: nobody will accept its result (its lease
    /// was lost, say), so a long proof should stop at its next checkpoint.
    pub fn is_cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled)
    }

    /// Resolves once the job is cancelled (never, for a detached context).
    pub async fn cancelled(&self) {
        match &self.cancel {
            Some(token) => token.cancelled().await,
            None => std::future::pending().await,
        }
    }
}

/// Cancels running jobs by id, and lists them.
///
/// Give a runner one with
/// [`RunnerBuilder::job_cancels`](crate::RunnerBuilder::job_cancels); without
/// it the runner tracks nothing (no cost per job). A durable queue's
/// heartbeat uses it: [`running`](Self::running) lists the jobs whose leases
/// to extend, and a job whose lease was lost is [`cancel`](Self::cancel)led, so
/// that an hours-long proof stops instead of finishing work nobody accepts.
/// A cancelled job is saved as
/// [`ExecError::Cancelled`](crate::ExecError::Cancelled) and counted in the
/// report's `cancelled`.
///
/// ```
/// use pjp_core::{JobCancels, JobId};
///
/// let cancels = JobCancels::new();
/// assert!(!cancels.cancel(JobId::new(7)), "job 7 is not running");
/// assert!(cancels.running().is_empty());
/// ```
#[derive(Debug, Clone, Default)]
pub struct JobCancels {
    running: Arc<Mutex<HashMap<JobId, CancellationToken>>>,
}

impl JobCancels {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels job `job` if it is running; returns whether it was.
    pub fn cancel(&self, job: JobId) -> bool {
        match lock(&self.running).get(&job) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// The jobs executing now, in no particular order.
    pub fn running(&self) -> Vec<JobId> {
        lock(&self.running).keys().copied().collect()
    }

    /// Registers a job as it starts; the guard deregisters it.
    pub(crate) fn start(&self, job: JobId) -> (JobContext, Running<'_>) {
        let token = CancellationToken::new();
        lock(&self.running).insert(job, token.clone());
        (
            JobContext {
                cancel: Some(token),
            },
            Running { set: self, job },
        )
    }
}

/// A job registered in a [`JobCancels`]; deregistered on drop.
pub(crate) struct Running<'a> {
    set: &'a JobCancels,
    job: JobId,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        lock(&self.set.running).remove(&self.job);
    }
}
