//! The state a run's tasks share, and the bookkeeping they all do: claim,
//! release, record a fatal error.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::FutureExt;
use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;

use super::meters::Meters;
use super::stats::Stats;
use super::{RunErrorKind, RunnerConfig};
use crate::outcome::panic_message;
use crate::{Backoff, JobId, JobMeta, JobPicker, Runtime};

/// Everything the picker, worker and saver tasks of one run share.
pub(crate) struct Context<P, X, S, R> {
    pub(crate) picker: Arc<P>,
    pub(crate) execution: Arc<X>,
    pub(crate) saver: Arc<S>,
    pub(crate) runtime: R,
    pub(crate) config: RunnerConfig,
    pub(crate) stats: Arc<Stats>,
    pub(crate) meters: Meters,
    /// Cancelled on drain, abandon, exhaustion or a fatal error: no new picks.
    pub(crate) stop_picking: CancellationToken,
    /// Cancelled on abandon: queued jobs are released instead of executed.
    pub(crate) abandon: CancellationToken,
    pub(crate) exhausted: AtomicBool,
    fatal: Mutex<Option<RunErrorKind>>,
    pub(crate) released: Mutex<Vec<JobId>>,
    pub(crate) release_failed: Mutex<Vec<JobId>>,
    pub(crate) job_latency: Mutex<Histogram<u64>>,
    pub(crate) exec_time: Mutex<Histogram<u64>>,
}

/// Locks a mutex, ignoring poisoning: the data are counters and lists that a
/// panic elsewhere cannot leave half-written.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A latency histogram in microseconds, from 1 µs to one day, 2 significant digits.
pub(crate) fn latency_histogram() -> Histogram<u64> {
    // Constant bounds that hdrhistogram accepts (low >= 1, high >= 2 * low,
    // sigfig <= 5): this cannot fail at run time.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, 86_400_000_000, 2).expect("valid histogram bounds")
}

pub(crate) fn merge(into: &Mutex<Histogram<u64>>, from: &Histogram<u64>) {
    // Both histograms auto-resize or share bounds, so `add` cannot fail on range.
    let _ = lock(into).add(from);
}

impl<P, X, S, R> Context<P, X, S, R>
where
    P: JobPicker,
    R: Runtime,
{
    pub(crate) fn new(
        picker: Arc<P>,
        execution: Arc<X>,
        saver: Arc<S>,
        runtime: R,
        config: RunnerConfig,
        stats: Arc<Stats>,
    ) -> Self {
        let meters = Meters::new(&config.stage);
        Self {
            picker,
            execution,
            saver,
            runtime,
            config,
            stats,
            meters,
            stop_picking: CancellationToken::new(),
            abandon: CancellationToken::new(),
            exhausted: AtomicBool::new(false),
            fatal: Mutex::new(None),
            released: Mutex::new(Vec::new()),
            release_failed: Mutex::new(Vec::new()),
            job_latency: Mutex::new(latency_histogram()),
            exec_time: Mutex::new(latency_histogram()),
        }
    }

    /// Records the first fatal error; later ones are only logged.
    pub(crate) fn fail(&self, kind: RunErrorKind) {
        tracing::error!(stage = %self.config.stage, error = %kind, "runner error");
        let mut fatal = lock(&self.fatal);
        if fatal.is_none() {
            *fatal = Some(kind);
        }
    }

    pub(crate) fn take_fatal(&self) -> Option<RunErrorKind> {
        lock(&self.fatal).take()
    }

    /// Stops picking and releases every job not yet started.
    pub(crate) fn abandon_now(&self) {
        self.stop_picking.cancel();
        self.abandon.cancel();
    }

    pub(crate) fn mark_exhausted(&self) {
        self.exhausted.store(true, Relaxed);
    }

    /// Hands a claimed job back to the picker, retrying per the save retry policy.
    /// Returns whether it was released; either way the job is accounted for.
    pub(crate) async fn release(&self, meta: P::Metadata) -> bool {
        let job = meta.job_id();
        let policy = self.config.save_retry;
        let mut backoff = Backoff::new(policy.backoff());
        let mut attempt = 1;
        let released = loop {
            let result = AssertUnwindSafe(self.picker.release(meta.clone()))
                .catch_unwind()
                .await;
            match result {
                Ok(Ok(())) => break true,
                Ok(Err(error))
                    if attempt < policy.max_attempts() && self.picker.is_retryable(&error) =>
                {
                    tracing::warn!(stage = %self.config.stage, %job, %error, attempt, "release failed; retrying");
                }
                Ok(Err(error)) => {
                    tracing::error!(stage = %self.config.stage, %job, %error, attempt, "release failed; giving up");
                    break false;
                }
                Err(payload) => {
                    let message = panic_message(payload.as_ref());
                    tracing::error!(stage = %self.config.stage, %job, %message, "the picker panicked releasing a job");
                    break false;
                }
            }
            attempt += 1;
            self.runtime
                .sleep(backoff.next_delay(self.runtime.random_u64()))
                .await;
        };
        let claimed = self.stats.unclaim();
        self.meters.claimed.set(claimed as f64);
        if released {
            self.stats.released.fetch_add(1, Relaxed);
            self.meters.released.increment(1);
            lock(&self.released).push(job);
            tracing::info!(stage = %self.config.stage, %job, "released");
        } else {
            lock(&self.release_failed).push(job);
        }
        released
    }

    /// Sleeps `delay`, waking early when picking stops. Returns false if it did.
    pub(crate) async fn sleep_unless_stopped(&self, delay: std::time::Duration) -> bool {
        tokio::select! {
            biased;
            () = self.stop_picking.cancelled() => false,
            () = self.runtime.sleep(delay) => true,
        }
    }
}
