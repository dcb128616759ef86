//! `runner_overhead`: no-op jobs through the whole runner, with in-memory picker
//! and saver and 2 workers, beside the same parts run by
//!
//! * `bare_threads` — one picker task, 2 bare OS threads over tokio mpsc, one
//!   saver task, no bookkeeping: the floor;
//! * `spawn_blocking_per_job` — the zksync-era shape (one `spawn_blocking` per job).
//!
//! `pjp_runner` picks in batches of 64 (`pick_batch`); `pjp_runner_unbatched`
//! picks one job per call, like the baselines.
//!
//! Run: `cargo bench -p pjp-benches --bench runner_overhead`

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pjp_benches::baseline;
use pjp_benches::components::{NoOp, Queue};
use pjp_core::{JobRunner, Shutdown};
use pjp_runtime_tokio::TokioRuntime;

const JOBS: u64 = 200_000;
const WORKERS: usize = 2;

fn runtime() -> tokio::runtime::Runtime {
    #[allow(clippy::expect_used)]
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn pjp_runner(jobs: u64, pick_batch: usize) -> u64 {
    let queue = Queue::closed_with(0..jobs);
    #[allow(clippy::expect_used)]
    let runner = JobRunner::builder(queue.picker(), NoOp, queue.saver())
        .workers(WORKERS)
        .prefetch(512)
        .pick_batch(pick_batch)
        .save_queue(512)
        .savers(1)
        .build()
        .expect("valid config");
    match runner.run(&TokioRuntime::current(), Shutdown::new()).await {
        Ok(report) => report.saved(),
        Err(error) => panic!("run failed: {error}"),
    }
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("runner_overhead");
    group.throughput(Throughput::Elements(JOBS));
    group.sample_size(10);
    group.bench_function("pjp_runner", |b| {
        b.iter(|| assert_eq!(rt.block_on(pjp_runner(JOBS, 64)), JOBS));
    });
    group.bench_function("pjp_runner_unbatched", |b| {
        b.iter(|| assert_eq!(rt.block_on(pjp_runner(JOBS, 1)), JOBS));
    });
    group.bench_function("bare_threads", |b| {
        b.iter(|| {
            let queue = Queue::closed_with(0..JOBS);
            let saved = rt.block_on(baseline::bare_threads(
                Arc::new(queue.picker()),
                Arc::new(NoOp),
                Arc::new(queue.saver()),
                WORKERS,
            ));
            assert_eq!(saved, JOBS);
        });
    });
    // The per-job spawn_blocking shape is ~10x slower: fewer jobs per sample.
    let few = JOBS / 10;
    group.throughput(Throughput::Elements(few));
    group.bench_function("spawn_blocking_per_job", |b| {
        b.iter(|| {
            let queue = Queue::closed_with(0..few);
            let saved = rt.block_on(baseline::spawn_blocking_per_job(
                Arc::new(queue.picker()),
                Arc::new(NoOp),
                Arc::new(queue.saver()),
                WORKERS,
            ));
            assert_eq!(saved, few);
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
