//! The ledger catches real bugs: a saver that drops a result, a picker that
//! hands a job out twice, and a runner whose releases never reach the source.

use std::collections::BTreeSet;
use std::sync::{Condvar, Mutex};

use pjp_core::{Executor, JobContext, JobId, JobRunner, Shutdown, StopReason};
use pjp_runtime_tokio::TokioRuntime;
use pjp_testkit::broken::{DroppingSaver, DuplicatingPicker, SwallowReleases};
use pjp_testkit::wait::eventually;
use pjp_testkit::{ExecutorExt, Ledger, MemoryQueue, PickerExt, SaverExt, Violation, Workload};

type Queue = MemoryQueue<u64, u64, String>;

fn ids(range: std::ops::Range<u64>) -> impl Iterator<Item = JobId> {
    range.map(JobId::new)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_run_keeps_every_promise() -> anyhow::Result<()> {
    let runtime = TokioRuntime::current();
    let ledger = Ledger::timed(&runtime);
    let queue = Queue::closed_with(0..500);
    let runner = JobRunner::builder(
        queue.picker().with_ledger(&ledger),
        Workload::noop().with_ledger(&ledger),
        queue.saver().with_ledger(&ledger),
    )
    .workers(2)
    .pickers(2)
    .pick_batch(4)
    .prefetch(8)
    .build()?;
    let report = runner.run(&runtime, Shutdown::new()).await?;
    let summary = ledger.check_all_saved(ids(0..500))?;
    ledger.check_drained()?;
    assert_eq!(report.counts.picked, summary.picks);
    assert_eq!(
        (summary.picks, summary.executions, summary.saved),
        (500, 500, 500)
    );
    assert_eq!((summary.duplicated, summary.lost), (0, 0));
    assert_eq!(ledger.job_latencies().len(), 500);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saver_that_drops_results_is_reported() -> anyhow::Result<()> {
    let runtime = TokioRuntime::current();
    let ledger = Ledger::new();
    let queue = Queue::closed_with(0..100);
    let runner = JobRunner::builder(
        queue.picker().with_ledger(&ledger),
        Workload::noop(),
        // The ledger sits at the store: a dropped result never reaches it.
        DroppingSaver::new(queue.saver().with_ledger(&ledger), 10),
    )
    .build()?;
    // The runner sees every save succeed: it cannot tell.
    let report = runner.run(&runtime, Shutdown::new()).await?;
    assert_eq!(report.counts.succeeded, 100);
    let error = ledger
        .check()
        .expect_err("dropped results must be reported");
    assert_eq!(error.violations.len(), 10);
    assert!(
        error
            .violations
            .iter()
            .all(|v| matches!(v, Violation::Lost { .. }))
    );
    assert_eq!(error.summary.lost, 10);
    assert_eq!(queue.saved_count(), 90);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_picker_that_hands_a_job_out_twice_is_reported() -> anyhow::Result<()> {
    let runtime = TokioRuntime::current();
    let ledger = Ledger::new();
    let queue = Queue::closed_with(0..40);
    let runner = JobRunner::builder(
        DuplicatingPicker::new(queue.picker(), 7).with_ledger(&ledger),
        Workload::noop().with_ledger(&ledger),
        queue.saver().with_ledger(&ledger),
    )
    .build()?;
    runner.run(&runtime, Shutdown::new()).await?;
    let error = ledger.check().expect_err("duplicates must be reported");
    let picked_twice: BTreeSet<JobId> = error
        .violations
        .iter()
        .filter(|v| {
            matches!(
                v,
                Violation::PickedWhileClaimed { .. } | Violation::PickedAfterSave { .. }
            )
        })
        .map(Violation::job)
        .collect();
    let saved_twice: BTreeSet<JobId> = error
        .violations
        .iter()
        .filter(|v| matches!(v, Violation::SavedTwice { .. }))
        .map(Violation::job)
        .collect();
    // Every 7th job: 6, 13, 20, 27, 34.
    let expected: BTreeSet<JobId> = [6, 13, 20, 27, 34].into_iter().map(JobId::new).collect();
    assert_eq!(picked_twice, expected);
    assert_eq!(saved_twice, expected);
    assert_eq!(error.summary.duplicated, 5);
    Ok(())
}

/// Blocks every job until opened.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.opened.notify_all();
    }
}

impl Executor for &'static Gate {
    type Input = u64;
    type Output = u64;
    type Error = String;

    fn execute(&self, input: u64, _job: &JobContext) -> Result<u64, String> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        while !*open {
            open = self.opened.wait(open).unwrap_or_else(|e| e.into_inner());
        }
        Ok(input)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoning_without_releasing_is_reported_as_lost_jobs() -> anyhow::Result<()> {
    let runtime = TokioRuntime::current();
    let ledger = Ledger::new();
    let queue = Queue::closed_with(0..50);
    let gate: &'static Gate = Box::leak(Box::default());
    // The runner releases unstarted jobs on abandon, but this picker swallows
    // the releases: the jobs stay claimed at the source.
    let runner = JobRunner::builder(
        SwallowReleases(queue.picker().with_ledger(&ledger)),
        gate.with_ledger(&ledger),
        queue.saver().with_ledger(&ledger),
    )
    .prefetch(8)
    .build()?;
    let shutdown = Shutdown::new();
    let progress = runner.progress();
    let run = runner.run(&runtime, shutdown.clone());
    let abandon = async {
        // One job executing, eight waiting in the prefetch buffer.
        eventually("the prefetch buffer fills", || {
            ledger.summary().executions == 1 && queue.pending() == 50 - 9
        })
        .await;
        shutdown.abandon();
        eventually("the runner releases the waiting jobs", || {
            progress.snapshot().counts.released == 8
        })
        .await;
        gate.open();
    };
    let (report, ()) = tokio::join!(run, abandon);
    let report = report?;
    assert_eq!(report.stop, StopReason::Abandoned);
    assert_eq!(report.saved(), 1);
    assert_eq!(report.released.len(), 8);
    // The runner believes it released eight jobs; the ledger knows better.
    let error = ledger
        .check()
        .expect_err("swallowed releases must be reported");
    let lost: BTreeSet<JobId> = error
        .violations
        .iter()
        .filter(|v| matches!(v, Violation::Lost { .. }))
        .map(Violation::job)
        .collect();
    assert_eq!(lost, report.released.iter().copied().collect());
    assert_eq!(queue.claimed(), 8);
    Ok(())
}
