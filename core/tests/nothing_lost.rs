//! Semantics 1–3: nothing is lost; executor errors and panics are results;
//! transient picker and saver errors are retried; a save that gives up is
//! reported with its job, not panicked on.

mod common;

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use common::{Doubler, FlakyPicker, FlakySaver, Queue, assert_all_saved_once};
use pjp_core::{
    BackoffPolicy, ExecError, JobContext, JobId, JobRunner, RetryPolicy, RunErrorKind, Shutdown,
    StopReason,
};
use pjp_runtime_tokio::TokioRuntime;
use pjp_testkit::wait::{eventually, within};

fn fast_retry(attempts: u32) -> RetryPolicy {
    RetryPolicy::new(
        attempts,
        BackoffPolicy::new(Duration::from_millis(1), Duration::from_millis(4)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_is_saved_once() -> anyhow::Result<()> {
    let queue = Queue::closed_with(0..1_000);
    let runner = JobRunner::builder(queue.picker(), Doubler::default(), queue.saver())
        .workers(2)
        .prefetch(8)
        .pickers(2)
        .savers(3)
        .build()?;
    let report = runner
        .run(&TokioRuntime::current(), Shutdown::new())
        .await?;
    assert_eq!(report.stop, StopReason::Exhausted);
    assert_eq!(
        (
            report.counts.picked,
            report.counts.succeeded,
            report.counts.failed
        ),
        (1_000, 1_000, 0)
    );
    assert_eq!(report.unaccounted(), 0);
    assert_all_saved_once(&queue, |id| Ok(id * 2));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_errors_and_panics_are_saved_as_failures() -> anyhow::Result<()> {
    let queue = Queue::closed_with(1..=300);
    let executor = Doubler {
        fail_every: Some(7),
        panic_every: Some(11),
        ..Doubler::default()
    };
    let runner = JobRunner::builder(queue.picker(), executor, queue.saver())
        .workers(2)
        .build()?;
    let report = runner
        .run(&TokioRuntime::current(), Shutdown::new())
        .await?;
    let inputs = 1..=300u64;
    let panics = inputs.clone().filter(|n| n % 11 == 0).count() as u64;
    let fails = inputs.clone().filter(|n| n % 7 == 0 && n % 11 != 0).count() as u64;
    assert_eq!(report.counts.panicked, panics);
    assert_eq!(report.counts.failed, panics + fails);
    assert_eq!(report.counts.succeeded, 300 - panics - fails);
    // The runner kept going after every panic, and saved what each job did.
    for saved in queue.saved() {
        let input = saved.meta.id.get() + 1;
        match saved.result {
            Ok(v) => assert_eq!(v, input * 2),
            Err(ExecError::Panicked { message }) => {
                assert_eq!(message, format!("executor panicked on {input}"));
            }
            Err(ExecError::Failed(message)) => {
                assert_eq!(message, format!("cannot double {input}"))
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(queue.saved_count(), 300);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picker_errors_back_off_and_retry() -> anyhow::Result<()> {
    let queue = Queue::closed_with(0..50);
    let picker = FlakyPicker {
        inner: queue.picker(),
        errors: AtomicU32::new(5),
        fatal: false,
    };
    let runner = JobRunner::builder(picker, Doubler::default(), queue.saver())
        .pick_error_backoff(BackoffPolicy::new(
            Duration::from_millis(1),
            Duration::from_millis(2),
        ))
        .build()?;
    let report = runner
        .run(&TokioRuntime::current(), Shutdown::new())
        .await?;
    assert_eq!(report.counts.pick_errors, 5);
    assert_eq!(report.counts.succeeded, 50);
    assert_all_saved_once(&queue, |id| Ok(id * 2));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fatal_picker_error_drains_and_is_reported() -> anyhow::Result<()> {
    let queue = Queue::closed_with(0..10);
    let picker = FlakyPicker {
        inner: queue.picker(),
        errors: AtomicU32::new(1),
        fatal: true,
    };
    let runner = JobRunner::builder(picker, Doubler::default(), queue.saver()).build()?;
    let Err(error) = runner.run(&TokioRuntime::current(), Shutdown::new()).await else {
        panic!("a fatal pick error must fail the run");
    };
    assert!(
        matches!(error.kind(), RunErrorKind::PickFailed { .. }),
        "{error}"
    );
    assert_eq!(error.report().counts.picked, 0);
    assert_eq!(queue.pending(), 10, "nothing was taken");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saver_errors_are_retried() -> anyhow::Result<()> {
    let queue = Queue::closed_with(0..40);
    let saver = FlakySaver::new(&queue, 2, vec![]);
    let runner = JobRunner::builder(queue.picker(), Doubler::default(), saver)
        .save_retry(fast_retry(3))
        .build()?;
    let report = runner
        .run(&TokioRuntime::current(), Shutdown::new())
        .await?;
    assert_eq!(report.counts.save_retries, 80);
    assert_eq!(report.counts.succeeded, 40);
    assert_all_saved_once(&queue, |id| Ok(id * 2));
    let attempts = runner.saver().attempts.lock().unwrap();
    assert!(attempts.values().all(|&n| n == 3));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_that_gives_up_releases_the_job_reports_it_and_goes_on() -> anyhow::Result<()> {
    // An open queue: only the drain below ends the run.
    let queue = Queue::new();
    queue.extend(0..200);
    // Job 5 can never be saved.
    let saver = FlakySaver::new(&queue, u32::MAX, vec![5]);
    let runner = JobRunner::builder(queue.picker(), Doubler::default(), saver)
        .workers(2)
        .prefetch(4)
        .save_retry(fast_retry(4))
        .sink_gone_after(u32::MAX)
        .build()?;
    let rt = TokioRuntime::current();
    let shutdown = Shutdown::new();
    let progress = runner.progress();
    let drain = async {
        // The others are saved although job 5 keeps giving up (this queue
        // hands it out again; a durable queue would dead-letter it).
        eventually("every other job saved, job 5 released", || {
            queue.saved_count() == 199 && progress.snapshot().counts.released >= 1
        })
        .await;
        shutdown.drain();
    };
    let (report, ()) = within("give-ups", async {
        tokio::join!(runner.run(&rt, shutdown.clone()), drain)
    })
    .await;
    let report = report?;
    assert_eq!(report.stop, StopReason::Drained);
    assert_eq!(report.counts.succeeded, 199);
    assert!(!report.save_gave_up.is_empty());
    assert!(report.save_gave_up.iter().all(|&id| id == JobId::new(5)));
    assert_eq!(report.released, report.save_gave_up);
    assert_eq!(report.unaccounted(), 0, "{report:?}");
    assert_eq!(queue.pending_ids(), vec![JobId::new(5)]);
    let attempts = runner.saver().attempts.lock().unwrap()[&5];
    assert_eq!(attempts, 4 * report.save_gave_up.len() as u32);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_give_ups_means_the_sink_is_gone() -> anyhow::Result<()> {
    let queue = Queue::new();
    queue.extend(0..1_000);
    // Nothing can be saved.
    let saver = FlakySaver::new(&queue, u32::MAX, Vec::new());
    let runner = JobRunner::builder(queue.picker(), Doubler::default(), saver)
        .save_retry(fast_retry(2))
        .sink_gone_after(3)
        .build()?;
    let Err(error) = runner.run(&TokioRuntime::current(), Shutdown::new()).await else {
        panic!("a sink that refuses everything must fail the run");
    };
    let RunErrorKind::SinkGone { jobs, .. } = error.kind() else {
        panic!("unexpected {error}");
    };
    assert_eq!(*jobs, 3);
    assert!(error.to_string().contains("the sink is gone"), "{error}");
    let report = error.report();
    assert_eq!(report.stop, StopReason::Drained);
    assert_eq!(report.saved(), 0);
    assert_eq!(report.unaccounted(), 0, "{report:?}");
    // Every job is back in the queue: nothing lost.
    assert_eq!(queue.pending(), 1_000);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_executor_errors_and_panics_are_results() -> anyhow::Result<()> {
    struct Halve;
    impl pjp_core::AsyncExecutor for Halve {
        type Input = u64;
        type Output = u64;
        type Error = String;
        async fn execute(&self, n: u64, _job: &JobContext) -> Result<u64, String> {
            tokio::task::yield_now().await;
            match n {
                3 => panic!("three"),
                n if n % 2 == 1 => Err(format!("{n} is odd")),
                n => Ok(n / 2),
            }
        }
    }
    let queue = Queue::closed_with(0..10);
    let runner = JobRunner::builder_async(queue.picker(), Halve, queue.saver())
        .workers(3)
        .build()?;
    let report = runner
        .run(&TokioRuntime::current(), Shutdown::new())
        .await?;
    assert_eq!(
        (
            report.counts.succeeded,
            report.counts.failed,
            report.counts.panicked
        ),
        (5, 5, 1)
    );
    assert_all_saved_once(&queue, |n| if n % 2 == 0 { Ok(n / 2) } else { Err(()) });
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_runs_one_job() -> anyhow::Result<()> {
    let queue = Queue::new();
    queue.push(21);
    let runner = JobRunner::builder(queue.picker(), Doubler::default(), queue.saver()).build()?;
    let rt = TokioRuntime::current();
    assert_eq!(
        runner.step(&rt).await?,
        pjp_core::Step::Saved {
            job: JobId::new(0),
            succeeded: true
        }
    );
    assert_eq!(runner.step(&rt).await?, pjp_core::Step::Empty);
    queue.close();
    assert_eq!(runner.step(&rt).await?, pjp_core::Step::Exhausted);
    assert_eq!(queue.saved()[0].result, Ok(42));
    assert_eq!(runner.progress().snapshot().counts.succeeded, 1);
    Ok(())
}

#[test]
fn configs_are_checked_and_the_save_queue_follows_the_batches() {
    let queue = Queue::new();
    let build =
        |f: &dyn Fn(pjp_core::RunnerBuilder<_, _, _>) -> pjp_core::RunnerBuilder<_, _, _>| {
            f(JobRunner::builder(
                queue.picker(),
                Doubler::default(),
                queue.saver(),
            ))
            .build()
            .map(|runner| runner.config().clone())
            .map_err(|e| e.to_string())
        };
    let error =
        |f: &dyn Fn(pjp_core::RunnerBuilder<_, _, _>) -> pjp_core::RunnerBuilder<_, _, _>| {
            build(f).err()
        };
    assert_eq!(
        error(&|b| b.workers(0)),
        Some("runner config: `workers` must be at least 1".into())
    );
    assert!(
        error(&|b| b.prefetch(2).pick_batch(3))
            .unwrap()
            .contains("exceeds `prefetch`")
    );
    assert!(build(&|b| b.stage("")).is_err());
    assert!(build(&|b| b.job_timeout(Duration::ZERO)).is_err());
    assert!(build(&|b| b.savers(0)).is_err());
    assert!(build(&|b| b.workers(3).prefetch(8).pick_batch(8)).is_ok());
    // Values tokio's semaphore cannot hold are errors, not panics.
    assert_eq!(
        error(&|b| b.prefetch(usize::MAX).pick_batch(1)),
        Some("runner config: `prefetch` is too large".into())
    );
    assert!(build(&|b| b.save_batch(0)).is_err());
    assert!(build(&|b| b.sink_gone_after(0)).is_err());

    // A save batch takes only what is queued: unless set, the queue makes
    // room for a full batch per saver.
    let save_queue =
        |f: &dyn Fn(pjp_core::RunnerBuilder<_, _, _>) -> pjp_core::RunnerBuilder<_, _, _>| {
            build(f).map(|config| config.save_queue())
        };
    assert_eq!(save_queue(&|b| b), Ok(2), "one job per save, two savers");
    assert_eq!(save_queue(&|b| b.save_batch(64)), Ok(128));
    assert_eq!(save_queue(&|b| b.savers(1).save_batch(64)), Ok(64));
    assert_eq!(save_queue(&|b| b.save_batch(1 << 20)), Ok(4_096), "capped");
    // Chosen, it stays, before or after the batch.
    assert_eq!(save_queue(&|b| b.save_queue(5).save_batch(64)), Ok(5));
    assert_eq!(save_queue(&|b| b.save_batch(64).save_queue(5)), Ok(5));
}

/// Saves in batches through `save_many`; the first save of every 7th job
/// fails, alone in its batch.
struct BatchSaver {
    inner: pjp_testkit::QueueSaver<u64, u64, String>,
    batches: std::sync::Mutex<Vec<usize>>,
    failed_once: std::sync::Mutex<std::collections::HashSet<u64>>,
}

impl pjp_core::JobSaver for BatchSaver {
    type Output = u64;
    type Failure = String;
    type Metadata = pjp_testkit::QueueMeta;
    type Error = common::Wrapped;

    async fn save(
        &self,
        result: &pjp_core::JobResult<u64, String>,
        meta: &pjp_testkit::QueueMeta,
    ) -> Result<(), common::Wrapped> {
        self.inner
            .save(result, meta)
            .await
            .map_err(common::Wrapped::Queue)
    }

    async fn save_many(
        &self,
        batch: &pjp_core::SaveBatch<'_, u64, String, pjp_testkit::QueueMeta>,
    ) -> pjp_core::SaveResults<common::Wrapped> {
        common::lock(&self.batches).push(batch.len());
        let mut outcomes = Vec::new();
        for (result, meta) in batch {
            let id = meta.id.get();
            if id % 7 == 0 && common::lock(&self.failed_once).insert(id) {
                outcomes.push(Err(common::Wrapped::Injected(common::Injected)));
            } else {
                outcomes.push(self.save(result, meta).await);
            }
        }
        outcomes
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_saves_retry_only_the_jobs_that_failed() -> anyhow::Result<()> {
    let queue = Queue::closed_with(0..700);
    let saver = std::sync::Arc::new(BatchSaver {
        inner: queue.saver(),
        batches: std::sync::Mutex::default(),
        failed_once: std::sync::Mutex::default(),
    });
    let runner = JobRunner::builder(queue.picker(), Doubler::default(), saver.clone())
        .workers(2)
        .prefetch(32)
        .pick_batch(16)
        .save_queue(64)
        .savers(1)
        .save_batch(16)
        .save_batch_wait(Duration::from_millis(2))
        .save_retry(fast_retry(5))
        .build()?;
    let report = runner
        .run(&TokioRuntime::current(), Shutdown::new())
        .await?;
    assert_eq!(
        (report.counts.succeeded, report.counts.save_retries),
        (700, 100),
        "{report:?}"
    );
    assert_eq!(report.unaccounted(), 0);
    assert_all_saved_once(&queue, |id| Ok(id * 2));
    let batches = common::lock(&saver.batches);
    assert!(
        batches.iter().all(|&n| (1..=16).contains(&n)),
        "{batches:?}"
    );
    assert!(
        batches.iter().any(|&n| n > 1),
        "results were batched: {batches:?}"
    );
    Ok(())
}
