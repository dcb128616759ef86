//! `latency_hiding`: picker and saver each take 10 ms (a database round trip),
//! the executor spins 2 ms, 2 workers: the executor-bound ceiling is 1,000
//! jobs/s. Compares the pipelined runner with
//!
//! * `sequential` — one pick → execute → save loop;
//! * `spawn_blocking_per_job` — the zksync-era shape, 2 such loops.
//!
//! Besides criterion's figures it prints each as a fraction of the ceiling.
//!
//! Run: `cargo bench -p pjp-benches --bench latency_hiding`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pjp_benches::baseline;
use pjp_benches::components::{Queue, Spin};
use pjp_core::{JobRunner, Shutdown};
use pjp_runtime_tokio::TokioRuntime;
use pjp_testkit::{LatencyProfile, Latent, PickerExt, QueuePicker, QueueSaver, SaverExt};

const RTT: Duration = Duration::from_millis(10);
const EXEC: Duration = Duration::from_millis(2);
const WORKERS: usize = 2;
/// Jobs per second two workers can execute at most.
const CEILING: f64 = WORKERS as f64 / 0.002;

type SlowPicker = Latent<QueuePicker<u64, u64, String>, TokioRuntime>;
type SlowSaver = Latent<QueueSaver<u64, u64, String>, TokioRuntime>;

/// The queue's halves, each call taking one round trip. Call inside the runtime.
fn parts(jobs: u64) -> (SlowPicker, SlowSaver) {
    let queue = Queue::closed_with(0..jobs);
    let runtime = TokioRuntime::current();
    (
        queue
            .picker()
            .with_latency(&runtime, LatencyProfile::fixed(RTT)),
        queue
            .saver()
            .with_latency(&runtime, LatencyProfile::fixed(RTT)),
    )
}

async fn pipelined(jobs: u64) -> u64 {
    let (picker, saver) = parts(jobs);
    // Enough picks and saves in flight to cover a 10 ms round trip at 1,000
    // jobs/s: 2 pickers × batches of 8 and 16 concurrent saves.
    #[allow(clippy::expect_used)]
    let runner = JobRunner::builder(picker, Spin(EXEC), saver)
        .workers(WORKERS)
        .pickers(2)
        .pick_batch(8)
        .prefetch(32)
        .save_queue(32)
        .savers(16)
        .build()
        .expect("valid config");
    match runner.run(&TokioRuntime::current(), Shutdown::new()).await {
        Ok(report) => report.saved(),
        Err(error) => panic!("run failed: {error}"),
    }
}

async fn sequential(jobs: u64) -> u64 {
    let (picker, saver) = parts(jobs);
    baseline::sequential(&picker, &Spin(EXEC), &saver).await
}

async fn spawn_blocking(jobs: u64) -> u64 {
    let (picker, saver) = parts(jobs);
    baseline::spawn_blocking_per_job(
        Arc::new(picker),
        Arc::new(Spin(EXEC)),
        Arc::new(saver),
        WORKERS,
    )
    .await
}

fn report(rt: &tokio::runtime::Runtime) {
    let measure =
        |name: &str,
         jobs: u64,
         f: &dyn Fn(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = u64>>>| {
            let start = Instant::now();
            let saved = rt.block_on(f(jobs));
            let rate = saved as f64 / start.elapsed().as_secs_f64();
            println!(
                "latency_hiding summary: {name:<24} {rate:>7.0} jobs/s = {:>5.1}% of executor-bound {CEILING:.0} jobs/s",
                100.0 * rate / CEILING
            );
        };
    measure("pjp_runner", 2_000, &|n| Box::pin(pipelined(n)));
    measure("sequential", 100, &|n| Box::pin(sequential(n)));
    measure("spawn_blocking_per_job", 200, &|n| {
        Box::pin(spawn_blocking(n))
    });
}

fn bench(c: &mut Criterion) {
    #[allow(clippy::expect_used)]
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    // `cargo bench` passes `--bench`; under `cargo test` the summary is skipped.
    if std::env::args().any(|a| a == "--bench") {
        report(&rt);
    }
    let mut group = c.benchmark_group("latency_hiding");
    group.sample_size(10);
    // Each run pays one pick and one save round trip that cannot be hidden
    // (~20 ms); 1,000 jobs make that 2 %.
    let jobs = 1_000;
    group.throughput(Throughput::Elements(jobs));
    group.bench_function("pjp_runner", |b| {
        b.iter(|| assert_eq!(rt.block_on(pipelined(jobs)), jobs))
    });
    let jobs = 20;
    group.throughput(Throughput::Elements(jobs));
    group.bench_function("sequential", |b| {
        b.iter(|| assert_eq!(rt.block_on(sequential(jobs)), jobs))
    });
    let jobs = 40;
    group.throughput(Throughput::Elements(jobs));
    group.bench_function("spawn_blocking_per_job", |b| {
        b.iter(|| assert_eq!(rt.block_on(spawn_blocking(jobs)), jobs));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
