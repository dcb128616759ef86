//! The per-job timeout, for blocking and async executors.

mod common;

use std::time::Duration;

use common::{Doubler, Gated, Queue};
use pjp_core::{AsyncExecutor, ExecError, Executor, JobContext, JobRunner, Shutdown};
use pjp_runtime_tokio::TokioRuntime;
use pjp_testkit::wait::{eventually, within};

/// Job 0 blocks until the gate opens; the others return at once.
#[derive(Default)]
struct HangsOnZero(Gated);

impl Executor for HangsOnZero {
    type Input = u64;
    type Output = u64;
    type Error = String;

    fn execute(&self, input: u64, job: &JobContext) -> Result<u64, String> {
        if input == 0 {
            let _ = self.0.execute(input, job);
        }
        Ok(input)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_job_past_its_timeout_is_saved_as_timed_out() -> anyhow::Result<()> {
    let queue = Queue::closed_with(0..5);
    let executor = std::sync::Arc::new(HangsOnZero::default());
    // Long enough that the instant jobs never time out on a loaded machine;
    // job 0 never returns before its timeout, since the gate opens only after.
    let runner = JobRunner::builder(
        queue.picker(),
        std::sync::Arc::clone(&executor),
        queue.saver(),
    )
    .job_timeout(Duration::from_millis(300))
    .build()?;
    let progress = runner.progress();
    let open = async {
        eventually("job 0 timed out", || progress.snapshot().counts.failed == 1).await;
        executor.0.open();
    };
    let rt = TokioRuntime::current();
    let (report, ()) = within("timeouts", async {
        tokio::join!(runner.run(&rt, Shutdown::new()), open)
    })
    .await;
    let report = report?;
    assert_eq!(
        (
            report.counts.timed_out,
            report.counts.failed,
            report.counts.succeeded
        ),
        (1, 1, 4)
    );
    let zero = queue.saved().into_iter().find(|s| s.meta.id.get() == 0);
    assert_eq!(
        zero.map(|s| s.result),
        Some(Err(ExecError::TimedOut {
            after: Duration::from_millis(300)
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
    assert_eq!((report.counts.panicked, report.counts.succeeded), (2, 2));
    Ok(())
}

struct Sleeper;

impl AsyncExecutor for Sleeper {
    type Input = u64;
    type Output = u64;
    type Error = String;

    async fn execute(&self, input: u64, _job: &JobContext) -> Result<u64, String> {
        tokio::time::sleep(Duration::from_millis(input)).await;
        Ok(input)
    }
}

// Paused time: the hour-long sleep times out and the short ones do not,
// whatever the machine is doing.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn async_job_past_its_timeout_is_dropped_and_saved_as_timed_out() -> anyhow::Result<()> {
    let queue = Queue::closed_with([1, 3_600_000, 2]);
    let runner = JobRunner::builder_async(queue.picker(), Sleeper, queue.saver())
        .workers(3)
        .job_timeout(Duration::from_millis(50))
        .build()?;
    let report = runner
        .run(&TokioRuntime::current(), Shutdown::new())
        .await?;
    assert_eq!((report.counts.timed_out, report.counts.succeeded), (1, 2));
    Ok(())
}
