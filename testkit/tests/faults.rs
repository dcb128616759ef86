//! Fault-injecting wrappers on tokio: the runner rides out injected picker
//! and saver errors, and saves injected executor failures and panics.

use std::time::Duration;

use pjp_core::{BackoffPolicy, ErrorClass, ExecError, JobRunner, RetryPolicy, Shutdown};
use pjp_runtime_tokio::TokioRuntime;
use pjp_testkit::{
    ExecFault, ExecFaults, ExecutorExt, FaultError, IoFaults, Ledger, MemoryQueue, PickerExt,
    SaverExt, Workload,
};

type Queue = MemoryQueue<u64, u64, ExecFault<String>>;

fn fast() -> BackoffPolicy {
    BackoffPolicy::new(Duration::from_micros(100), Duration::from_millis(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_are_retried_or_saved_as_failures() -> anyhow::Result<()> {
    pjp_testkit::quiet_injected_panics();
    let runtime = TokioRuntime::current();
    let ledger = Ledger::timed(&runtime);
    let queue = Queue::closed_with(0..400);
    let runner = JobRunner::builder(
        queue
            .picker()
            .with_ledger(&ledger)
            .with_faults(&runtime, IoFaults::none().error_rate(0.3)),
        Workload::noop()
            .with_faults(
                &runtime,
                ExecFaults::none().error_rate(0.1).panic_rate(0.05),
            )
            .with_ledger(&ledger),
        queue
            .saver()
            .with_ledger(&ledger)
            .with_faults(&runtime, IoFaults::none().error_rate(0.2)),
    )
    .workers(2)
    .pick_error_backoff(fast())
    .save_retry(RetryPolicy::new(30, fast()))
    .build()?;
    let report = runner.run(&runtime, Shutdown::new()).await?;
    ledger.check_all_saved((0..400).map(pjp_core::JobId::new))?;
    assert_eq!(report.saved(), 400);
    assert!(report.counts.pick_errors > 0 && report.counts.save_retries > 0);
    let saved = queue.saved();
    let injected = saved
        .iter()
        .filter(|s| matches!(s.result, Err(ExecError::Failed(ExecFault::Injected))))
        .count() as u64;
    let panicked = saved
        .iter()
        .filter(|s| matches!(&s.result, Err(ExecError::Panicked { message }) if message.starts_with(pjp_testkit::INJECTED_PANIC)))
        .count() as u64;
    assert_eq!(report.counts.panicked, panicked);
    assert_eq!(report.counts.failed, injected + panicked);
    assert!(injected > 0 && panicked > 0);
    Ok(())
}

#[tokio::test]
async fn an_outage_fails_every_call_inside_its_window() -> anyhow::Result<()> {
    use pjp_core::JobPicker;
    let runtime = TokioRuntime::current();
    let queue = Queue::closed_with(0..3);
    let faults = IoFaults::none().outage(pjp_testkit::Outage::new(
        Duration::ZERO,
        Duration::from_secs(3600),
    ));
    let picker = queue.picker().with_faults(&runtime, faults);
    for _ in 0..3 {
        assert!(matches!(picker.pick().await, Err(FaultError::Outage)));
    }
    assert_eq!(picker.classify(&FaultError::Outage), ErrorClass::Transient);
    assert_eq!(queue.pending(), 3);
    Ok(())
}
