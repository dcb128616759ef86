//! The CUDA backend against the CPU reference, on a real GPU.
//!
//! Without a usable GPU (no driver, no device, no NVRTC, NVRTC newer than the
//! driver) every test prints why and passes — unless `REQUIRE_GPU=1`, where it
//! fails. `gpu/scripts/gpu-bundle.sh` packages these tests for a GPU machine.

use std::sync::Arc;

use pjp_core::{Executor, JobContext, JobId, JobRunner, Shutdown};
use pjp_gpu::{
    BackendChoice, BackendError, BackendKind, CpuNtt, CudaNtt, Direction, NttConfig, NttExecutor,
    NttJob, field,
};
use pjp_testkit::MemoryQueue;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn require_gpu() -> bool {
    std::env::var("REQUIRE_GPU").is_ok_and(|v| v == "1")
}

/// The GPU, or `None` (after printing why) when the test should skip.
fn gpu() -> Option<CudaNtt> {
    match CudaNtt::new(0) {
        Ok(gpu) => {
            println!("GPU: {}", gpu.info());
            Some(gpu)
        }
        Err(e) => {
            assert!(
                !require_gpu(),
                "REQUIRE_GPU=1 but the CUDA backend is unavailable: {e}"
            );
            println!("SKIPPED: no usable GPU ({e}); set REQUIRE_GPU=1 to make this fail");
            None
        }
    }
}

fn check(gpu: &CudaNtt, cpu: &CpuNtt, log_n: u32, batch: usize) -> TestResult {
    for direction in [Direction::Forward, Direction::Inverse] {
        let input = field::sample(batch << log_n, u64::from(log_n) << 8 | batch as u64);
        let mut on_gpu = input.clone();
        gpu.transform(&mut on_gpu, log_n, direction)?;
        let mut on_cpu = input;
        cpu.transform(&mut on_cpu, log_n, direction)?;
        assert!(
            on_gpu == on_cpu,
            "2^{log_n} × {batch} {direction}: GPU differs from CPU (first at {:?})",
            on_gpu.iter().zip(&on_cpu).position(|(a, b)| a != b)
        );
    }
    Ok(())
}

#[test]
fn matches_cpu_for_sizes_2_to_2_pow_22() -> TestResult {
    let Some(gpu) = gpu() else { return Ok(()) };
    let cpu = CpuNtt::new();
    for log_n in 0..=22 {
        check(&gpu, &cpu, log_n, 1)?;
    }
    Ok(())
}

#[test]
fn matches_cpu_for_batches() -> TestResult {
    let Some(gpu) = gpu() else { return Ok(()) };
    let cpu = CpuNtt::new();
    for (log_n, batch) in [
        (1, 1000),
        (5, 33),
        (10, 64),
        (12, 7),
        (16, 16),
        (18, 5),
        (20, 4),
    ] {
        check(&gpu, &cpu, log_n, batch)?;
    }
    Ok(())
}

#[test]
fn buffers_are_reused_and_regrown() -> TestResult {
    let Some(gpu) = gpu() else { return Ok(()) };
    let cpu = CpuNtt::new();
    // Small, large, small again: the same stream's buffers grow, then serve less.
    for (log_n, batch) in [(8, 2), (18, 2), (4, 3), (18, 1), (12, 40)] {
        check(&gpu, &cpu, log_n, batch)?;
    }
    assert_eq!(gpu.streams(), 1, "one job at a time needs one stream");
    Ok(())
}

#[test]
fn concurrent_jobs_run_on_their_own_streams() -> TestResult {
    let Some(gpu) = gpu() else { return Ok(()) };
    let gpu = Arc::new(gpu);
    let cpu = Arc::new(CpuNtt::new());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (gpu, cpu) = (Arc::clone(&gpu), Arc::clone(&cpu));
            std::thread::spawn(move || -> Result<(), String> {
                for round in 0..8 {
                    let log_n = 14 + (t + round) % 5;
                    check(&gpu, &cpu, log_n, 2).map_err(|e| e.to_string())?;
                }
                Ok(())
            })
        })
        .collect();
    for thread in threads {
        thread.join().map_err(|_| "worker panicked")??;
    }
    println!("streams created: {}", gpu.streams());
    assert!((1..=4).contains(&gpu.streams()));
    Ok(())
}

#[test]
fn executor_with_cuda_required_runs_on_the_gpu() -> TestResult {
    let executor: NttExecutor =
        match NttExecutor::new(NttConfig::new().backend(BackendChoice::Cuda)) {
            Ok(executor) => executor,
            Err(BackendError::CudaUnavailable(e)) => {
                assert!(!require_gpu(), "REQUIRE_GPU=1 but CUDA is unavailable: {e}");
                println!("SKIPPED: no usable GPU ({e}); `cuda` was refused with a typed error");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
    assert_eq!(executor.backend().kind(), BackendKind::Cuda);
    println!("backend: {}", executor.backend());
    let input = field::sample(4 << 16, 3);
    let out = executor.execute(
        NttJob::new(16, Direction::Forward, 4, input.clone()),
        &JobContext::new(JobId::new(0), 1),
    )?;
    assert_eq!(out.backend, BackendKind::Cuda);
    let mut expected = input;
    CpuNtt::new().transform(&mut expected, 16, Direction::Forward)?;
    assert_eq!(out.coeffs, expected);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_with_gpu_executor_saves_every_job() -> TestResult {
    let executor: NttExecutor = NttExecutor::new(NttConfig::new().backend(BackendChoice::Auto))?;
    if executor.backend().kind() != BackendKind::Cuda {
        assert!(
            !require_gpu(),
            "REQUIRE_GPU=1 but auto chose {}",
            executor.backend()
        );
        println!("SKIPPED: auto chose {}", executor.backend());
        return Ok(());
    }
    let jobs: Vec<NttJob> = (0..32)
        .map(|k| {
            NttJob::new(
                12 + k % 6,
                Direction::Forward,
                3,
                field::sample(3 << (12 + k % 6), u64::from(k)),
            )
        })
        .collect();
    let queue = MemoryQueue::closed_with(jobs.clone());
    let runner = JobRunner::builder(queue.picker(), executor, queue.saver())
        .workers(4)
        .prefetch(4)
        .build()?;
    let report = runner
        .run(&pjp_runtime_tokio::TokioRuntime::current(), Shutdown::new())
        .await?;
    assert_eq!(report.counts.succeeded, 32);
    let cpu = CpuNtt::new();
    for saved in queue.saved() {
        let job = &jobs[saved.meta.id.get() as usize];
        let mut expected = job.coeffs.clone();
        cpu.transform(&mut expected, job.log_n, job.direction)?;
        let out = saved.result.map_err(|e| e.to_string())?;
        assert_eq!(out.coeffs, expected);
    }
    Ok(())
}
