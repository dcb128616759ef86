//! Regression tests for the runner's fault holes (issue 12). Each one failed
//! (or hung) on the runner before its fix.

#![allow(clippy::unwrap_used)] // a test that cannot lock its own mutex should fail loudly

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use common::{Doubler, Gated, Queue};
use pjp_core::{
    Executor, Job, JobContext, JobId, JobPicker, JobResult, JobRunner, JobSaver, Picked,
    ReleaseReason, RunErrorKind, Shutdown, StopReason, stage,
};
use pjp_runtime_tokio::TokioRuntime;
use pjp_testkit::wait::{eventually, within};
use pjp_testkit::{QueueError, QueueMeta, QueuePicker};
use tokio::sync::Notify;

/// An upstream that records the jobs handed back to it.
#[derive(Default)]
struct Upstream(Mutex<Vec<JobId>>);

impl JobPicker for Upstream {
    type Input = u64;
    type Metadata = JobId;
    type Error = std::io::Error;

    async fn pick(&self) -> Result<Picked<Job<u64, JobId>>, std::io::Error> {
        Ok(Picked::Exhausted)
    }

    async fn release(&self, meta: JobId, _reason: ReleaseReason) -> Result<(), std::io::Error> {
        self.0.lock().unwrap().push(meta);
        Ok(())
    }
}

/// Fault 1: a send racing the downstream's abandon must never strand its job
/// in the channel: it is either handed back by the drain, or refused.
#[test]
fn a_send_racing_an_abandon_never_strands_its_job() {
    const SENDERS: u64 = 3;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    for round in 0..20_000u64 {
        assert!(
            std::time::Instant::now() < deadline,
            "stress test ran too long"
        );
        let upstream = Arc::new(Upstream::default());
        let (tx, rx) = stage::channel::<u64, JobId, _>(8, Arc::clone(&upstream));
        let barrier = Arc::new(Barrier::new(SENDERS as usize + 1));
        let senders: Vec<_> = (0..SENDERS)
            .map(|n| {
                let (barrier, tx) = (Arc::clone(&barrier), tx.clone());
                std::thread::spawn(move || {
                    let id = JobId::new(round * SENDERS + n);
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    barrier.wait();
                    runtime.block_on(tx.send(Job::new(id.get(), id))).is_ok()
                })
            })
            .collect();
        drop(tx);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        barrier.wait();
        runtime.block_on(rx.on_abandon());
        let accepted = senders
            .into_iter()
            .map(|s| s.join().unwrap())
            .filter(|&ok| ok)
            .count();
        let handed_back = upstream.0.lock().unwrap().len();
        // Exactly one home per job: handed back upstream by the drain, or
        // refused to its sender (who releases it). Never left in the channel.
        assert_eq!(
            rx.len(),
            0,
            "round {round}: a job was stranded in the channel"
        );
        assert_eq!(
            SENDERS as usize - accepted + handed_back,
            SENDERS as usize,
            "round {round}: {accepted} accepted, {handed_back} handed back"
        );
    }
}

/// Fault 2: once the downstream abandons, the upstream runner releases what it
/// cannot deliver (counted as released, not succeeded) and stops picking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_stops_once_its_downstream_is_gone() -> anyhow::Result<()> {
    let source = Queue::closed_with(0..20);
    let sink = Queue::new();
    let origin = Arc::new(source.picker());
    let (tx, rx) = stage::channel(2, Arc::clone(&origin));
    let a = JobRunner::builder(
        Arc::clone(&origin),
        Doubler::default(),
        tx.on_failure(sink.saver()),
    )
    .stage("a")
    .build()?;
    let gate = Arc::new(Gated::default());
    let b = JobRunner::builder(rx, Arc::clone(&gate), sink.saver())
        .stage("b")
        .prefetch(1)
        .build()?;
    let rt = TokioRuntime::current();
    let b_shutdown = Shutdown::new();
    let a_progress = a.progress();
    let stop = async {
        gate.wait_started(1).await;
        // B runs one job, holds one in its prefetch, two wait in the channel,
        // and A is blocked sending the next.
        // Four delivered (two to B, two in the channel) and a fifth picked:
        // A's send of it is blocked. (Picks alone say nothing about sends on
        // a loaded machine.)
        eventually("A blocked on a full channel", || {
            let a = a_progress.snapshot();
            a.counts.succeeded >= 4 && a.counts.picked >= 5
        })
        .await;
        b_shutdown.abandon();
        eventually("B released its prefetched job", || {
            b.progress().snapshot().counts.released == 1
        })
        .await;
        gate.open();
    };
    let (ra, rb, ()) = within("abandon downstream", async {
        tokio::join!(
            a.into_run(&rt, Shutdown::new()),
            b.run(&rt, b_shutdown.clone()),
            stop
        )
    })
    .await;
    let (ra, rb) = (ra?, rb?);
    assert_eq!(rb.stop, StopReason::Abandoned);
    assert_eq!(ra.stop, StopReason::DownstreamGone);
    assert_eq!(
        (rb.counts.picked, rb.counts.succeeded, rb.released.len()),
        (2, 1, 1)
    );
    // A delivered B's two jobs and the two in the channel; the rest it picked
    // it released.
    assert_eq!(ra.counts.succeeded, 4);
    assert_eq!(
        ra.counts.picked,
        ra.counts.succeeded + ra.released.len() as u64
    );
    assert!(
        ra.counts.picked < 20,
        "A kept picking after its downstream left"
    );
    assert_eq!(sink.saved_count(), 1);
    assert_eq!(
        source.pending(),
        19,
        "every other job is back at the source"
    );
    // A job the channel handed back on abandon may be picked once more by
    // A before its refused send stops A's picking: a bounded race, never a
    // loop.
    assert!(
        source.pick_counts().iter().all(|&n| n <= 2),
        "{:?}",
        source.pick_counts()
    );
    Ok(())
}

/// A picker whose claim commits at once but whose reply is held until `reply`
/// is notified: the dangerous moment for a drain.
struct SlowReply {
    inner: QueuePicker<u64, u64, String>,
    entered: Notify,
    reply: Notify,
}

impl JobPicker for SlowReply {
    type Input = u64;
    type Metadata = QueueMeta;
    type Error = QueueError;

    async fn pick(&self) -> Result<Picked<Job<u64, QueueMeta>>, QueueError> {
        let claimed = self.inner.pick().await?;
        self.entered.notify_one();
        self.reply.notified().await;
        Ok(claimed)
    }

    async fn release(&self, meta: QueueMeta, reason: ReleaseReason) -> Result<(), QueueError> {
        self.inner.release(meta, reason).await
    }
}

/// Fault 4: a drain lets an in-flight pick finish and runs its job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_runs_the_job_of_an_in_flight_pick() -> anyhow::Result<()> {
    let queue = Queue::new();
    queue.extend(0..3);
    let picker = Arc::new(SlowReply {
        inner: queue.picker(),
        entered: Notify::new(),
        reply: Notify::new(),
    });
    let runner = JobRunner::builder(Arc::clone(&picker), Doubler::default(), queue.saver())
        .prefetch(1)
        .build()?;
    let shutdown = Shutdown::new();
    let drive = async {
        picker.entered.notified().await;
        shutdown.drain();
        // Let the runner act on the drain before the reply arrives (the
        // fixed runner waits for the reply whatever the order).
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        picker.reply.notify_one();
    };
    let rt = TokioRuntime::current();
    let (report, ()) = within("drain", async {
        tokio::join!(runner.run(&rt, shutdown.clone()), drive)
    })
    .await;
    let report = report?;
    assert_eq!((report.counts.picked, report.counts.succeeded), (1, 1));
    assert_eq!(queue.claimed(), 0, "no claim is stranded");
    assert_eq!(queue.saved_count() + queue.pending(), 3);
    Ok(())
}

/// Fault 8: one picker seeing `Exhausted` stops the others.
#[derive(Default)]
struct ExhaustedOnce(AtomicBool);

impl JobPicker for ExhaustedOnce {
    type Input = u64;
    type Metadata = QueueMeta;
    type Error = QueueError;

    async fn pick(&self) -> Result<Picked<Job<u64, QueueMeta>>, QueueError> {
        Ok(if self.0.swap(true, Ordering::SeqCst) {
            Picked::Empty
        } else {
            Picked::Exhausted
        })
    }

    async fn release(&self, _meta: QueueMeta, _reason: ReleaseReason) -> Result<(), QueueError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_exhausted_picker_stops_the_others() -> anyhow::Result<()> {
    let queue = Queue::new();
    let runner = JobRunner::builder(ExhaustedOnce::default(), Doubler::default(), queue.saver())
        .pickers(2)
        .empty_backoff(pjp_core::BackoffPolicy::new(
            Duration::from_secs(3600),
            Duration::from_secs(3600),
        ))
        .build()?;
    let rt = TokioRuntime::current();
    let report = within("exhausted run", runner.run(&rt, Shutdown::new())).await?;
    assert_eq!(report.stop, StopReason::Exhausted);
    Ok(())
}

/// Fault 8: a `pick_many` that returns more than asked still counts every job
/// against the prefetch bound.
struct Generous(Mutex<VecDeque<u64>>);

impl JobPicker for Generous {
    type Input = u64;
    type Metadata = QueueMeta;
    type Error = QueueError;

    async fn pick(&self) -> Result<Picked<Job<u64, QueueMeta>>, QueueError> {
        self.pick_many(1)
            .await
            .map(|p| p.map(|mut jobs| jobs.remove(0)))
    }

    async fn pick_many(&self, max: usize) -> Result<Picked<Vec<Job<u64, QueueMeta>>>, QueueError> {
        let mut queue = self.0.lock().unwrap();
        let jobs: Vec<_> = (0..max * 3)
            .filter_map(|_| queue.pop_front())
            .map(|n| {
                let meta = QueueMeta {
                    id: JobId::new(n),
                    attempt: 1,
                };
                Job::new(n, meta)
            })
            .collect();
        Ok(if jobs.is_empty() {
            Picked::Exhausted
        } else {
            Picked::Some(jobs)
        })
    }

    async fn release(&self, meta: QueueMeta, _reason: ReleaseReason) -> Result<(), QueueError> {
        self.0.lock().unwrap().push_back(meta.id.get());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_batch_counts_against_the_prefetch_bound() -> anyhow::Result<()> {
    let sink = Queue::new();
    let gate = Arc::new(Gated::default());
    let runner = JobRunner::builder(
        Generous(Mutex::new((0..60).collect())),
        Arc::clone(&gate),
        sink.saver(),
    )
    .prefetch(4)
    .pick_batch(4)
    .build()?;
    let progress = runner.progress();
    let open = async {
        gate.wait_started(1).await;
        // Whatever the picker does, the runner never holds more than it promised.
        eventually("prefetch full", || progress.snapshot().counts.picked >= 5).await;
        gate.open();
    };
    let rt = TokioRuntime::current();
    let (report, ()) = within("oversized batches", async {
        tokio::join!(runner.run(&rt, Shutdown::new()), open)
    })
    .await;
    let report = report?;
    assert_eq!(report.counts.succeeded, 60);
    assert!(
        report.peak_claimed <= report.max_claimed,
        "held {} claimed, promised at most {}",
        report.peak_claimed,
        report.max_claimed
    );
    Ok(())
}

/// Fault 5: a timed-out blocking job keeps its worker slot until its closure
/// really returns, so work in flight stays bounded.
struct HangsOnZero {
    gate: Gated,
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl Executor for HangsOnZero {
    type Input = u64;
    type Output = u64;
    type Error = String;

    fn execute(&self, input: u64, job: &JobContext) -> Result<u64, String> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        if input == 0 {
            let _ = self.gate.execute(input, job);
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(input)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_job_holds_its_worker_until_it_returns() -> anyhow::Result<()> {
    let queue = Queue::closed_with(0..3);
    let executor = Arc::new(HangsOnZero {
        gate: Gated::default(),
        running: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
    });
    let runner = JobRunner::builder(queue.picker(), Arc::clone(&executor), queue.saver())
        .workers(1)
        // Long enough that the instant jobs never time out on a loaded machine.
        .job_timeout(Duration::from_millis(300))
        .build()?;
    let progress = runner.progress();
    let open = async {
        eventually("the hung job was saved as timed out", || {
            progress.snapshot().counts.failed == 1
        })
        .await;
        executor.gate.open();
    };
    let rt = TokioRuntime::current();
    let (report, ()) = within("timeouts", async {
        tokio::join!(runner.run(&rt, Shutdown::new()), open)
    })
    .await;
    let report = report?;
    assert_eq!((report.counts.timed_out, report.counts.succeeded), (1, 2));
    assert_eq!(
        executor.peak.load(Ordering::SeqCst),
        1,
        "one worker ran two jobs at once"
    );
    assert_eq!(report.counts.stragglers, 1);
    Ok(())
}

/// Fault 3: a user callback that panics (here `classify` of the saver) does
/// not kill the saver task and stall the run.
struct PanickyClassifier {
    inner: pjp_testkit::QueueSaver<u64, u64, String>,
    failed_once: AtomicU32,
}

impl JobSaver for PanickyClassifier {
    type Output = u64;
    type Failure = String;
    type Metadata = QueueMeta;
    type Error = QueueError;

    async fn save(
        &self,
        result: &JobResult<u64, String>,
        meta: &QueueMeta,
    ) -> Result<(), QueueError> {
        if meta.id.get() == 3 && self.failed_once.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(QueueError::UnknownJob(meta.id));
        }
        self.inner.save(result, meta).await
    }

    fn classify(&self, _error: &QueueError) -> pjp_core::ErrorClass {
        panic!("classify panicked")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_callback_does_not_stall_the_run() -> anyhow::Result<()> {
    let queue = Queue::closed_with(0..10);
    let saver = PanickyClassifier {
        inner: queue.saver(),
        failed_once: AtomicU32::new(0),
    };
    let runner = JobRunner::builder(queue.picker(), Doubler::default(), saver)
        .savers(1)
        .build()?;
    let rt = TokioRuntime::current();
    let report = within(
        "run with a panicking callback",
        runner.run(&rt, Shutdown::new()),
    )
    .await?;
    // The job whose error could not be classified gave up and was released;
    // picked again, it was saved. The run went on throughout.
    assert_eq!(report.save_gave_up, vec![JobId::new(3)]);
    assert_eq!(report.released, vec![JobId::new(3)]);
    assert_eq!((report.counts.picked, report.counts.succeeded), (11, 10));
    assert_eq!(queue.saved_count(), 10);
    Ok(())
}

/// A saver whose every save fails and whose `classify` panics.
struct AlwaysFailsPanickyClassifier;

impl JobSaver for AlwaysFailsPanickyClassifier {
    type Output = u64;
    type Failure = String;
    type Metadata = QueueMeta;
    type Error = QueueError;

    async fn save(&self, _: &JobResult<u64, String>, meta: &QueueMeta) -> Result<(), QueueError> {
        Err(QueueError::UnknownJob(meta.id))
    }

    fn classify(&self, _error: &QueueError) -> pjp_core::ErrorClass {
        panic!("classify broke")
    }
}

/// A panic in the saver's `classify` is reported as that panic, with the
/// error it was classifying, not as the save error alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_save_classifier_is_reported_as_a_panic() -> anyhow::Result<()> {
    let queue = Queue::closed_with(0..1);
    let runner = JobRunner::builder(
        queue.picker(),
        Doubler::default(),
        AlwaysFailsPanickyClassifier,
    )
    .sink_gone_after(1)
    .build()?;
    let rt = TokioRuntime::current();
    let error = within("run", runner.run(&rt, Shutdown::new()))
        .await
        .expect_err("the sink is gone");
    match error.kind() {
        RunErrorKind::SinkGone { last_error, .. } => {
            assert!(
                last_error.contains("`JobSaver::classify` panicked: classify broke")
                    && last_error.contains("job 0 is not in this queue"),
                "{last_error}"
            );
        }
        other => panic!("{other:?}"),
    }
    Ok(())
}

/// A picker whose every pick fails and whose `classify` panics.
struct PanickyPickClassifier;

impl JobPicker for PanickyPickClassifier {
    type Input = u64;
    type Metadata = QueueMeta;
    type Error = QueueError;

    async fn pick(&self) -> Result<Picked<Job<u64, QueueMeta>>, QueueError> {
        Err(QueueError::UnknownJob(JobId::new(7)))
    }

    async fn release(&self, _meta: QueueMeta, _reason: ReleaseReason) -> Result<(), QueueError> {
        Ok(())
    }

    fn classify(&self, _error: &QueueError) -> pjp_core::ErrorClass {
        panic!("classify broke")
    }
}

/// A panic in the picker's `classify` fails the run as a panicked callback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_pick_classifier_is_reported_as_a_panic() -> anyhow::Result<()> {
    let queue = Queue::new();
    let runner =
        JobRunner::builder(PanickyPickClassifier, Doubler::default(), queue.saver()).build()?;
    let rt = TokioRuntime::current();
    let error = within("run", runner.run(&rt, Shutdown::new()))
        .await
        .expect_err("the picker's callback broke");
    match error.kind() {
        RunErrorKind::CallbackPanicked { callback, message } => {
            assert_eq!(*callback, "JobPicker::classify");
            assert!(
                message.contains("classify broke")
                    && message.contains("job 7 is not in this queue"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    Ok(())
}

/// Hook: a running job can be cancelled by id (a lost lease). A blocking
/// executor sees it through its context and stops; the job is saved as
/// cancelled and counted.
struct UntilCancelled {
    started: Notify,
}

impl Executor for UntilCancelled {
    type Input = u64;
    type Output = u64;
    type Error = String;

    fn execute(&self, input: u64, job: &JobContext) -> Result<u64, String> {
        if input != 0 {
            return Ok(input);
        }
        self.started.notify_one();
        // A long proof checking for cancellation between rounds; bounded so a
        // broken runner fails the test instead of hanging it.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !job.is_cancelled() {
            assert!(std::time::Instant::now() < deadline, "never cancelled");
            std::thread::yield_now();
        }
        Err("stopped".to_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_can_be_cancelled_by_id() -> anyhow::Result<()> {
    let queue = Queue::closed_with(0..4);
    let executor = Arc::new(UntilCancelled {
        started: Notify::new(),
    });
    let cancels = pjp_core::JobCancels::new();
    let runner = JobRunner::builder(queue.picker(), Arc::clone(&executor), queue.saver())
        .workers(2)
        .job_cancels(cancels.clone())
        .build()?;
    let cancel = async {
        executor.started.notified().await;
        assert!(cancels.running().contains(&JobId::new(0)));
        assert!(cancels.cancel(JobId::new(0)));
    };
    let rt = TokioRuntime::current();
    let (report, ()) = within("cancel by id", async {
        tokio::join!(runner.run(&rt, Shutdown::new()), cancel)
    })
    .await;
    let report = report?;
    assert_eq!(
        (
            report.counts.cancelled,
            report.counts.failed,
            report.counts.succeeded
        ),
        (1, 1, 3)
    );
    let zero = queue.saved().into_iter().find(|s| s.meta.id.get() == 0);
    assert_eq!(
        zero.map(|s| s.result),
        Some(Err(pjp_core::ExecError::Cancelled))
    );
    assert!(
        cancels.running().is_empty(),
        "finished jobs are deregistered"
    );
    assert!(!cancels.cancel(JobId::new(0)));
    Ok(())
}

/// Hook: on abandon, the jobs queued unstarted go back in one `release_many`.
struct CountsBatches {
    inner: QueuePicker<u64, u64, String>,
    batches: Mutex<Vec<usize>>,
}

impl JobPicker for CountsBatches {
    type Input = u64;
    type Metadata = QueueMeta;
    type Error = QueueError;

    async fn pick(&self) -> Result<Picked<Job<u64, QueueMeta>>, QueueError> {
        self.inner.pick().await
    }

    async fn release(&self, meta: QueueMeta, reason: ReleaseReason) -> Result<(), QueueError> {
        self.inner.release(meta, reason).await
    }

    async fn release_many(
        &self,
        metas: Vec<QueueMeta>,
        reason: pjp_core::ReleaseReason,
    ) -> Vec<Result<(), QueueError>> {
        self.batches.lock().unwrap().push(metas.len());
        let mut outcomes = Vec::new();
        for meta in metas {
            outcomes.push(self.inner.release(meta, reason).await);
        }
        outcomes
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandon_releases_the_queued_jobs_in_one_batch() -> anyhow::Result<()> {
    let queue = Queue::new();
    queue.extend(0..100);
    let picker = Arc::new(CountsBatches {
        inner: queue.picker(),
        batches: Mutex::default(),
    });
    let gate = Arc::new(Gated::default());
    let runner = JobRunner::builder(Arc::clone(&picker), Arc::clone(&gate), queue.saver())
        .workers(1)
        .prefetch(5)
        .build()?;
    let shutdown = Shutdown::new();
    let progress = runner.progress();
    let stop = async {
        gate.wait_started(1).await;
        eventually("prefetch full", || progress.snapshot().counts.picked == 6).await;
        shutdown.abandon();
        eventually("queued jobs released", || {
            progress.snapshot().counts.released == 5
        })
        .await;
        gate.open();
    };
    let rt = TokioRuntime::current();
    let (report, ()) = within("abandon", async {
        tokio::join!(runner.run(&rt, shutdown.clone()), stop)
    })
    .await;
    let report = report?;
    assert_eq!((report.released.len(), report.counts.succeeded), (5, 1));
    assert_eq!(*picker.batches.lock().unwrap(), vec![5]);
    assert_eq!(queue.pending(), 99);
    Ok(())
}

/// The async form: a running job's future is dropped when it is cancelled.
struct PendsUntilDropped {
    started: Notify,
    dropped: Arc<std::sync::atomic::AtomicBool>,
}

/// Sets its flag when the future holding it is dropped.
struct SetOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl pjp_core::AsyncExecutor for PendsUntilDropped {
    type Input = u64;
    type Output = u64;
    type Error = String;

    async fn execute(&self, input: u64, _job: &JobContext) -> Result<u64, String> {
        if input != 0 {
            return Ok(input);
        }
        let _guard = SetOnDrop(Arc::clone(&self.dropped));
        self.started.notify_one();
        std::future::pending::<()>().await;
        Ok(input)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_async_job_is_cancelled_by_dropping_its_future() -> anyhow::Result<()> {
    let queue = Queue::closed_with(0..4);
    let executor = Arc::new(PendsUntilDropped {
        started: Notify::new(),
        dropped: Arc::default(),
    });
    let cancels = pjp_core::JobCancels::new();
    let runner = JobRunner::builder_async(queue.picker(), Arc::clone(&executor), queue.saver())
        .workers(2)
        .job_cancels(cancels.clone())
        .build()?;
    let cancel = async {
        executor.started.notified().await;
        assert!(cancels.cancel(JobId::new(0)));
    };
    let rt = TokioRuntime::current();
    let (report, ()) = within("cancel an async job", async {
        tokio::join!(runner.run(&rt, Shutdown::new()), cancel)
    })
    .await;
    let report = report?;
    assert_eq!((report.counts.cancelled, report.counts.succeeded), (1, 3));
    assert!(
        executor.dropped.load(std::sync::atomic::Ordering::SeqCst),
        "the job's future was dropped"
    );
    let zero = queue.saved().into_iter().find(|s| s.meta.id.get() == 0);
    assert_eq!(
        zero.map(|s| s.result),
        Some(Err(pjp_core::ExecError::Cancelled))
    );
    Ok(())
}

/// An output whose drop panics once: the only way user code can kill the
/// runner's saver task (every user callback is guarded; a value's `Drop`
/// runs in the runner's own code).
struct Bomb {
    id: u64,
    live: bool,
}

impl Drop for Bomb {
    fn drop(&mut self) {
        if self.live && self.id == 3 {
            panic!("output 3 exploded on drop");
        }
    }
}

struct MakesBombs;

impl Executor for MakesBombs {
    type Input = u64;
    type Output = Bomb;
    type Error = String;

    fn execute(&self, input: u64, _job: &JobContext) -> Result<Bomb, String> {
        Ok(Bomb {
            id: input,
            live: true,
        })
    }
}

#[derive(Default)]
struct Records(Mutex<Vec<u64>>);

impl pjp_core::JobSaver for Records {
    type Output = Bomb;
    type Failure = String;
    type Metadata = QueueMeta;
    type Error = QueueError;

    async fn save(
        &self,
        result: &pjp_core::JobResult<Bomb, String>,
        meta: &QueueMeta,
    ) -> Result<(), QueueError> {
        assert!(result.is_ok());
        common::lock(&self.0).push(meta.id.get());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_saver_task_fails_the_run_and_its_queued_results_are_released() -> anyhow::Result<()>
{
    let queue = Queue::closed_with(0..40);
    let saver = Arc::new(Records::default());
    let runner = JobRunner::builder(queue.picker(), MakesBombs, Arc::clone(&saver))
        .workers(2)
        .prefetch(8)
        .save_queue(8)
        .savers(1)
        .build()?;
    let rt = TokioRuntime::current();
    let error = within("a dead saver", runner.run(&rt, Shutdown::new()))
        .await
        .expect_err("the run fails");
    assert!(
        matches!(
            error.kind(),
            pjp_core::RunErrorKind::TaskDied { task: "saver", .. }
        ),
        "{error}"
    );
    let report = error.report();
    assert_eq!(report.unaccounted(), 0, "{report:?}");
    // Every job was saved or handed back, never dropped.
    let saved = common::lock(&saver.0).clone();
    let back = queue.pending_ids();
    assert!(saved.contains(&3));
    for id in 0..40u64 {
        let in_saved = saved.contains(&id);
        let in_queue = back.contains(&JobId::new(id));
        assert!(
            in_saved ^ in_queue,
            "job {id}: saved {in_saved}, back in the queue {in_queue}"
        );
    }
    assert_eq!(report.saved() as usize, saved.len(), "{report:?}");
    assert!(
        !report.released.is_empty(),
        "jobs were still queued when the saver died"
    );
    assert!(report.released.iter().all(|id| back.contains(id)));
    assert_eq!(
        back.len() as u64,
        report.released.len() as u64 + (40 - report.counts.picked),
        "back in the queue: the released ones and the never picked"
    );
    Ok(())
}
