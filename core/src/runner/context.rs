//! The state a run's tasks share, and the bookkeeping they all do: classify
//! an error, record a fatal error (releases are in `release.rs`).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;

use super::counts::Count;
use super::latency::latency_histogram;
use super::meters::Meters;
use super::stats::Stats;
use super::{RunErrorKind, RunnerConfig};
use crate::guard::{guard, lock};
use crate::observe::{Activity, ActivitySpan, Lane, Observer};
use crate::{ErrorClass, JobId, JobPicker, JobSaver, ReleaseReason, Runtime};

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
    /// Told what each task did when, if the user asked.
    observer: Option<Observer>,
}

impl<P, X, S, R> Context<P, X, S, R> {
    /// Adds `n` to `count`, in the live counters and its metric alike.
    pub(crate) fn count(&self, count: Count, n: u64) {
        self.stats.add(count, n);
        self.meters.add(count, n);
    }

    /// One more job held claimed: counted as picked, the gauge updated.
    pub(crate) fn claim(&self) {
        self.count(Count::Picked, 1);
        let claimed = self.stats.claim();
        self.meters.claimed.set(claimed as f64);
    }
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
            observer: None,
        }
    }

    /// Reports the run's activity spans to `observer`.
    pub(crate) fn with_observer(mut self, observer: Option<Observer>) -> Self {
        self.observer = observer;
        self
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
        self.try_classify_pick_error(error)
            .unwrap_or(ErrorClass::Permanent)
    }

    /// The class of a picker error, or the message of the panic of a
    /// `classify` that panicked (logged here).
    pub(crate) fn try_classify_pick_error(&self, error: &P::Error) -> Result<ErrorClass, String> {
        guard(|| self.picker.classify(error)).inspect_err(|message| {
            tracing::error!(stage = %self.config.stage, %message, "JobPicker::classify panicked");
        })
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
    R: Runtime,
{
    /// The start of a span to [`observe`](Self::observe): the runtime's `now`
    /// if there is an observer, `None` (and no clock read) otherwise.
    pub(crate) fn span_start(&self) -> Option<std::time::Instant> {
        self.observer.as_ref().map(|_| self.runtime.now())
    }

    /// Reports a span that started at `start` and ends now. Does nothing
    /// without an observer (or without a start).
    pub(crate) fn observe(
        &self,
        lane: Lane,
        activity: Activity,
        start: Option<std::time::Instant>,
        jobs: u32,
    ) {
        if let (Some(observer), Some(start)) = (&self.observer, start) {
            report(observer, lane, activity, start, self.runtime.now(), jobs);
        }
    }

    /// Reports a span that started at `start` and ended at `end`, if there is
    /// an observer; `jobs` is only called then.
    pub(crate) fn observe_span(
        &self,
        lane: Lane,
        activity: Activity,
        start: std::time::Instant,
        end: std::time::Instant,
        jobs: impl FnOnce() -> u32,
    ) {
        if let Some(observer) = &self.observer {
            report(observer, lane, activity, start, end, jobs());
        }
    }
}

fn report(
    observer: &Observer,
    lane: Lane,
    activity: Activity,
    start: std::time::Instant,
    end: std::time::Instant,
    jobs: u32,
) {
    observer.report(&ActivitySpan {
        lane,
        activity,
        start,
        // A clock that is not monotonic (a buggy runtime) still gives an
        // ordered span.
        end: end.max(start),
        jobs,
    });
}

impl<P, X, S, R> Context<P, X, S, R>
where
    S: JobSaver,
{
    /// The class of a saver error, or the message of the panic of a
    /// `classify` that panicked (logged here).
    pub(crate) fn classify_save_error(&self, error: &S::Error) -> Result<ErrorClass, String> {
        guard(|| self.saver.classify(error)).inspect_err(|message| {
            tracing::error!(stage = %self.config.stage, %message, "JobSaver::classify panicked");
        })
    }
}
