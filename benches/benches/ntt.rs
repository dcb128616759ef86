//! `ntt`: Goldilocks NTT throughput (elements/s) and NTT jobs through the runner
//! (jobs/s).
//!
//! * `ntt_single/…`, `ntt_batch16/…`: forward NTTs of 2^16, 2^20 and 2^22
//!   elements, one polynomial and batches of 16:
//!   * `pjp_cpu` — [`CpuNtt`]: iterative, cached twiddles, cache blocking,
//!     rayon across the batch (and across a large single polynomial);
//!   * `naive_radix2` — the baseline: textbook iterative radix-2, twiddles
//!     computed on the fly, one thread. It is single-threaded and linear in the
//!     batch, so its batch-16 throughput equals its single-polynomial one; it is
//!     only run at 2^16 there to keep the bench short;
//!   * `pjp_cuda` — [`CudaNtt`] (host to device, kernels, device to host), when a
//!     GPU is present.
//! * `ntt_runner/…`: 2^14 × 4 NTT jobs through `JobRunner` with an
//!   [`NttExecutor`] (2 workers), beside the same jobs executed in a plain loop.
//!
//! Run: `cargo bench -p pjp-benches --bench ntt` (add `-- --quick` for a fast
//! pass).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pjp_core::{JobRunner, Shutdown};
use pjp_gpu::{BackendChoice, CpuNtt, CudaNtt, Direction, NttConfig, NttExecutor, NttJob, field};
use pjp_runtime_tokio::TokioRuntime;
use pjp_testkit::MemoryQueue;

const SIZES: [u32; 3] = [16, 20, 22];
const RUNNER_JOBS: usize = 64;
const RUNNER_LOG_N: u32 = 14;
const RUNNER_BATCH: usize = 4;

/// Textbook iterative radix-2 NTT: bit reversal, then for each stage the
/// twiddle is advanced by one multiplication per butterfly. No precomputed
/// tables, no threads.
fn naive_radix2(a: &mut [u64]) {
    let n = a.len();
    let log_n = n.trailing_zeros();
    if n <= 1 {
        return;
    }
    for i in 0..n {
        let j = i.reverse_bits() >> (usize::BITS - log_n);
        if i < j {
            a.swap(i, j);
        }
    }
    let mut len = 2;
    let mut k = 1;
    while len <= n {
        let w_len = field::root_of_unity(k).unwrap_or(1);
        for start in (0..n).step_by(len) {
            let mut w = 1;
            for j in 0..len / 2 {
                let u = a[start + j];
                let v = field::mul(a[start + j + len / 2], w);
                a[start + j] = field::add(u, v);
                a[start + j + len / 2] = field::sub(u, v);
                w = field::mul(w, w_len);
            }
        }
        len <<= 1;
        k += 1;
    }
}

fn tune(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, log_n: u32) {
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(if log_n >= 20 { 4 } else { 2 }));
}

fn check_naive_matches() {
    let input = field::sample(1 << 12, 9);
    let mut a = input.clone();
    naive_radix2(&mut a);
    let mut b = input;
    if let Err(e) = CpuNtt::new().forward(&mut b) {
        panic!("cpu ntt: {e}");
    }
    assert_eq!(a, b, "naive baseline disagrees with CpuNtt");
}

fn transforms(c: &mut Criterion, gpu: Option<&CudaNtt>) {
    check_naive_matches();
    let cpu = CpuNtt::new();
    for (name, batch) in [("ntt_single", 1usize), ("ntt_batch16", 16)] {
        let mut group = c.benchmark_group(name);
        for log_n in SIZES {
            tune(&mut group, log_n);
            let len = batch << log_n;
            group.throughput(Throughput::Elements(len as u64));
            let input = field::sample(len, u64::from(log_n));
            let label = format!("2^{log_n}");
            group.bench_with_input(BenchmarkId::new("pjp_cpu", &label), &input, |b, input| {
                b.iter_batched_ref(
                    || input.clone(),
                    |data| cpu.transform(black_box(data), log_n, Direction::Forward),
                    BatchSize::LargeInput,
                );
            });
            if batch == 1 || log_n == 16 {
                group.bench_with_input(
                    BenchmarkId::new("naive_radix2", &label),
                    &input,
                    |b, input| {
                        b.iter_batched_ref(
                            || input.clone(),
                            |data| {
                                data.chunks_mut(1 << log_n).for_each(naive_radix2);
                            },
                            BatchSize::LargeInput,
                        );
                    },
                );
            }
            if let Some(gpu) = gpu {
                group.bench_with_input(BenchmarkId::new("pjp_cuda", &label), &input, |b, input| {
                    b.iter_batched_ref(
                        || input.clone(),
                        |data| gpu.transform(black_box(data), log_n, Direction::Forward),
                        BatchSize::LargeInput,
                    );
                });
            }
        }
        group.finish();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    #[allow(clippy::expect_used)]
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn jobs() -> Vec<NttJob> {
    (0..RUNNER_JOBS)
        .map(|k| {
            NttJob::new(
                RUNNER_LOG_N,
                Direction::Forward,
                RUNNER_BATCH,
                field::sample(RUNNER_BATCH << RUNNER_LOG_N, k as u64),
            )
        })
        .collect()
}

async fn through_runner(executor: NttExecutor, jobs: Vec<NttJob>) -> u64 {
    let queue = MemoryQueue::closed_with(jobs);
    #[allow(clippy::expect_used)]
    let runner = JobRunner::builder(queue.picker(), executor, queue.saver())
        .workers(2)
        .build()
        .expect("valid config");
    match runner.run(&TokioRuntime::current(), Shutdown::new()).await {
        Ok(report) => report.counts.succeeded,
        Err(error) => panic!("run failed: {error}"),
    }
}

fn runner(c: &mut Criterion, gpu_present: bool) {
    let rt = runtime();
    let jobs = jobs();
    let mut group = c.benchmark_group("ntt_runner");
    tune(&mut group, RUNNER_LOG_N);
    group.throughput(Throughput::Elements(RUNNER_JOBS as u64));
    let label = format!("{RUNNER_JOBS}x2^{RUNNER_LOG_N}x{RUNNER_BATCH}");
    let mut backends = vec![("cpu", BackendChoice::Cpu)];
    if gpu_present {
        backends.push(("cuda", BackendChoice::Cuda));
    }
    for (name, choice) in backends {
        let executor: NttExecutor = match NttExecutor::new(NttConfig::new().backend(choice)) {
            Ok(executor) => executor,
            Err(e) => panic!("{name} executor: {e}"),
        };
        group.bench_function(
            BenchmarkId::new(format!("pjp_runner_{name}"), &label),
            |b| {
                b.iter_batched(
                    || jobs.clone(),
                    |jobs| {
                        assert_eq!(
                            rt.block_on(through_runner(executor.clone(), jobs)),
                            RUNNER_JOBS as u64
                        )
                    },
                    BatchSize::LargeInput,
                );
            },
        );
        group.bench_function(
            BenchmarkId::new(format!("plain_loop_{name}"), &label),
            |b| {
                b.iter_batched(
                    || jobs.clone(),
                    |jobs| {
                        for job in jobs {
                            if let Err(e) = executor.run(job) {
                                panic!("job failed: {e}");
                            }
                        }
                    },
                    BatchSize::LargeInput,
                );
            },
        );
    }
    group.finish();
}

fn bench(c: &mut Criterion) {
    let gpu = match CudaNtt::new(0) {
        Ok(gpu) => {
            println!("ntt bench: GPU {}", gpu.info());
            Some(gpu)
        }
        Err(e) => {
            println!("ntt bench: no GPU figures ({e})");
            None
        }
    };
    transforms(c, gpu.as_ref());
    runner(c, gpu.is_some());
}

criterion_group!(benches, bench);
criterion_main!(benches);
