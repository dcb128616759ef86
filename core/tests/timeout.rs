//! The per-job timeout, for blocking and async executors.

mod common;

use std::time::Duration;

use common::{Doubler, Queue};
use pjp_core::{AsyncExecutor, ExecError, Executor, JobRunner, Shutdown};
use pjp_runtime_tokio::TokioRuntime;
use pjp_testkit::QueueMeta;

struct SlowOnZero;

impl Executor for SlowOnZero {
    type Input = u64;
    type Output = u64;
    type Metadata = QueueMeta;
    type Error = String;

    fn execute(&self, input: u64, _meta: &QueueMeta) -> Result<u64, String> {
        if input == 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(input)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_job_past_its_timeout_is_saved_as_timed_out() -> anyhow::Result<()> {
    let queue = Queue::closed_with(0..5);
    let runner = JobRunner::builder(queue.picker(), SlowOnZero, queue.saver())
        .job_timeout(Duration::from_millis(30))
        .build()?;
    let report = runner
        .run(&TokioRuntime::current(), Shutdown::new())
        .await?;
    assert_eq!(
        (report.timed_out, report.failed, report.succeeded),
        (1, 1, 4)
    );
    let zero = queue.saved().into_iter().find(|s| s.meta.id.get() == 0);
    assert_eq!(
        zero.map(|s| s.result),
        Some(Err(ExecError::TimedOut {
            after: Duration::from_millis(30)
        }))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_panics_are_caught_on_the_timeout_path_too() -> anyhow::Result<()> {
    let queue = Queue::closed_with(1..=4);
    let executor = Doubler {
        panic_every: Some(2),
        ..Doubler::default()
    };
    let runner = JobRunner::builder(queue.picker(), executor, queue.saver())
        .job_timeout(Duration::from_secs(60))
        .build()?;
    let report = runner
        .run(&TokioRuntime::current(), Shutdown::new())
        .await?;
    assert_eq!((report.panicked, report.succeeded), (2, 2));
    Ok(())
}

struct Sleeper;

impl AsyncExecutor for Sleeper {
    type Input = u64;
    type Output = u64;
    type Metadata = QueueMeta;
    type Error = String;

    async fn execute(&self, input: u64, _meta: &QueueMeta) -> Result<u64, String> {
        tokio::time::sleep(Duration::from_millis(input)).await;
        Ok(input)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_job_past_its_timeout_is_dropped_and_saved_as_timed_out() -> anyhow::Result<()> {
    let queue = Queue::closed_with([1, 3_600_000, 2]);
    let runner = JobRunner::builder_async(queue.picker(), Sleeper, queue.saver())
        .workers(3)
        .job_timeout(Duration::from_millis(50))
        .build()?;
    let report = runner
        .run(&TokioRuntime::current(), Shutdown::new())
        .await?;
    assert_eq!((report.timed_out, report.succeeded), (1, 2));
    Ok(())
}
