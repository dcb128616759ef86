//! Per-job cancellation: [`JobCancels`] cancels a running job by id, and the
//! executor sees it through its [`JobContext`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::guard::lock;
use crate::{JobId, JobMeta};

/// What an executor knows of the job it runs: its id, which attempt this is,
/// and whether it was cancelled ([`Executor::execute`](crate::Executor::execute)).
///
/// ```
/// use pjp_core::{JobContext, JobId};
///
/// let job = JobContext::new(JobId::new(7), 2);
/// assert_eq!((job.id(), job.attempt()), (JobId::new(7), 2));
/// assert!(!job.is_cancelled(), "a context made by hand is never cancelled");
/// ```
#[derive(Debug, Clone)]
pub struct JobContext {
    id: JobId,
    attempt: u32,
    cancel: Option<CancellationToken>,
}

impl JobContext {
    /// The context of job `id` at `attempt`, never cancelled: for code that
    /// runs an executor itself, outside a runner (a test, a benchmark).
    pub fn new(id: JobId, attempt: u32) -> Self {
        Self {
            id,
            attempt,
            cancel: None,
        }
    }

    /// The context of the job `meta` names, never cancelled: for code that
    /// runs an executor on picked jobs itself.
    pub fn of(meta: &impl JobMeta) -> Self {
        Self::new(meta.job_id(), meta.attempt())
    }

    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// Which attempt at the job this is, starting at 1 (as the picker's
    /// metadata says: [`JobMeta::attempt`](crate::JobMeta::attempt)).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether the job was cancelled: nobody will accept its result (its lease
    /// was lost, say), so a long proof should stop at its next checkpoint.
    pub fn is_cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled)
    }

    /// Resolves once the job is cancelled (never, for a context made by hand).
    pub async fn cancelled(&self) {
        match &self.cancel {
            Some(token) => token.cancelled().await,
            None => std::future::pending().await,
        }
    }
}

/// A context names its job as metadata does, so that code keyed by
/// [`JobMeta`] (a ledger, a span) takes either.
impl JobMeta for JobContext {
    fn job_id(&self) -> JobId {
        self.id
    }

    fn attempt(&self) -> u32 {
        self.attempt
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
    pub(crate) fn start(&self, job: JobId, attempt: u32) -> (JobContext, Running<'_>) {
        let token = CancellationToken::new();
        lock(&self.running).insert(job, token.clone());
        (
            JobContext {
                id: job,
                attempt,
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
