//! Ready-made property checks: run a [`RunPlan`] (random faults, a random
//! runner configuration, a cancellation at a random time) on any runtime and
//! check the runner's contract against a [`Ledger`].
//!
//! On tokio, with proptest (in a test, the `proptest!` macro does the same):
//!
//! ```
//! use proptest::test_runner::{Config, TestCaseError, TestRunner};
//! use pjp_testkit::{props, strategy};
//!
//! let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
//! let runtime = pjp_runtime_tokio::TokioRuntime::from_handle(rt.handle().clone());
//! let mut runner = TestRunner::new(Config::with_cases(4));
//! runner.run(&strategy::run_plan(strategy::PlanSpace::real_time()), |plan| {
//!     rt.block_on(props::check_run(&runtime, &plan))
//!         .map(drop)
//!         .map_err(|broken| TestCaseError::fail(format!("{plan:?}: {broken}")))
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Under simulation `pjp-runtime-sim` runs the same check for a thousand seeds.

use std::fmt;

use pjp_core::{ConfigError, JobRunner, RunError, RunReport, Runtime, Shutdown, StopReason};

use crate::{
    ExecFault, ExecutorExt, Ledger, LedgerError, LedgerSummary, MemoryQueue, PickerExt, RunPlan,
    SaverExt, Workload,
};

/// The queue [`check_run`] runs its jobs from: inputs are job numbers,
/// outputs echo them.
pub type PlanQueue = MemoryQueue<u64, u64, ExecFault<String>>;

/// What a checked run did.
#[derive(Debug)]
#[non_exhaustive]
pub struct RunOutcome {
    /// The runner's report (also when the run ended with an error).
    pub report: RunReport,
    /// The run's error, if it failed (a save that gave up, say); the
    /// promises hold either way.
    pub error: Option<RunError>,
    /// What the ledger counted.
    pub summary: LedgerSummary,
    /// Jobs still in the queue (never picked, or released).
    pub pending: usize,
}

impl fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.summary;
        write!(
            f,
            "stop {:?}, picked {}, saved {} ({} failed), released {}, pending {}, lost {}, duplicated {}",
            self.report.stop,
            s.picks,
            s.saved,
            s.failed,
            s.released,
            self.pending,
            s.lost,
            s.duplicated
        )?;
        if let Some(error) = &self.error {
            write!(f, "; error: {error}")?;
        }
        Ok(())
    }
}

/// A promise the run broke.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PropertyError {
    /// The plan's runner configuration is invalid.
    #[error("invalid runner plan: {0}")]
    Config(#[from] ConfigError),
    /// The ledger found violations.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The report does not account for every picked job.
    #[error("the report leaves {0} picked job(s) unaccounted for")]
    Unaccounted(u64),
    /// The report disagrees with the ledger.
    #[error("the report says {field} = {report}, the ledger counted {ledger}")]
    Mismatch {
        /// Which count.
        field: &'static str,
        /// The report's count.
        report: u64,
        /// The ledger's count.
        ledger: u64,
    },
    /// The run reported the source exhausted with jobs never saved.
    #[error("the run stopped as {stop:?} with {saved} of {jobs} job(s) saved")]
    Incomplete {
        /// Why it stopped.
        stop: StopReason,
        /// Jobs saved.
        saved: u64,
        /// Jobs in all.
        jobs: u64,
    },
    /// The runner held more jobs than its configured bound.
    #[error("{peak} jobs claimed at once, above the configured bound of {bound}")]
    OverClaimed {
        /// The most held at once.
        peak: u64,
        /// The bound.
        bound: u64,
    },
    /// Saved and pending jobs do not add up to the jobs in the source.
    #[error("{saved} saved + {pending} pending ≠ {jobs} jobs: the source lost some")]
    SourceMismatch {
        /// Jobs saved.
        saved: u64,
        /// Jobs pending.
        pending: u64,
        /// Jobs in all.
        jobs: u64,
    },
}

/// Runs `plan` on `runtime` and checks every promise of the runner:
///
/// * the ledger's invariants: nothing lost, nothing saved twice, nothing
///   saved that was not picked, no job handed out twice, released jobs never
///   executed after release;
/// * a run that did not abandon drained completely: nothing released but the
///   jobs whose save gave up, every other picked job saved
///   ([`Ledger::check_drained_except`]);
/// * a run that found its source exhausted saved every job;
/// * the report accounts for every picked job and agrees with the ledger;
/// * the runner never held more jobs than its bound;
/// * saved plus pending jobs add up to the jobs in the source.
///
/// The plan's faults make some runs fail (a save that gives up ends the run
/// with an error): that is allowed, as long as the promises hold.
pub async fn check_run<R: Runtime>(
    runtime: &R,
    plan: &RunPlan,
) -> Result<RunOutcome, PropertyError> {
    let queue: PlanQueue = MemoryQueue::closed_with(0..plan.jobs);
    let ledger = Ledger::timed(runtime);
    let picker = queue
        .picker()
        .with_ledger(&ledger)
        .with_faults(runtime, plan.picker.clone())
        .with_latency(runtime, plan.latency.clone());
    let saver = queue
        .saver()
        .with_ledger(&ledger)
        .with_faults(runtime, plan.saver.clone())
        .with_latency(runtime, plan.latency.clone());
    let work = if plan.exec.sleep {
        Workload::sleeping(plan.exec.cost)
    } else {
        Workload::modeled(plan.exec.cost)
    };
    let executor = work
        .with_faults(runtime, plan.exec.faults)
        .with_ledger(&ledger);
    let runner = plan
        .runner
        .apply(JobRunner::builder(picker, executor, saver))
        .build()?;

    let shutdown = Shutdown::new();
    let cancel = plan.cancel.spawn(runtime, &shutdown);
    let result = runner.run(runtime, shutdown).await;
    drop(cancel);
    let (report, error) = match result {
        Ok(report) => (report, None),
        Err(error) => (error.report().clone(), Some(error)),
    };

    let summary = if report.stop == StopReason::Abandoned {
        ledger.check()?
    } else {
        // A job whose save gave up is released while the run goes on.
        ledger.check_drained_except(&report.save_gave_up)?
    };
    if report.unaccounted() != 0 {
        return Err(PropertyError::Unaccounted(report.unaccounted()));
    }
    for (field, from_report, from_ledger) in [
        ("picked", report.counts.picked, summary.picks),
        ("saved", report.saved(), summary.saved),
        ("failed", report.counts.failed, summary.failed),
        ("released", report.released.len() as u64, summary.released),
    ] {
        if from_report != from_ledger {
            return Err(PropertyError::Mismatch {
                field,
                report: from_report,
                ledger: from_ledger,
            });
        }
    }
    // A job whose save gave up went back to the queue; a closed queue may
    // have reported itself exhausted before it came back.
    let gave_up: std::collections::HashSet<_> = report.save_gave_up.iter().collect();
    let accounted = summary.saved + gave_up.len() as u64;
    if report.stop == StopReason::Exhausted && error.is_none() && accounted < plan.jobs {
        return Err(PropertyError::Incomplete {
            stop: report.stop,
            saved: summary.saved,
            jobs: plan.jobs,
        });
    }
    if report.peak_claimed > report.max_claimed {
        return Err(PropertyError::OverClaimed {
            peak: report.peak_claimed,
            bound: report.max_claimed,
        });
    }
    let pending = queue.pending();
    if summary.saved + pending as u64 != plan.jobs || queue.saved_count() as u64 != summary.saved {
        return Err(PropertyError::SourceMismatch {
            saved: summary.saved,
            pending: pending as u64,
            jobs: plan.jobs,
        });
    }
    Ok(RunOutcome {
        report,
        error,
        summary,
        pending,
    })
}
