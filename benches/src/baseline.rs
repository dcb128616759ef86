//! The loops the runner is compared with, over the same picker, executor and
//! saver.

use std::sync::Arc;

use pjp_core::{ExecError, Executor, JobContext, JobPicker, JobSaver};
use tokio::sync::mpsc;

use crate::components::pick_one;

/// One task: pick, execute inline, save, repeat. What a component without the
/// framework does; every round trip is paid in turn.
pub async fn sequential<P, E, S>(picker: &P, executor: &E, saver: &S) -> u64
where
    P: JobPicker,
    E: Executor<Input = P::Input>,
    S: JobSaver<Output = E::Output, Failure = E::Error, Metadata = P::Metadata>,
{
    let mut saved = 0;
    while let Some(job) = pick_one(picker).await {
        let result = executor
            .execute(job.input, &JobContext::of(&job.meta))
            .map_err(ExecError::Failed);
        if saver.save(&result, &job.meta).await.is_ok() {
            saved += 1;
        }
    }
    saved
}

/// The zksync-era `JobProcessor` shape: `workers` tasks, each picking a job,
/// running it with one `spawn_blocking` per job, then saving it.
pub async fn spawn_blocking_per_job<P, E, S>(
    picker: Arc<P>,
    executor: Arc<E>,
    saver: Arc<S>,
    workers: usize,
) -> u64
where
    P: JobPicker,
    E: Executor<Input = P::Input>,
    S: JobSaver<Output = E::Output, Failure = E::Error, Metadata = P::Metadata>,
{
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (picker, executor, saver) = (picker.clone(), executor.clone(), saver.clone());
        tasks.push(tokio::spawn(async move {
            let mut saved = 0u64;
            while let Some(job) = pick_one(&*picker).await {
                let exec = executor.clone();
                let context = JobContext::of(&job.meta);
                let result = tokio::task::spawn_blocking(move || exec.execute(job.input, &context))
                    .await
                    .map_err(|e| ExecError::Panicked {
                        message: e.to_string(),
                    })
                    .and_then(|r| r.map_err(ExecError::Failed));
                if saver.save(&result, &job.meta).await.is_ok() {
                    saved += 1;
                }
            }
            saved
        }));
    }
    let mut saved = 0;
    for task in tasks {
        saved += task.await.unwrap_or(0);
    }
    saved
}

/// The floor: one picker task feeding `workers` bare OS threads over tokio mpsc
/// channels (round robin), one saver task. No back-off, no bookkeeping, no
/// panic handling, no accounting: the cheapest pipeline over the same parts.
pub async fn bare_threads<P, E, S>(
    picker: Arc<P>,
    executor: Arc<E>,
    saver: Arc<S>,
    workers: usize,
) -> u64
where
    P: JobPicker,
    E: Executor<Input = P::Input>,
    S: JobSaver<Output = E::Output, Failure = E::Error, Metadata = P::Metadata>,
{
    const CAPACITY: usize = 256;
    let (done_tx, mut done_rx) = mpsc::channel(CAPACITY);
    let mut inputs = Vec::new();
    let mut threads = Vec::new();
    for _ in 0..workers {
        let (tx, mut rx) = mpsc::channel::<pjp_core::Job<P::Input, P::Metadata>>(CAPACITY);
        inputs.push(tx);
        let (executor, done_tx) = (executor.clone(), done_tx.clone());
        threads.push(std::thread::spawn(move || {
            while let Some(job) = rx.blocking_recv() {
                let result = executor
                    .execute(job.input, &JobContext::of(&job.meta))
                    .map_err(ExecError::Failed);
                if done_tx.blocking_send((result, job.meta)).is_err() {
                    break;
                }
            }
        }));
    }
    drop(done_tx);
    let feeder = tokio::spawn(async move {
        let mut next = 0;
        while let Some(job) = pick_one(&*picker).await {
            if inputs[next % inputs.len()].send(job).await.is_err() {
                break;
            }
            next += 1;
        }
    });
    let mut saved = 0;
    while let Some((result, meta)) = done_rx.recv().await {
        if saver.save(&result, &meta).await.is_ok() {
            saved += 1;
        }
    }
    let _ = feeder.await;
    for thread in threads {
        let _ = thread.join();
    }
    saved
}
