//! Testing your own saver with the testkit: the conformance suite checks the
//! promises the runner relies on (each result stored once, however often a
//! retry repeats it) and the ledger checks a whole run under injected save
//! faults. In your crate, put the same calls in a `#[tokio::test]`.
//! Run: `cargo run -p pjp-examples --example property-test`.

use std::sync::Mutex;

use pjp_core::memory::{MemoryQueue, QueueMeta};
use pjp_core::{JobId, JobMeta, JobResult, JobRunner, JobSaver, Shutdown, executor_fn};
use pjp_runtime_tokio::TokioRuntime;
use pjp_testkit::{IoFaults, Ledger, PickerExt, SaverExt, conformance};

/// Your saver: an upsert keyed by job id, so a retried save stores nothing new.
#[derive(Default)]
struct Results(Mutex<Vec<(JobId, JobResult<u64, String>)>>);

impl JobSaver for Results {
    type Output = u64;
    type Failure = String;
    type Metadata = QueueMeta;
    type Error = std::io::Error;

    async fn save(&self, result: &JobResult<u64, String>, meta: &QueueMeta) -> std::io::Result<()> {
        let mut rows = self
            .0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?;
        if !rows.iter().any(|(id, _)| *id == meta.job_id()) {
            rows.push((meta.job_id(), result.clone()));
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runtime = TokioRuntime::current();

    // 1. Conformance: a fresh saver, job n's metadata and output, the rows stored for a job.
    let meta = |n| QueueMeta {
        id: JobId::new(n),
        attempt: 1,
    };
    let rows = |saver: &Results, job| {
        saver
            .0
            .lock()
            .map_or(0, |r| r.iter().filter(|(id, _)| *id == job).count())
    };
    let report = conformance::check_saver(
        &runtime,
        async || Results::default(),
        |n| (meta(n), n * 10),
        async |s: &Results, job| rows(s, job),
    )
    .await?;
    println!("saver conformance passed: {:?}", report.passed);

    // 2. A run checked by the ledger (next to the source and the store, under the
    //    fault wrapper) while 10 % of saves fail and are retried.
    let ledger = Ledger::timed(&runtime);
    let queue: MemoryQueue<u64, u64, String> = MemoryQueue::closed_with(0..1_000);
    let saver = Results::default()
        .with_ledger(&ledger)
        .with_faults(&runtime, IoFaults::none().error_rate(0.1));
    let increment = executor_fn(|n: u64| Ok::<_, String>(n + 1));
    let runner = JobRunner::builder(queue.picker().with_ledger(&ledger), increment, saver)
        .workers(2)
        .build()?;
    let run = runner.run(&runtime, Shutdown::new()).await?;
    ledger.check_all_saved((0..1_000).map(JobId::new))?;
    println!(
        "ledger: {} saved exactly once under save faults: {:?}",
        run.counts.succeeded,
        ledger.summary()
    );
    Ok(())
}
