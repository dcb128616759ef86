//! `NttExecutor`: bad input is an error result (never a panic), backend
//! selection, cost hints, and jobs through the runner on the CPU backend.

use std::time::Duration;

use pjp_core::{ExecError, Executor, JobContext, JobId, JobRunner, Shutdown};
use pjp_gpu::{
    Backend, BackendChoice, BackendError, BackendKind, CostModel, CpuNtt, Direction, NttConfig,
    NttError, NttExecutor, NttJob, NttOutput, field,
};
use pjp_testkit::MemoryQueue;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn cpu_executor() -> NttExecutor {
    NttExecutor::cpu()
}

fn run(executor: &NttExecutor, job: NttJob) -> Result<NttOutput, NttError> {
    executor.execute(job, &JobContext::new(JobId::new(7), 1))
}

#[test]
fn rejects_a_size_above_the_maximum() -> TestResult {
    let executor: NttExecutor =
        NttExecutor::new(NttConfig::new().backend(BackendChoice::Cpu).max_log_n(10))?;
    let err = run(
        &executor,
        NttJob::new(11, Direction::Forward, 1, vec![0; 1 << 11]),
    );
    assert_eq!(err, Err(NttError::TooLarge { log_n: 11, max: 10 }));
    // The check comes before the length check: a huge log_n allocates nothing.
    let err = run(&executor, NttJob::new(40, Direction::Forward, 1, vec![]));
    assert!(matches!(err, Err(NttError::TooLarge { log_n: 40, .. })));
    assert!(
        run(
            &executor,
            NttJob::new(10, Direction::Forward, 1, vec![0; 1 << 10])
        )
        .is_ok()
    );
    Ok(())
}

#[test]
fn rejects_a_wrong_batch_length() {
    let executor = cpu_executor();
    for (batch, len) in [(2, 15), (2, 17), (1, 0), (0, 8), (3, 16)] {
        let err = run(
            &executor,
            NttJob::new(3, Direction::Forward, batch, vec![1; len]),
        );
        assert_eq!(
            err,
            Err(NttError::BatchLength {
                batch,
                log_n: Some(3),
                len
            }),
            "batch {batch}, len {len}"
        );
    }
    // batch × n overflowing usize is a length error too, not a panic.
    let err = run(
        &executor,
        NttJob::new(20, Direction::Forward, usize::MAX, vec![1; 4]),
    );
    assert!(matches!(err, Err(NttError::BatchLength { .. })));
}

#[test]
fn rejects_non_canonical_elements() {
    let executor = cpu_executor();
    for bad in [field::P, field::P + 1, u64::MAX] {
        let mut coeffs = vec![5; 64];
        coeffs[37] = bad;
        let err = run(&executor, NttJob::new(5, Direction::Inverse, 2, coeffs));
        assert_eq!(
            err,
            Err(NttError::NonCanonical {
                index: 37,
                value: bad
            })
        );
    }
    // Large inputs are checked in parallel; the first offender is reported.
    let mut coeffs = vec![1; 4 << 20];
    coeffs[3_000_001] = u64::MAX;
    coeffs[4_000_000] = field::P;
    let err = run(&executor, NttJob::new(20, Direction::Forward, 4, coeffs));
    assert_eq!(
        err,
        Err(NttError::NonCanonical {
            index: 3_000_001,
            value: u64::MAX
        })
    );
}

#[test]
fn rejects_non_power_of_two_lengths() {
    for len in [3, 6, 12, 1000] {
        assert_eq!(
            NttJob::single(Direction::Forward, vec![0; len]),
            Err(NttError::NotPowerOfTwo { len })
        );
    }
    assert!(matches!(
        NttJob::from_coeffs(Direction::Forward, 3, vec![0; 16]),
        Err(NttError::BatchLength { log_n: None, .. })
    ));
    assert!(matches!(
        NttJob::from_coeffs(Direction::Forward, 0, vec![]),
        Err(NttError::BatchLength { .. })
    ));
    assert_eq!(
        CpuNtt::new().forward(&mut [1, 2, 3, 4, 5, 6]),
        Err(NttError::NotPowerOfTwo { len: 6 })
    );
}

#[test]
fn errors_say_whether_to_retry() {
    let e = NttError::NonCanonical {
        index: 0,
        value: u64::MAX,
    };
    assert!(e.is_bad_input());
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("not a canonical"));
}

#[test]
fn transforms_and_reports_the_backend() -> TestResult {
    let executor = cpu_executor();
    let job = NttJob::from_coeffs(Direction::Forward, 2, vec![1, 0, 0, 0, 0, 1, 0, 0])?;
    let out = run(&executor, job)?;
    let w = field::root_of_unity(2).ok_or("no root")?;
    assert_eq!(out.log_n, 2);
    assert_eq!(out.batch, 2);
    assert_eq!(out.backend, BackendKind::Cpu);
    assert_eq!(out.coeffs[..4], [1, 1, 1, 1]);
    assert_eq!(out.coeffs[4..], [1, w, field::P - 1, field::neg(w)]);
    // An empty batch is fine.
    let out = run(&executor, NttJob::new(4, Direction::Inverse, 0, vec![]))?;
    assert!(out.coeffs.is_empty());
    Ok(())
}

#[test]
fn backend_choice_parses_and_cuda_fails_typed_without_a_gpu() -> TestResult {
    assert_eq!(" Auto ".parse::<BackendChoice>()?, BackendChoice::Auto);
    assert_eq!("gpu".parse::<BackendChoice>()?, BackendChoice::Cuda);
    assert!(matches!(
        "fpga".parse::<BackendChoice>(),
        Err(BackendError::InvalidChoice { .. })
    ));
    assert!(matches!(
        NttExecutor::new(NttConfig::new().max_log_n(33)),
        Err(BackendError::MaxSizeTooLarge { max_log_n: 33 })
    ));

    // Auto always yields an executor; `cuda` either runs on a GPU or is refused
    // with a typed error — never a panic.
    let auto: NttExecutor = NttExecutor::new(NttConfig::new())?;
    println!("auto chose: {}", auto.backend());
    match NttExecutor::new(NttConfig::new().backend(BackendChoice::Cuda)) {
        Ok(cuda) => assert_eq!(cuda.backend().kind(), BackendKind::Cuda),
        Err(BackendError::CudaUnavailable(e)) => {
            assert_eq!(auto.backend().kind(), BackendKind::Cpu);
            println!("cuda refused: {e}");
        }
        Err(e) => return Err(e.into()),
    }
    let cpu: NttExecutor =
        NttExecutor::new(NttConfig::new().backend(BackendChoice::Cpu).cpu_threads(2))?;
    assert_eq!(cpu.backend(), &Backend::Cpu { threads: 2 });
    assert_eq!(cpu.backend().to_string(), "cpu (2 threads)");
    Ok(())
}

#[test]
fn cost_hint_models_n_log_n_batch() {
    let model = CostModel::new(Duration::from_micros(1), 0.0, 2.0);
    let executor: NttExecutor = NttExecutor::new(
        NttConfig::new()
            .backend(BackendChoice::Cpu)
            .cost_model(model),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let hint = |log_n: u32, batch: usize| {
        executor.cost_hint(&NttJob::new(log_n, Direction::Forward, batch, Vec::new()))
    };
    assert_eq!(hint(10, 1), Duration::from_nanos(1_000 + 2 * 10 * 1024));
    assert_eq!(hint(10, 4) - model.fixed, (hint(10, 1) - model.fixed) * 4);
    assert_eq!(
        hint(20, 1) - model.fixed,
        (hint(10, 1) - model.fixed) * 2048
    );
    assert!(
        NttExecutor::cpu().cost_hint(&NttJob::new(20, Direction::Forward, 1, vec![]))
            > Duration::ZERO
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_saves_results_and_bad_jobs_as_failures() -> TestResult {
    let good = |k: u64| NttJob::new(10, Direction::Forward, 2, vec![k; 2 << 10]);
    let mut jobs: Vec<NttJob> = (0..20).map(good).collect();
    jobs.push(NttJob::new(
        10,
        Direction::Forward,
        2,
        vec![u64::MAX; 2 << 10],
    ));
    jobs.push(NttJob::new(3, Direction::Forward, 2, vec![1; 7]));
    let queue = MemoryQueue::closed_with(jobs.clone());
    let executor: NttExecutor = NttExecutor::new(NttConfig::new().backend(BackendChoice::Cpu))?;
    let runner = JobRunner::builder(queue.picker(), executor, queue.saver())
        .workers(2)
        .build()?;
    let report = runner
        .run(&pjp_runtime_tokio::TokioRuntime::current(), Shutdown::new())
        .await?;
    assert_eq!(report.counts.succeeded, 20);
    assert_eq!(queue.saved_count(), 22);
    let cpu = CpuNtt::new();
    for saved in queue.saved() {
        let job = &jobs[saved.meta.id.get() as usize];
        match saved.result {
            Ok(out) => {
                let mut expected = job.coeffs.clone();
                cpu.transform(&mut expected, job.log_n, job.direction)?;
                assert_eq!(out.coeffs, expected);
            }
            Err(ExecError::Failed(e)) => assert!(e.is_bad_input(), "{e}"),
            Err(other) => panic!("unexpected {other}"),
        }
    }
    Ok(())
}
