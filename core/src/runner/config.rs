//! [`RunnerConfig`]: the runner's typed configuration and its validation.

use std::sync::Arc;
use std::time::Duration;

use crate::{BackoffPolicy, RetryPolicy};

/// A runner's configuration, built through [`RunnerBuilder`](crate::RunnerBuilder).
///
/// # Work in flight
///
/// A runner holds at most [`max_claimed`](Self::max_claimed) jobs claimed at once:
///
/// * `prefetch` jobs picked ahead of the workers (a pick reserves room for its
///   batch *before* it asks the picker, so a picked job always has a place);
/// * one per executor worker;
/// * `save_queue` executed jobs waiting for a saver;
/// * `save_batch` per concurrent saver (one when saves are not batched).
///
/// The report's `peak_claimed` shows how many it actually held.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    pub(crate) stage: Arc<str>,
    pub(crate) workers: usize,
    pub(crate) prefetch: usize,
    pub(crate) pickers: usize,
    pub(crate) pick_batch: usize,
    pub(crate) save_queue: usize,
    pub(crate) savers: usize,
    pub(crate) save_batch: usize,
    pub(crate) save_batch_wait: Duration,
    pub(crate) sink_gone_after: u32,
    pub(crate) empty_backoff: BackoffPolicy,
    pub(crate) pick_error_backoff: BackoffPolicy,
    pub(crate) save_retry: RetryPolicy,
    pub(crate) job_timeout: Option<Duration>,
    pub(crate) grace_period: Option<Duration>,
    pub(crate) job_cancels: Option<crate::JobCancels>,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            stage: Arc::from("main"),
            workers: 1,
            prefetch: 2,
            pickers: 1,
            pick_batch: 1,
            save_queue: 2,
            savers: 2,
            save_batch: 1,
            save_batch_wait: Duration::ZERO,
            sink_gone_after: 8,
            empty_backoff: BackoffPolicy::new(Duration::from_millis(10), Duration::from_secs(1)),
            pick_error_backoff: BackoffPolicy::new(
                Duration::from_millis(100),
                Duration::from_secs(10),
            ),
            save_retry: RetryPolicy::default(),
            job_timeout: None,
            grace_period: None,
            job_cancels: None,
        }
    }
}

impl RunnerConfig {
    /// The stage name, used in spans, metrics labels and reports.
    pub fn stage(&self) -> &str {
        &self.stage
    }
    /// Executor workers.
    pub fn workers(&self) -> usize {
        self.workers
    }
    /// Jobs picked ahead of the workers.
    pub fn prefetch(&self) -> usize {
        self.prefetch
    }
    /// Picks in flight at once.
    pub fn pickers(&self) -> usize {
        self.pickers
    }
    /// Jobs asked for per pick.
    pub fn pick_batch(&self) -> usize {
        self.pick_batch
    }
    /// Capacity of the queue between workers and savers.
    pub fn save_queue(&self) -> usize {
        self.save_queue
    }
    /// Saves in flight at once.
    pub fn savers(&self) -> usize {
        self.savers
    }
    /// Results handed to the saver at once ([`JobSaver::save_many`](crate::JobSaver::save_many) above 1).
    pub fn save_batch(&self) -> usize {
        self.save_batch
    }
    /// How long a save batch may wait to fill after its first result.
    pub fn save_batch_wait(&self) -> Duration {
        self.save_batch_wait
    }
    /// Jobs in a row whose saves gave up before the runner decides the sink is
    /// gone and drains.
    pub fn sink_gone_after(&self) -> u32 {
        self.sink_gone_after
    }
    /// Back-off while the picker finds nothing.
    pub fn empty_backoff(&self) -> BackoffPolicy {
        self.empty_backoff
    }
    /// Back-off after a picker error.
    pub fn pick_error_backoff(&self) -> BackoffPolicy {
        self.pick_error_backoff
    }
    /// How failed saves are retried.
    pub fn save_retry(&self) -> RetryPolicy {
        self.save_retry
    }
    /// The per-job timeout, if any.
    pub fn job_timeout(&self) -> Option<Duration> {
        self.job_timeout
    }
    /// How long a drain may take before it turns into abandon, if bounded.
    pub fn grace_period(&self) -> Option<Duration> {
        self.grace_period
    }

    /// The most jobs this runner holds claimed at once (see the type's docs).
    pub fn max_claimed(&self) -> usize {
        self.prefetch
            .saturating_add(self.workers)
            .saturating_add(self.save_queue)
            .saturating_add(self.savers.saturating_mul(self.save_batch))
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("workers", self.workers),
            ("prefetch", self.prefetch),
            ("pickers", self.pickers),
            ("pick_batch", self.pick_batch),
            ("save_queue", self.save_queue),
            ("savers", self.savers),
            ("save_batch", self.save_batch),
            ("sink_gone_after", self.sink_gone_after as usize),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { field });
            }
        }
        if self.pick_batch > self.prefetch {
            return Err(ConfigError::BatchExceedsPrefetch {
                pick_batch: self.pick_batch,
                prefetch: self.prefetch,
            });
        }
        // The prefetch bound is a semaphore; tokio's holds at most this many.
        if self.prefetch > tokio::sync::Semaphore::MAX_PERMITS {
            return Err(ConfigError::TooLarge { field: "prefetch" });
        }
        for (field, value) in [
            ("pick_batch", self.pick_batch),
            ("save_queue", self.save_queue),
            ("save_batch", self.save_batch),
        ] {
            if u32::try_from(value).is_err() {
                return Err(ConfigError::TooLarge { field });
            }
        }
        if self.stage.is_empty() {
            return Err(ConfigError::EmptyStageName);
        }
        if self.job_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::Zero {
                field: "job_timeout",
            });
        }
        Ok(())
    }
}

/// An invalid runner configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A count or duration that must be positive is zero.
    #[error("runner config: `{field}` must be at least 1")]
    Zero {
        /// The field.
        field: &'static str,
    },
    /// A pick could never get room for its batch.
    #[error(
        "runner config: `pick_batch` ({pick_batch}) exceeds `prefetch` ({prefetch}); a batch must fit in the prefetch buffer"
    )]
    BatchExceedsPrefetch {
        /// The batch size.
        pick_batch: usize,
        /// The prefetch depth.
        prefetch: usize,
    },
    /// A value too large to use.
    #[error("runner config: `{field}` is too large")]
    TooLarge {
        /// The field.
        field: &'static str,
    },
    /// The stage name is empty.
    #[error("runner config: the stage name must not be empty")]
    EmptyStageName,
}
