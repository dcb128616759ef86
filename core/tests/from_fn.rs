//! Components made from closures run through the real runner: outputs,
//! errors and panics reach the saver as they would from a trait impl.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use pjp_core::memory::{MemoryQueue, QueueMeta};
use pjp_core::{
    ExecError, JobMeta, JobResult, JobRunner, Shutdown, async_executor_fn, executor_fn, saver_fn,
};
use pjp_runtime_tokio::TokioRuntime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_fn_saves_outputs_errors_and_panics_as_results() {
    let queue = MemoryQueue::closed_with(1..=30u64);
    let exec = executor_fn(|n: u64| match n {
        n if n.is_multiple_of(10) => panic!("ten divides {n}"),
        n if n.is_multiple_of(3) => Err(format!("{n} is a multiple of three")),
        n => Ok(n * n),
    });
    let runner = JobRunner::builder(queue.picker(), exec, queue.saver())
        .workers(2)
        .build()
        .unwrap();
    let report = runner
        .run(&TokioRuntime::current(), Shutdown::new())
        .await
        .unwrap();
    assert_eq!(report.counts.succeeded, 18, "{report:?}");
    assert_eq!(report.counts.failed, 12);
    assert_eq!(report.counts.panicked, 3);
    let saved = queue.saved();
    assert_eq!(saved.len(), 30);
    for job in saved {
        let n = job.meta.job_id().get() + 1;
        match job.result {
            Ok(square) => assert_eq!(square, n * n),
            Err(ExecError::Panicked { message }) => {
                assert_eq!(n % 10, 0);
                assert!(message.contains("ten divides"), "{message}");
            }
            Err(ExecError::Failed(message)) => {
                assert_eq!(n % 3, 0);
                assert_eq!(message, format!("{n} is a multiple of three"));
            }
            Err(other) => panic!("job {n}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_executor_fn_and_a_saver_fn_make_a_component() {
    let queue: MemoryQueue<u64> = MemoryQueue::closed_with(0..20u64);
    let saved = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&saved);
    let saver = saver_fn(
        move |result: &JobResult<String, Infallible>, meta: &QueueMeta| {
            let output = result.as_ref().ok().cloned();
            sink.lock().unwrap().push((meta.job_id().get(), output));
            Ok::<_, std::io::Error>(())
        },
    );
    let exec = async_executor_fn(|n: u64| async move { Ok(format!("#{n}")) });
    let runner = JobRunner::builder_async(queue.picker(), exec, saver)
        .build()
        .unwrap();
    let report = runner
        .run(&TokioRuntime::current(), Shutdown::new())
        .await
        .unwrap();
    assert_eq!(report.counts.succeeded, 20);
    let mut saved = saved.lock().unwrap().clone();
    saved.sort();
    let expected: Vec<_> = (0..20).map(|n| (n, Some(format!("#{n}")))).collect();
    assert_eq!(saved, expected);
}
