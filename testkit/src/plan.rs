//! Plans: plain data describing a runner configuration ([`RunnerPlan`]), a
//! cancellation ([`CancelPlan`]) and a whole faulty run ([`RunPlan`]), for
//! [`props::check_run`](crate::props::check_run) and the proptest strategies
//! in [`strategy`](crate::strategy).

use std::fmt;
use std::time::Duration;

use pjp_core::{BackoffPolicy, RetryPolicy, RunnerBuilder, Runtime, Shutdown, TaskHandle};

use crate::{ExecFaults, IoFaults, LatencyProfile};

/// A runner configuration as plain data.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerPlan {
    /// Executor workers.
    pub workers: usize,
    /// Jobs picked ahead.
    pub prefetch: usize,
    /// Picks in flight.
    pub pickers: usize,
    /// Jobs per pick (at most `prefetch`).
    pub pick_batch: usize,
    /// Results waiting for a saver.
    pub save_queue: usize,
    /// Saves in flight.
    pub savers: usize,
    /// Results per save call (one statement for many jobs where the saver
    /// batches).
    pub save_batch: usize,
    /// Per-job timeout.
    pub job_timeout: Option<Duration>,
    /// Drain grace period.
    pub grace_period: Option<Duration>,
    /// Save tries in all.
    pub save_attempts: u32,
    /// First back-off delay (empty picker, pick errors, save retries); each
    /// doubles up to 16×.
    pub backoff: Duration,
}

impl Default for RunnerPlan {
    /// One worker, the runner's default buffers, 1 ms back-off, 5 save tries.
    fn default() -> Self {
        Self {
            workers: 1,
            prefetch: 2,
            pickers: 1,
            pick_batch: 1,
            save_queue: 2,
            savers: 2,
            save_batch: 1,
            job_timeout: None,
            grace_period: None,
            save_attempts: 5,
            backoff: Duration::from_millis(1),
        }
    }
}

impl RunnerPlan {
    /// Applies the plan to a runner builder.
    pub fn apply<P, X, S>(&self, builder: RunnerBuilder<P, X, S>) -> RunnerBuilder<P, X, S> {
        let backoff = BackoffPolicy::new(self.backoff, self.backoff.saturating_mul(16));
        let mut builder = builder
            .workers(self.workers)
            .prefetch(self.prefetch)
            .pickers(self.pickers)
            .pick_batch(self.pick_batch)
            .save_queue(self.save_queue)
            .savers(self.savers)
            .save_batch(self.save_batch)
            .empty_backoff(backoff)
            .pick_error_backoff(backoff)
            .save_retry(RetryPolicy::new(self.save_attempts, backoff));
        if let Some(timeout) = self.job_timeout {
            builder = builder.job_timeout(timeout);
        }
        if let Some(grace) = self.grace_period {
            builder = builder.grace_period(grace);
        }
        builder
    }
}

/// When to cancel a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CancelPlan {
    /// Never: the run ends when the source is exhausted.
    #[default]
    Never,
    /// Drain after this long.
    Drain {
        /// From the start of the run.
        after: Duration,
    },
    /// Abandon after this long.
    Abandon {
        /// From the start of the run.
        after: Duration,
    },
    /// Drain, then abandon (a second signal).
    DrainThenAbandon {
        /// From the start of the run.
        drain_after: Duration,
        /// From the drain.
        abandon_after: Duration,
    },
}

impl CancelPlan {
    /// Spawns a task on `runtime` that signals `shutdown` per the plan (none
    /// for [`Never`](Self::Never)). Drop the handle to detach it.
    pub fn spawn<R: Runtime>(&self, runtime: &R, shutdown: &Shutdown) -> Option<TaskHandle> {
        let plan = *self;
        if plan == Self::Never {
            return None;
        }
        let rt = runtime.clone();
        let shutdown = shutdown.clone();
        Some(runtime.spawn(async move {
            match plan {
                Self::Never => {}
                Self::Drain { after } => {
                    rt.sleep(after).await;
                    shutdown.drain();
                }
                Self::Abandon { after } => {
                    rt.sleep(after).await;
                    shutdown.abandon();
                }
                Self::DrainThenAbandon {
                    drain_after,
                    abandon_after,
                } => {
                    rt.sleep(drain_after).await;
                    shutdown.signal();
                    rt.sleep(abandon_after).await;
                    shutdown.signal();
                }
            }
        }))
    }

    /// Whether the plan may abandon (and so release jobs).
    pub fn may_abandon(&self) -> bool {
        matches!(self, Self::Abandon { .. } | Self::DrainThenAbandon { .. })
    }
}

impl fmt::Display for CancelPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Never => f.write_str("never"),
            Self::Drain { after } => write!(f, "drain at {after:?}"),
            Self::Abandon { after } => write!(f, "abandon at {after:?}"),
            Self::DrainThenAbandon {
                drain_after,
                abandon_after,
            } => write!(
                f,
                "drain at {drain_after:?}, abandon {abandon_after:?} later"
            ),
        }
    }
}

/// How the jobs of a [`RunPlan`] execute.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ExecPlan {
    /// Modeled cost per job.
    pub cost: Duration,
    /// Whether the worker also sleeps the cost for real (real runtimes).
    pub sleep: bool,
    /// Executor faults.
    pub faults: ExecFaults,
}

/// A whole run: jobs, runner configuration, faults and cancellation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunPlan {
    /// Jobs in the (closed) queue.
    pub jobs: u64,
    /// The runner's configuration.
    pub runner: RunnerPlan,
    /// Picker faults.
    pub picker: IoFaults,
    /// Saver faults.
    pub saver: IoFaults,
    /// The round trip of every pick, release and save.
    pub latency: LatencyProfile,
    /// Execution.
    pub exec: ExecPlan,
    /// Cancellation.
    pub cancel: CancelPlan,
}
