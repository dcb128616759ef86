//! The state a run's tasks share, and the bookkeeping they all do: release a
//! job, classify an error, record a fatal error.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;

use super::latency::latency_histogram;
use super::meters::Meters;
use super::stats::Stats;
use super::{RunErrorKind, RunnerConfig};
use crate::guard::{describe, guard, lock, panic_message};
use crate::{Backoff, ErrorClass, JobId, JobPicker, JobSaver, ReleaseReason, Runtime};

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
    /// A save found the next stage gone.
    pub(crate) downstream_gone: AtomicBool,
    /// Set when a drain's grace period ran out (releases then say `Drain`).
    pub(crate) grace_expired: AtomicBool,
    /// Jobs in a row whose saves gave up; reset by every successful save.
    pub(crate) consecutive_give_ups: AtomicU32,
    fatal: Mutex<Option<RunErrorKind>>,
    pub(crate) released: Mutex<Vec<JobId>>,
    pub(crate) release_failed: Mutex<Vec<JobId>>,
    pub(crate) save_gave_up: Mutex<Vec<JobId>>,
    pub(crate) job_latency: Mutex<Histogram<u64>>,
    pub(crate) exec_time: Mutex<Histogram<u64>>,
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
            downstream_gone: AtomicBool::new(false),
            grace_expired: AtomicBool::new(false),
            consecutive_give_ups: AtomicU32::new(0),
            fatal: Mutex::new(None),
            released: Mutex::new(Vec::new()),
            release_failed: Mutex::new(Vec::new()),
            save_gave_up: Mutex::new(Vec::new()),
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

    /// The source is exhausted: every picker stops, not just the one that saw it.
    pub(crate) fn mark_exhausted(&self) {
        self.exhausted.store(true, Relaxed);
        self.stop_picking.cancel();
    }

    /// The reason to give for a job released because the run is abandoning.
    pub(crate) fn abandon_reason(&self) -> ReleaseReason {
        if self.downstream_gone.load(Relaxed) {
            ReleaseReason::DownstreamGone
        } else if self.grace_expired.load(Relaxed) {
            ReleaseReason::Drain
        } else {
            ReleaseReason::Abandon
        }
    }

    /// The class of a picker error; a `classify` that panics means `Permanent`.
    pub(crate) fn classify_pick_error(&self, error: &P::Error) -> ErrorClass {
        guard(|| self.picker.classify(error)).unwrap_or_else(|message| {
            tracing::error!(stage = %self.config.stage, %message, "JobPicker::classify panicked");
            ErrorClass::Permanent
        })
    }

    /// Hands a claimed job back to the picker, retrying transient errors per
    /// the save retry policy. Returns whether it was released; either way the
    /// job is accounted for (in `released` or `release_failed`).
    pub(crate) async fn release(
        &self,
        meta: P::Metadata,
        job: JobId,
        reason: ReleaseReason,
    ) -> bool {
        let policy = self.config.save_retry;
        let mut backoff = Backoff::new(policy.backoff());
        let mut attempt = 1;
        let released = loop {
            let result = AssertUnwindSafe(self.picker.release_for(meta.clone(), reason))
                .catch_unwind()
                .await;
            match result {
                Ok(Ok(())) => break true,
                Ok(Err(error)) => {
                    let text = describe(&error);
                    let class = self.classify_pick_error(&error);
                    if class != ErrorClass::Transient || attempt >= policy.max_attempts() {
                        tracing::error!(stage = %self.config.stage, %job, error = %text, attempt, ?class, "release failed; giving up");
                        break false;
                    }
                    tracing::warn!(stage = %self.config.stage, %job, error = %text, attempt, "release failed; retrying");
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
        if released {
            self.released_one(job, reason);
        } else {
            self.release_failed_one(job);
        }
        released
    }

    /// Hands a batch of jobs back with one `release_many`; a job whose release
    /// failed transiently (or got no outcome) is retried alone, as
    /// [`release`](Self::release) does. Every job ends in `released` or
    /// `release_failed`.
    pub(crate) async fn release_batch(
        &self,
        metas: Vec<P::Metadata>,
        ids: Vec<JobId>,
        reason: ReleaseReason,
    ) {
        if metas.len() == 1 {
            if let (Some(meta), Some(&id)) = (metas.into_iter().next(), ids.first()) {
                self.release(meta, id, reason).await;
            }
            return;
        }
        let retry_copies = metas.clone();
        let outcomes = AssertUnwindSafe(self.picker.release_many(metas, reason))
            .catch_unwind()
            .await
            .unwrap_or_default();
        let mut outcomes = outcomes.into_iter();
        for (meta, id) in retry_copies.into_iter().zip(ids) {
            match outcomes.next() {
                Some(Ok(())) => self.released_one(id, reason),
                Some(Err(error)) if self.classify_pick_error(&error) != ErrorClass::Transient => {
                    let error = describe(&error);
                    tracing::error!(stage = %self.config.stage, job = %id, %error, "release failed; giving up");
                    self.release_failed_one(id);
                }
                // Transient, missing, or the batch call panicked: one at a time.
                _ => {
                    self.release(meta, id, reason).await;
                }
            }
        }
    }

    fn released_one(&self, job: JobId, reason: ReleaseReason) {
        let claimed = self.stats.unclaim();
        self.meters.claimed.set(claimed as f64);
        self.stats.released.fetch_add(1, Relaxed);
        self.meters.released.increment(1);
        lock(&self.released).push(job);
        tracing::info!(stage = %self.config.stage, %job, %reason, "released");
    }

    fn release_failed_one(&self, job: JobId) {
        let claimed = self.stats.unclaim();
        self.meters.claimed.set(claimed as f64);
        lock(&self.release_failed).push(job);
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

impl<P, X, S, R> Context<P, X, S, R>
where
    S: JobSaver,
{
    /// The class of a saver error; a `classify` that panics means `Permanent`.
    pub(crate) fn classify_save_error(&self, error: &S::Error) -> ErrorClass {
        guard(|| self.saver.classify(error)).unwrap_or_else(|message| {
            tracing::error!(stage = %self.config.stage, %message, "JobSaver::classify panicked");
            ErrorClass::Permanent
        })
    }
}
