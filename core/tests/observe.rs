//! The observer hook: every pick, execution, save and back-off of a run is
//! reported once, on the lane of the task that did it, timed by the runtime.

#![allow(clippy::unwrap_used)] // a test that cannot lock its own mutex should fail loudly

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pjp_core::memory::{MemoryQueue, QueueError, QueueMeta, QueuePicker, QueueSaver};
use pjp_core::observe::{Activity, ActivitySpan, Lane, Recorder, Role, RunObserver};
use pjp_core::{
    BackoffPolicy, Executor, Job, JobContext, JobPicker, JobResult, JobRunner, JobSaver, Picked,
    ReleaseReason, RetryPolicy, Runtime, Shutdown,
};
use pjp_runtime_tokio::TokioRuntime;

type Queue = MemoryQueue<u64, u64, String>;

/// `input * 2`, recording each input it executes (clones share the list).
#[derive(Default, Clone)]
struct Double {
    runs: Arc<Mutex<Vec<u64>>>,
}

impl Executor for Double {
    type Input = u64;
    type Output = u64;
    type Error = String;

    fn execute(&self, input: u64, _job: &JobContext) -> Result<u64, String> {
        self.runs.lock().unwrap().push(input);
        Ok(input * 2)
    }
}

/// A picker that finds nothing for its first `empty` picks, then delegates.
struct EmptyFirst {
    inner: QueuePicker<u64, u64, String>,
    empty: AtomicU32,
}

impl JobPicker for EmptyFirst {
    type Input = u64;
    type Metadata = QueueMeta;
    type Error = QueueError;

    async fn pick(&self) -> Result<Picked<Job<u64, QueueMeta>>, QueueError> {
        if self
            .empty
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Ok(Picked::Empty);
        }
        self.inner.pick().await
    }

    async fn release(&self, meta: QueueMeta, reason: ReleaseReason) -> Result<(), QueueError> {
        self.inner.release(meta, reason).await
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the database blinked")]
struct Blink;

/// A saver whose first call fails transiently; later calls delegate.
struct FailFirst {
    inner: QueueSaver<u64, u64, String>,
    failed: AtomicU32,
}

impl JobSaver for FailFirst {
    type Output = u64;
    type Failure = String;
    type Metadata = QueueMeta;
    type Error = Blink;

    async fn save(&self, result: &JobResult<u64, String>, meta: &QueueMeta) -> Result<(), Blink> {
        if self.failed.swap(1, Ordering::SeqCst) == 0 {
            return Err(Blink);
        }
        self.inner.save(result, meta).await.map_err(|_| Blink)
    }
}

fn fast_backoff() -> BackoffPolicy {
    BackoffPolicy::new(Duration::from_millis(1), Duration::from_millis(2))
}

fn count(spans: &[ActivitySpan], activity: Activity) -> usize {
    spans.iter().filter(|s| s.activity == activity).count()
}

fn jobs(spans: &[ActivitySpan], activity: Activity) -> u64 {
    spans
        .iter()
        .filter(|s| s.activity == activity)
        .map(|s| u64::from(s.jobs))
        .sum()
}

/// What holds for the spans of any run: ordered times inside the run, and
/// each activity on the lanes of the role that does it.
fn check_lanes(spans: &[ActivitySpan], before: Instant, after: Instant, workers: usize) {
    for span in spans {
        assert!(span.end >= span.start, "{span:?} ends before it starts");
        assert!(
            span.start >= before && span.end <= after,
            "{span:?} outside the run"
        );
        match span.activity {
            Activity::Pick => assert_eq!(span.lane, Lane::new(Role::Picker, 0), "{span:?}"),
            Activity::Execute => {
                assert_eq!(span.lane.role, Role::Worker, "{span:?}");
                assert!(span.lane.index < workers, "{span:?}");
                assert_eq!(span.jobs, 1, "{span:?}");
            }
            Activity::Save => assert_eq!(span.lane, Lane::new(Role::Saver, 0), "{span:?}"),
            Activity::Backoff => {
                assert_ne!(span.lane.role, Role::Worker, "{span:?}");
                assert_eq!(span.jobs, 0, "{span:?}");
            }
            other => panic!("unexpected activity {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pick_execution_and_save_is_reported_on_its_lane() -> anyhow::Result<()> {
    const JOBS: u64 = 40;
    let queue = Queue::closed_with(1..=JOBS);
    let recorder = Recorder::new();
    let executor = Double::default();
    let runner = JobRunner::builder(queue.picker(), executor.clone(), queue.saver())
        .workers(2)
        .pickers(1)
        .savers(1)
        .observer(Arc::new(recorder.clone()))
        .build()?;
    let runtime = TokioRuntime::current();
    let before = runtime.now();
    let report = runner.run(&runtime, Shutdown::new()).await?;
    let after = runtime.now();
    assert_eq!(report.counts.succeeded, JOBS);

    let spans = recorder.take();
    assert!(
        recorder.spans().is_empty(),
        "take leaves the recorder empty"
    );
    check_lanes(&spans, before, after, 2);

    // Every job executed exactly once, and one Execute span per execution.
    let mut runs = executor.runs.lock().unwrap().clone();
    runs.sort_unstable();
    assert_eq!(runs, (1..=JOBS).collect::<Vec<_>>());
    assert_eq!(count(&spans, Activity::Execute), runs.len());
    // The pick calls picked every job; the save calls saved every job.
    assert_eq!(jobs(&spans, Activity::Pick), JOBS);
    assert_eq!(jobs(&spans, Activity::Save), queue.saved_count() as u64);
    assert_eq!(queue.saved_count() as u64, JOBS);
    // One save call per job (save_batch 1), and the last pick found the end.
    assert_eq!(count(&spans, Activity::Save), JOBS as usize);
    assert_eq!(count(&spans, Activity::Pick), JOBS as usize + 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_picks_and_saves_report_their_batch_sizes() -> anyhow::Result<()> {
    const JOBS: u64 = 50;
    let queue = Queue::closed_with(1..=JOBS);
    let recorder = Recorder::new();
    let runner = JobRunner::builder(queue.picker(), Double::default(), queue.saver())
        .workers(2)
        .pickers(1)
        .savers(1)
        .prefetch(8)
        .pick_batch(4)
        .save_queue(8)
        .save_batch(4)
        .observer(Arc::new(recorder.clone()))
        .build()?;
    let runtime = TokioRuntime::current();
    let before = runtime.now();
    let report = runner.run(&runtime, Shutdown::new()).await?;
    let after = runtime.now();
    assert_eq!(report.counts.succeeded, JOBS);

    let spans = recorder.spans();
    check_lanes(&spans, before, after, 2);
    assert_eq!(count(&spans, Activity::Execute), JOBS as usize);
    assert_eq!(jobs(&spans, Activity::Pick), JOBS);
    assert_eq!(jobs(&spans, Activity::Save), JOBS);
    for span in &spans {
        match span.activity {
            Activity::Pick => assert!(span.jobs <= 4, "{span:?}"),
            Activity::Save => assert!((1..=4).contains(&span.jobs), "{span:?}"),
            _ => {}
        }
    }
    // Batches of at most four: at least ceil(50 / 4) calls of each.
    assert!(count(&spans, Activity::Pick) >= 13);
    assert!(count(&spans, Activity::Save) >= 13);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_picks_and_save_retries_back_off_on_their_lanes() -> anyhow::Result<()> {
    const JOBS: u64 = 10;
    let queue = Queue::closed_with(1..=JOBS);
    let picker = EmptyFirst {
        inner: queue.picker(),
        empty: AtomicU32::new(3),
    };
    let saver = FailFirst {
        inner: queue.saver(),
        failed: AtomicU32::new(0),
    };
    let recorder = Recorder::new();
    let runner = JobRunner::builder(picker, Double::default(), saver)
        .workers(2)
        .pickers(1)
        .savers(1)
        .empty_backoff(fast_backoff())
        .save_retry(RetryPolicy::new(5, fast_backoff()))
        .observer(Arc::new(recorder.clone()))
        .build()?;
    let runtime = TokioRuntime::current();
    let before = runtime.now();
    let report = runner.run(&runtime, Shutdown::new()).await?;
    let after = runtime.now();
    assert_eq!(report.counts.succeeded, JOBS);
    assert_eq!(report.counts.save_retries, 1);

    let spans = recorder.spans();
    check_lanes(&spans, before, after, 2);
    let backoffs = |role| {
        spans
            .iter()
            .filter(|s| s.activity == Activity::Backoff && s.lane.role == role)
            .count()
    };
    // One back-off after each of the three empty picks, each on the picker.
    assert_eq!(backoffs(Role::Picker), 3);
    let empty_picks = spans
        .iter()
        .filter(|s| s.activity == Activity::Pick && s.jobs == 0)
        .count();
    assert_eq!(
        empty_picks,
        3 + 1,
        "three empty picks and the exhausted one"
    );
    // One back-off before the failed save is retried, on the saver.
    assert_eq!(backoffs(Role::Saver), 1);
    // The retried job is in two save calls.
    assert_eq!(count(&spans, Activity::Save), JOBS as usize + 1);
    assert_eq!(jobs(&spans, Activity::Save), JOBS + 1);
    assert_eq!(queue.saved_count() as u64, JOBS);
    Ok(())
}

/// An observer that panics on every span.
struct Panicky;

impl RunObserver for Panicky {
    fn on_span(&self, span: &ActivitySpan) {
        panic!("observer cannot take {span:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_observer_does_not_stop_the_run() -> anyhow::Result<()> {
    const JOBS: u64 = 20;
    let queue = Queue::closed_with(1..=JOBS);
    let runner = JobRunner::builder(queue.picker(), Double::default(), queue.saver())
        .workers(2)
        .observer(Arc::new(Panicky))
        .build()?;
    let report = runner
        .run(&TokioRuntime::current(), Shutdown::new())
        .await?;
    assert_eq!(report.counts.succeeded, JOBS);
    assert_eq!(queue.saved_count() as u64, JOBS);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_the_config_keeps_the_observer() -> anyhow::Result<()> {
    let queue = Queue::closed_with(1..=5);
    let recorder = Recorder::new();
    let runner = JobRunner::builder(queue.picker(), Double::default(), queue.saver())
        .observer(Arc::new(recorder.clone()))
        .config(pjp_core::RunnerConfig::default())
        .build()?;
    runner
        .run(&TokioRuntime::current(), Shutdown::new())
        .await?;
    assert_eq!(count(&recorder.spans(), Activity::Execute), 5);
    Ok(())
}

#[tokio::test]
async fn steps_report_on_the_lane_they_are_given() {
    let queue: Queue = MemoryQueue::closed_with(0..4);
    let recorder = Recorder::new();
    let runner = JobRunner::builder(queue.picker(), Double::default(), queue.saver())
        .observer(Arc::new(recorder.clone()))
        .build()
        .unwrap();
    let runtime = TokioRuntime::current();
    for worker in [0, 3, 3, 1] {
        runner.step_on(&runtime, worker).await.unwrap();
    }
    let spans = recorder.spans();
    let on = |activity: Activity, worker: usize| {
        spans
            .iter()
            .filter(|s| s.activity == activity && s.lane == Lane::new(Role::Worker, worker))
            .count()
    };
    for activity in [Activity::Pick, Activity::Execute, Activity::Save] {
        assert_eq!(
            (on(activity, 0), on(activity, 3), on(activity, 1)),
            (1, 2, 1),
            "{activity:?}"
        );
    }
    assert!(spans.iter().all(|s| s.lane.role == Role::Worker));
}
