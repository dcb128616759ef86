//! One stage on the in-memory queue, made from closures: the smallest
//! component. Failures and panics are results; the report accounts for
//! every job.
//!
//! ```sh
//! cargo run -p pjp-examples --example hello
//! ```

use std::convert::Infallible;

use pjp_core::memory::{MemoryQueue, QueueMeta};
use pjp_core::{JobMeta, JobResult, JobRunner, Shutdown, executor_fn, saver_fn};
use pjp_runtime_tokio::TokioRuntime;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let queue: MemoryQueue<u64> = MemoryQueue::closed_with(1..=100);

    // The heavy payload: runs on blocking worker threads and may block.
    let prove = executor_fn(|n: u64| {
        if n.is_multiple_of(25) {
            return Err(format!("{n} is not provable"));
        }
        Ok(n.pow(3))
    });
    // Where results go: a closure given each result and its job's metadata.
    let print = saver_fn(|result: &JobResult<u64, String>, job: &QueueMeta| {
        match result {
            Ok(cube) if job.job_id().get().is_multiple_of(20) => {
                println!("job {}: {cube}", job.job_id())
            }
            Ok(_) => {}
            Err(error) => println!("job {} failed: {error}", job.job_id()),
        }
        Ok::<_, Infallible>(())
    });

    let runner = JobRunner::builder(queue.picker(), prove, print)
        .workers(4)
        .build()?;
    let report = runner
        .run(&TokioRuntime::current(), Shutdown::new())
        .await?;
    println!(
        "{} succeeded, {} failed, {} unaccounted, {:.0} jobs/s",
        report.counts.succeeded,
        report.counts.failed,
        report.unaccounted(),
        report.throughput()
    );
    anyhow::ensure!(
        report.counts.succeeded == 96 && report.counts.failed == 4,
        "{report:?}"
    );
    Ok(())
}
