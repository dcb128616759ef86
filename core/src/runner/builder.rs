//! [`RunnerBuilder`]: configures a [`JobRunner`].

use std::sync::Arc;
use std::time::Duration;

use super::{ConfigError, JobRunner, RunnerConfig};
use crate::observe::{Observer, RunObserver};
use crate::{BackoffPolicy, RetryPolicy};

/// The most a save queue sized from the savers' batches holds (its
/// channel is allocated up front).
const MAX_DERIVED_SAVE_QUEUE: usize = 4_096;

/// Builds a [`JobRunner`]. Start from [`JobRunner::builder`] or
/// [`JobRunner::builder_async`].
///
/// Every setting has a default (see each method); [`build`](Self::build) checks
/// that they fit together.
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct RunnerBuilder<P, X, S> {
    picker: P,
    execution: X,
    saver: S,
    config: RunnerConfig,
    /// Whether `save_queue` was chosen; if not, it follows the savers'
    /// batches (see [`save_queue`](Self::save_queue)).
    save_queue_set: bool,
    observer: Option<Observer>,
}

impl<P, X, S> RunnerBuilder<P, X, S> {
    pub(crate) fn new(picker: P, execution: X, saver: S) -> Self {
        Self {
            picker,
            execution,
            saver,
            config: RunnerConfig::default(),
            save_queue_set: false,
            observer: None,
        }
    }

    /// Names the stage (spans, metric labels, reports). Default `"main"`.
    pub fn stage(mut self, name: impl Into<String>) -> Self {
        self.config.stage = Arc::from(name.into());
        self
    }

    /// Executor workers: jobs executed at once. Default 1.
    pub fn workers(mut self, workers: usize) -> Self {
        self.config.workers = workers;
        self
    }

    /// Jobs picked ahead of the workers, so a worker that finishes finds its next
    /// job waiting. Default 2.
    pub fn prefetch(mut self, prefetch: usize) -> Self {
        self.config.prefetch = prefetch;
        self
    }

    /// Picks in flight at once, to hide the picker's round trip. Default 1.
    pub fn pickers(mut self, pickers: usize) -> Self {
        self.config.pickers = pickers;
        self
    }

    /// Jobs asked for per pick ([`JobPicker::pick_many`](crate::JobPicker::pick_many)
    /// when above 1). Must not exceed `prefetch`. Default 1.
    pub fn pick_batch(mut self, batch: usize) -> Self {
        self.config.pick_batch = batch;
        self
    }

    /// Capacity of the queue from workers to savers. Default: room for a
    /// full batch per saver (`savers × save_batch`, at least 2), since a
    /// batch takes only what is queued: a queue smaller than the batch caps
    /// the batch. (Sized that way up to 4,096.)
    pub fn save_queue(mut self, capacity: usize) -> Self {
        self.config.save_queue = capacity;
        self.save_queue_set = true;
        self
    }

    /// Saves in flight at once, to hide the saver's round trip. Default 2.
    pub fn savers(mut self, savers: usize) -> Self {
        self.config.savers = savers;
        self
    }

    /// Results handed to the saver at once, through
    /// [`JobSaver::save_many`](crate::JobSaver::save_many): a database saver
    /// completes a batch in one statement. A batch takes what is queued for the
    /// savers, waiting up to [`save_batch_wait`](Self::save_batch_wait) to
    /// fill. Default 1 (one `save` per job).
    pub fn save_batch(mut self, batch: usize) -> Self {
        self.config.save_batch = batch;
        self
    }

    /// How long a save batch may wait for more results after its first one.
    /// Default zero: a batch takes only what is already queued, so batching
    /// adds no latency.
    pub fn save_batch_wait(mut self, wait: Duration) -> Self {
        self.config.save_batch_wait = wait;
        self
    }

    /// Jobs in a row whose saves give up before the runner decides the sink is
    /// gone: it then stops picking, drains, and fails with
    /// [`RunErrorKind::SinkGone`](crate::RunErrorKind::SinkGone). A single job
    /// that gives up is released and reported, and the run goes on. Default 8.
    pub fn sink_gone_after(mut self, jobs: u32) -> Self {
        self.config.sink_gone_after = jobs;
        self
    }

    /// Back-off while the picker finds nothing. Default 10 ms doubling to 1 s.
    pub fn empty_backoff(mut self, policy: BackoffPolicy) -> Self {
        self.config.empty_backoff = policy;
        self
    }

    /// Back-off after a retryable picker error. Default 100 ms doubling to 10 s.
    pub fn pick_error_backoff(mut self, policy: BackoffPolicy) -> Self {
        self.config.pick_error_backoff = policy;
        self
    }

    /// Retries of saves that fail transiently. Default 30 tries, 100 ms
    /// doubling to 10 s with 50 % jitter: at least a minute (about three on
    /// average), enough to ride out a database failover or restart.
    pub fn save_retry(mut self, policy: RetryPolicy) -> Self {
        self.config.save_retry = policy;
        self
    }

    /// Saves a job as [`ExecError::TimedOut`](crate::ExecError::TimedOut) once it
    /// has run this long. Default: none.
    pub fn job_timeout(mut self, timeout: Duration) -> Self {
        self.config.job_timeout = Some(timeout);
        self
    }

    /// Turns a drain into abandon after this long. Default: a drain waits for
    /// every picked job.
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.config.grace_period = Some(grace);
        self
    }

    /// Tracks the jobs executing, so that `cancels` can list them and cancel
    /// one by id (a lost lease): the executor sees it through
    /// [`JobContext`](crate::JobContext), an async executor's future is
    /// dropped, and the job is saved as
    /// [`ExecError::Cancelled`](crate::ExecError::Cancelled). Default: none
    /// (nothing is tracked).
    pub fn job_cancels(mut self, cancels: crate::JobCancels) -> Self {
        self.config.job_cancels = Some(cancels);
        self
    }

    /// Reports what each picker, worker and saver task does, and when, to
    /// `observer`: an [`ActivitySpan`](crate::observe::ActivitySpan) for every
    /// pick call, execution, save call and back-off, timed by the run's
    /// [`Runtime`](crate::Runtime). A [`Recorder`](crate::observe::Recorder)
    /// keeps them all. Default: none, which costs nothing but an `Option`
    /// check. [`JobRunner::step_on`] reports its pick, execution and save on
    /// one worker's lane.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use pjp_core::memory::MemoryQueue;
    /// use pjp_core::observe::Recorder;
    /// # use pjp_core::{Executor, JobContext, JobRunner};
    /// # struct Echo;
    /// # impl Executor for Echo {
    /// #     type Input = u64;
    /// #     type Output = u64;
    /// #     type Error = std::convert::Infallible;
    /// #     fn execute(&self, n: u64, _job: &JobContext) -> Result<u64, Self::Error> { Ok(n) }
    /// # }
    ///
    /// let queue: MemoryQueue<u64, u64> = MemoryQueue::closed_with(1..=3);
    /// let recorder = Recorder::new();
    /// let runner = JobRunner::builder(queue.picker(), Echo, queue.saver())
    ///     .observer(Arc::new(recorder.clone()))
    ///     .build()?;
    /// // After `runner.run(..)`, `recorder.take()` holds the run's spans.
    /// # drop(runner);
    /// # Ok::<(), pjp_core::ConfigError>(())
    /// ```
    ///
    /// Kept apart from the [`RunnerConfig`]: [`config`](Self::config) does not
    /// replace it.
    pub fn observer(mut self, observer: Arc<dyn RunObserver>) -> Self {
        self.observer = Some(Observer::new(observer));
        self
    }

    /// Replaces the whole configuration (its `save_queue` included).
    pub fn config(mut self, config: RunnerConfig) -> Self {
        self.config = config;
        self.save_queue_set = true;
        self
    }

    /// Checks the configuration and builds the runner.
    pub fn build(mut self) -> Result<JobRunner<P, X, S>, ConfigError> {
        if !self.save_queue_set {
            self.config.save_queue = self
                .config
                .savers
                .saturating_mul(self.config.save_batch)
                .clamp(RunnerConfig::default().save_queue, MAX_DERIVED_SAVE_QUEUE);
        }
        self.config.validate()?;
        Ok(JobRunner::from_parts(
            self.picker,
            self.execution,
            self.saver,
            self.config,
            self.observer,
        ))
    }
}
