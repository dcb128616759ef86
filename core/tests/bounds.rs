//! Semantic 5 (bounded work in flight), batched picks, and the `Send`/`'static`
//! bounds that let runners be spawned with realistic component types.

mod common;

use std::future::Future;

use common::{Doubler, Queue};
use pjp_core::{JobContext, JobRunner, RetryPolicy, Shutdown};
use pjp_runtime_tokio::TokioRuntime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claimed_jobs_never_exceed_the_configured_bound() -> anyhow::Result<()> {
    let queue = Queue::closed_with(0..2_000);
    let runner = JobRunner::builder(queue.picker(), Doubler::default(), queue.saver())
        .workers(2)
        .prefetch(6)
        .pickers(3)
        .pick_batch(3)
        .save_queue(2)
        .savers(2)
        .build()?;
    assert_eq!(runner.config().max_claimed(), 6 + 2 + 2 + 2);
    let report = runner
        .run(&TokioRuntime::current(), Shutdown::new())
        .await?;
    assert_eq!(report.counts.succeeded, 2_000);
    assert!(
        report.peak_claimed >= 1 && report.peak_claimed <= report.max_claimed,
        "{report:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_saver_holds_the_pipeline_within_bounds() -> anyhow::Result<()> {
    /// A saver whose saves wait until the test opens it: the bottleneck.
    struct Stalled {
        inner: pjp_testkit::QueueSaver<u64, u64, String>,
        open: tokio::sync::watch::Receiver<bool>,
    }
    impl pjp_core::JobSaver for Stalled {
        type Output = u64;
        type Failure = String;
        type Metadata = pjp_testkit::QueueMeta;
        type Error = pjp_testkit::QueueError;
        async fn save(
            &self,
            result: &pjp_core::JobResult<u64, String>,
            meta: &Self::Metadata,
        ) -> Result<(), Self::Error> {
            let mut open = self.open.clone();
            let _ = open.wait_for(|open| *open).await;
            self.inner.save(result, meta).await
        }
    }
    let queue = Queue::closed_with(0..100);
    let (open_tx, open_rx) = tokio::sync::watch::channel(false);
    let saver = Stalled {
        inner: queue.saver(),
        open: open_rx,
    };
    let runner = JobRunner::builder(queue.picker(), Doubler::default(), saver)
        .workers(2)
        .prefetch(2)
        .save_queue(1)
        .savers(1)
        .build()?;
    let progress = runner.progress();
    let max = runner.config().max_claimed() as u64;
    let open = async {
        // With the saver stalled, the pipeline fills up to its bound, and no further.
        pjp_testkit::wait::eventually("the pipeline filled up", || {
            progress.snapshot().claimed == max
        })
        .await;
        let _ = open_tx.send(true);
    };
    let rt = TokioRuntime::current();
    let (report, ()) = pjp_testkit::wait::within("stalled saver", async {
        tokio::join!(runner.run(&rt, Shutdown::new()), open)
    })
    .await;
    let report = report?;
    assert_eq!(report.counts.succeeded, 100);
    assert_eq!(report.peak_claimed, report.max_claimed);
    Ok(())
}

fn assert_send_static<T: Send + 'static>(_: &T) {}

#[test]
fn runner_futures_are_send_with_realistic_types() {
    // Components with heap inputs, String errors, struct metadata and Arc'd state.
    type Bytes = Vec<u8>;
    let queue: pjp_testkit::MemoryQueue<Bytes, std::sync::Arc<Bytes>, String> =
        pjp_testkit::MemoryQueue::new();
    struct Hash;
    impl pjp_core::Executor for Hash {
        type Input = Bytes;
        type Output = std::sync::Arc<Bytes>;
        type Error = String;
        fn execute(&self, input: Bytes, _job: &JobContext) -> Result<Self::Output, String> {
            Ok(std::sync::Arc::new(input))
        }
    }
    let runner = std::sync::Arc::new(
        JobRunner::builder(queue.picker(), Hash, queue.saver())
            .save_retry(RetryPolicy::default())
            .build()
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert_send_static(&runner);
    let spawnable = {
        let runner = std::sync::Arc::clone(&runner);
        async move {
            let rt = TokioRuntime::current();
            let _ = runner.run(&rt, Shutdown::new()).await;
            let _ = runner.step(&rt).await;
        }
    };
    fn spawn_bound<F: Future + Send + 'static>(_: F) {}
    spawn_bound(spawnable);
}
