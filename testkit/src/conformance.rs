//! A conformance suite for *your own* pickers, savers and executors: give it
//! a factory, and it checks the promises the runner relies on.
//!
//! * [`check_picker`]: every job is handed out once; a released job comes
//!   back; `pick_many` respects its bound; concurrent picks are disjoint; a
//!   pick dropped before it completes claims nothing (cancellation safety).
//! * [`check_saver`]: every result (outputs, panics, timeouts) is stored once;
//!   a repeated save is idempotent; concurrent saves all land.
//! * [`check_executor`]: executing is deterministic, concurrent use matches
//!   sequential use, and nothing panics.
//!
//! Each check builds a fresh component from the factory. The suite runs on
//! any [`Runtime`]: tokio in your tests, or the simulator.
//!
//! ```
//! use std::collections::{HashMap, VecDeque};
//! use std::sync::{Arc, Mutex};
//! use pjp_core::{Job, JobId, JobPicker, JobResult, JobSaver, Picked, ReleaseReason};
//! use pjp_testkit::conformance;
//!
//! // A picker over a shared list, and a saver that upserts by job id.
//! struct ListPicker(Mutex<VecDeque<u64>>);
//! impl JobPicker for ListPicker {
//!     type Input = u64;
//!     type Metadata = JobId;
//!     type Error = std::io::Error;
//!     async fn pick(&self) -> Result<Picked<Job<u64, JobId>>, Self::Error> {
//!         Ok(match self.0.lock().unwrap().pop_front() {
//!             Some(n) => Picked::Some(Job::new(n, JobId::new(n))),
//!             None => Picked::Exhausted,
//!         })
//!     }
//!     async fn release(&self, meta: JobId, _reason: ReleaseReason) -> Result<(), Self::Error> {
//!         self.0.lock().unwrap().push_back(meta.get());
//!         Ok(())
//!     }
//! }
//!
//! #[derive(Default)]
//! struct Table(Arc<Mutex<HashMap<JobId, Result<u64, String>>>>);
//! impl JobSaver for Table {
//!     type Output = u64;
//!     type Failure = String;
//!     type Metadata = JobId;
//!     type Error = std::io::Error;
//!     async fn save(&self, result: &JobResult<u64, String>, meta: &JobId) -> Result<(), Self::Error> {
//!         let row = result.clone().map_err(|e| e.to_string());
//!         self.0.lock().unwrap().insert(*meta, row); // an upsert: idempotent
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> anyhow::Result<()> {
//! let runtime = pjp_runtime_tokio::TokioRuntime::current();
//! conformance::check_picker(&runtime, async |jobs| ListPicker(Mutex::new((0..jobs).collect()))).await?;
//! conformance::check_saver(
//!     &runtime,
//!     async || Table::default(),
//!     |n| (JobId::new(n), n * 10),
//!     async |table: &Table, job| usize::from(table.0.lock().unwrap().contains_key(&job)),
//! )
//! .await?;
//! # Ok(())
//! # }
//! ```

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::join_all;
use pjp_core::{
    ExecError, Executor, Job, JobContext, JobId, JobMeta, JobPicker, JobResult, JobSaver, Picked,
    ReleaseReason, Runtime,
};

/// Which promise a check covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Check {
    /// Every job is handed out exactly once.
    EachJobOnce,
    /// A released job is handed out again.
    ReleaseHandsBack,
    /// `pick_many(max)` returns between 1 and `max` jobs.
    PickManyBound,
    /// Concurrent picks hand out different jobs.
    ConcurrentPicksDisjoint,
    /// A pick dropped before completing claims nothing.
    DroppedPickClaimsNothing,
    /// Every result is stored exactly once.
    StoresEachResult,
    /// Saving the same result again succeeds and stores nothing new.
    IdempotentSave,
    /// Concurrent saves all land.
    ConcurrentSaves,
    /// The same input gives the same result.
    Deterministic,
    /// Concurrent executions give the sequential results.
    ConcurrentMatchesSequential,
    /// Executing does not panic.
    NoPanics,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EachJobOnce => "each job is handed out once",
            Self::ReleaseHandsBack => "a released job is handed out again",
            Self::PickManyBound => "pick_many returns 1..=max jobs",
            Self::ConcurrentPicksDisjoint => "concurrent picks are disjoint",
            Self::DroppedPickClaimsNothing => "a dropped pick claims nothing",
            Self::StoresEachResult => "every result is stored once",
            Self::IdempotentSave => "a repeated save is idempotent",
            Self::ConcurrentSaves => "concurrent saves all land",
            Self::Deterministic => "the same input gives the same result",
            Self::ConcurrentMatchesSequential => "concurrent execution matches sequential",
            Self::NoPanics => "executing does not panic",
        })
    }
}

/// One failed check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Failure {
    /// The check.
    pub check: Check,
    /// What went wrong, for people.
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.check, self.detail)
    }
}

/// Checks that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConformanceReport {
    /// `"picker"`, `"saver"` or `"executor"`.
    pub component: &'static str,
    /// The checks run, all passed.
    pub passed: Vec<Check>,
}

/// Checks that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{component} conformance: {} check(s) failed: {}", failures.len(), failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
#[non_exhaustive]
pub struct ConformanceError {
    /// `"picker"`, `"saver"` or `"executor"`.
    pub component: &'static str,
    /// What failed.
    pub failures: Vec<Failure>,
    /// What passed.
    pub passed: Vec<Check>,
}

impl ConformanceError {
    /// Whether `check` failed.
    pub fn failed(&self, check: Check) -> bool {
        self.failures.iter().any(|f| f.check == check)
    }
}

struct Tally {
    component: &'static str,
    passed: Vec<Check>,
    failures: Vec<Failure>,
}

impl Tally {
    fn new(component: &'static str) -> Self {
        Self {
            component,
            passed: Vec::new(),
            failures: Vec::new(),
        }
    }

    fn record(&mut self, check: Check, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => self.passed.push(check),
            Err(detail) => self.failures.push(Failure { check, detail }),
        }
    }

    fn finish(self) -> Result<ConformanceReport, ConformanceError> {
        if self.failures.is_empty() {
            Ok(ConformanceReport {
                component: self.component,
                passed: self.passed,
            })
        } else {
            Err(ConformanceError {
                component: self.component,
                failures: self.failures,
                passed: self.passed,
            })
        }
    }
}

/// Options of [`check_picker_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PickerOptions {
    /// Jobs in the source of each check (at least 4).
    pub jobs: u64,
    /// How long to wait before draining after a dropped pick: for pickers
    /// whose claims are leases that must expire first. Default zero.
    pub settle: Duration,
    /// Consecutive [`Picked::Empty`] answers after which a source counts as
    /// drained (with a 1 ms sleep between). Default 3.
    pub empty_polls: u32,
    /// When to drop the pick of the dropped-pick check, if it has not
    /// returned: the dangerous moment is after the claim was sent and before
    /// the reply came back, so set it to about half the picker's round trip.
    /// Zero (the default) drops after the first poll.
    pub drop_after: Duration,
}

impl Default for PickerOptions {
    fn default() -> Self {
        Self {
            jobs: 16,
            settle: Duration::ZERO,
            empty_polls: 3,
            drop_after: Duration::ZERO,
        }
    }
}

impl PickerOptions {
    /// Sets [`jobs`](Self::jobs).
    pub fn jobs(mut self, jobs: u64) -> Self {
        self.jobs = jobs.max(4);
        self
    }

    /// Sets [`settle`](Self::settle).
    pub fn settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    /// Sets [`drop_after`](Self::drop_after).
    pub fn drop_after(mut self, drop_after: Duration) -> Self {
        self.drop_after = drop_after;
        self
    }
}

/// Checks a picker with default [`PickerOptions`]. `make(n)` must build a
/// fresh picker whose source holds exactly `n` jobs with distinct ids, and
/// that reports [`Picked::Exhausted`] or [`Picked::Empty`] once they are all
/// handed out.
pub async fn check_picker<R, P, F>(
    runtime: &R,
    make: F,
) -> Result<ConformanceReport, ConformanceError>
where
    R: Runtime,
    P: JobPicker,
    F: AsyncFnMut(u64) -> P,
{
    check_picker_with(runtime, PickerOptions::default(), make).await
}

/// Drains `picker`: the ids handed out, in order, or an error message.
async fn drain<R: Runtime, P: JobPicker>(
    runtime: &R,
    picker: &P,
    options: &PickerOptions,
    batch: Option<usize>,
) -> Result<Vec<(JobId, u32)>, String> {
    let mut out = Vec::new();
    let mut empties = 0;
    let limit = options.jobs * 8 + 64;
    for _ in 0..limit {
        let picked = match batch {
            None => picker.pick().await.map(|p| p.map(|job| vec![job])),
            Some(max) => picker.pick_many(max).await,
        };
        match picked {
            Ok(Picked::Some(jobs)) => {
                empties = 0;
                if let Some(max) = batch
                    && (jobs.is_empty() || jobs.len() > max)
                {
                    return Err(format!("pick_many({max}) returned {} jobs", jobs.len()));
                }
                out.extend(jobs.iter().map(|j| (j.meta.job_id(), j.meta.attempt())));
            }
            Ok(Picked::Exhausted) => return Ok(out),
            Ok(Picked::Empty) => {
                empties += 1;
                if empties >= options.empty_polls {
                    return Ok(out);
                }
                runtime.sleep(Duration::from_millis(1)).await;
            }
            Err(error) => return Err(format!("pick failed: {error}")),
        }
    }
    Err(format!("still handing out jobs after {limit} picks"))
}

fn each_once(ids: &[(JobId, u32)], expected: u64) -> Result<(), String> {
    let mut seen = HashSet::new();
    let mut twice: Vec<JobId> = ids
        .iter()
        .filter(|(id, _)| !seen.insert(*id))
        .map(|(id, _)| *id)
        .collect();
    twice.sort_unstable();
    twice.dedup();
    if !twice.is_empty() {
        return Err(format!("handed out more than once: {twice:?}"));
    }
    if seen.len() as u64 != expected {
        return Err(format!(
            "handed out {} distinct job(s) of {expected}",
            seen.len()
        ));
    }
    Ok(())
}

/// Checks a picker; see [`check_picker`].
pub async fn check_picker_with<R, P, F>(
    runtime: &R,
    options: PickerOptions,
    mut make: F,
) -> Result<ConformanceReport, ConformanceError>
where
    R: Runtime,
    P: JobPicker,
    F: AsyncFnMut(u64) -> P,
{
    let n = options.jobs.max(4);
    let mut tally = Tally::new("picker");

    let picker = make(n).await;
    let outcome = match drain(runtime, &picker, &options, None).await {
        Ok(ids) => each_once(&ids, n),
        Err(e) => Err(e),
    };
    tally.record(Check::EachJobOnce, outcome);

    let picker = make(n).await;
    let outcome = async {
        let first = match picker.pick().await {
            Ok(Picked::Some(job)) => job,
            Ok(_) => return Err("the first pick found no job".to_owned()),
            Err(e) => return Err(format!("pick failed: {e}")),
        };
        let (id, attempt) = (first.meta.job_id(), first.meta.attempt());
        picker
            .release(first.meta, ReleaseReason::Abandon)
            .await
            .map_err(|e| format!("release failed: {e}"))?;
        runtime.sleep(options.settle).await;
        let rest = drain(runtime, &picker, &options, None).await?;
        each_once(&rest, n)?;
        match rest.iter().find(|(j, _)| *j == id) {
            Some((_, again)) if *again < attempt => Err(format!(
                "job {id} came back with attempt {again}, below its first attempt {attempt}"
            )),
            Some(_) => Ok(()),
            None => Err(format!("released job {id} never came back")),
        }
    }
    .await;
    tally.record(Check::ReleaseHandsBack, outcome);

    let picker = make(n).await;
    let outcome = match drain(runtime, &picker, &options, Some(3)).await {
        Ok(ids) => each_once(&ids, n),
        Err(e) => Err(e),
    };
    tally.record(Check::PickManyBound, outcome);

    let picker = make(n).await;
    let outcome = async {
        let mut ids = Vec::new();
        for _ in 0..2 {
            let picks = join_all((0..n / 2).map(|_| picker.pick())).await;
            for picked in picks {
                match picked {
                    Ok(Picked::Some(job)) => ids.push((job.meta.job_id(), job.meta.attempt())),
                    Ok(_) => {}
                    Err(e) => return Err(format!("pick failed: {e}")),
                }
            }
        }
        ids.extend(drain(runtime, &picker, &options, None).await?);
        each_once(&ids, n)
    }
    .await;
    tally.record(Check::ConcurrentPicksDisjoint, outcome);

    let picker = make(n).await;
    let outcome = async {
        let mut ids = Vec::new();
        // Drop the pick if it is still pending at `drop_after` (or after its
        // first poll): a completed pick keeps its job, a dropped one must have
        // claimed nothing or let its claim come back.
        let picked = if options.drop_after.is_zero() {
            picker.pick().now_or_never()
        } else {
            tokio::select! {
                biased;
                picked = picker.pick() => Some(picked),
                () = runtime.sleep(options.drop_after) => None,
            }
        };
        match picked {
            Some(Ok(Picked::Some(job))) => ids.push((job.meta.job_id(), job.meta.attempt())),
            Some(Err(e)) => return Err(format!("pick failed: {e}")),
            Some(Ok(_)) | None => {}
        }
        runtime.sleep(options.settle).await;
        ids.extend(drain(runtime, &picker, &options, None).await?);
        each_once(&ids, n)
    }
    .await;
    tally.record(Check::DroppedPickClaimsNothing, outcome);

    tally.finish()
}

/// Checks a saver.
///
/// * `make()` builds a fresh saver over an empty store;
/// * `job(n)` gives job `n`'s metadata (distinct ids for distinct `n`) and an
///   output for it; the suite also saves failures (panics, timeouts);
/// * `stored(&saver, id)` reads the store: how many results it holds for the
///   job (1 for a correct saver after any number of saves).
pub async fn check_saver<R, S, F, J, C>(
    runtime: &R,
    mut make: F,
    job: J,
    stored: C,
) -> Result<ConformanceReport, ConformanceError>
where
    R: Runtime,
    S: JobSaver,
    F: AsyncFnMut() -> S,
    J: Fn(u64) -> (S::Metadata, S::Output),
    C: AsyncFn(&S, JobId) -> usize,
{
    let _ = runtime;
    let mut tally = Tally::new("saver");
    let result = |n: u64, output: S::Output| -> JobResult<S::Output, S::Failure> {
        match n % 3 {
            0 => Ok(output),
            1 => Err(ExecError::Panicked {
                message: format!("conformance: job {n} panicked"),
            }),
            _ => Err(ExecError::TimedOut {
                after: Duration::from_secs(n),
            }),
        }
    };

    let saver = make().await;
    let outcome = async {
        for n in 0..9 {
            let (meta, output) = job(n);
            let id = meta.job_id();
            saver
                .save(&result(n, output), &meta)
                .await
                .map_err(|e| format!("saving job {id} failed: {e}"))?;
            let count = stored(&saver, id).await;
            if count != 1 {
                return Err(format!("job {id} stored {count} time(s) after one save"));
            }
        }
        Ok(())
    }
    .await;
    tally.record(Check::StoresEachResult, outcome);

    let saver = make().await;
    let outcome = async {
        for n in [100, 101] {
            let (meta, output) = job(n);
            let id = meta.job_id();
            let result = result(n, output);
            for attempt in 1..=2 {
                saver
                    .save(&result, &meta)
                    .await
                    .map_err(|e| format!("save {attempt} of job {id} failed: {e}"))?;
            }
            let count = stored(&saver, id).await;
            if count != 1 {
                return Err(format!("job {id} stored {count} time(s) after two saves"));
            }
        }
        Ok(())
    }
    .await;
    tally.record(Check::IdempotentSave, outcome);

    let saver = make().await;
    let outcome = async {
        let jobs: Vec<_> = (200..216).map(|n| (n, job(n))).collect();
        let results: Vec<_> = jobs
            .iter()
            .map(|(n, (meta, _))| (meta.clone(), *n))
            .collect();
        let saves = jobs.into_iter().map(|(n, (meta, output))| {
            let saver = &saver;
            let result = result(n, output);
            async move { saver.save(&result, &meta).await }
        });
        for (outcome, (meta, _)) in join_all(saves).await.into_iter().zip(&results) {
            outcome.map_err(|e| format!("saving job {} failed: {e}", meta.job_id()))?;
        }
        for (meta, _) in &results {
            let count = stored(&saver, meta.job_id()).await;
            if count != 1 {
                return Err(format!("job {} stored {count} time(s)", meta.job_id()));
            }
        }
        Ok(())
    }
    .await;
    tally.record(Check::ConcurrentSaves, outcome);

    tally.finish()
}

fn describe<O: fmt::Debug, E: fmt::Display>(result: &Result<O, E>) -> String {
    match result {
        Ok(output) => format!("Ok({output:?})"),
        Err(error) => format!("Err({error})"),
    }
}

/// Checks an executor on `jobs` (inputs with their metadata): each runs twice
/// in a row and once concurrently with the others, on `runtime`'s blocking
/// pool; every run must give the same result (outputs compared with `==`,
/// errors by message), and none may panic.
pub async fn check_executor<R, E, M>(
    runtime: &R,
    executor: E,
    jobs: Vec<Job<E::Input, M>>,
) -> Result<ConformanceReport, ConformanceError>
where
    R: Runtime,
    E: Executor,
    M: JobMeta,
    E::Input: Clone,
    E::Output: PartialEq + fmt::Debug,
{
    let executor = Arc::new(executor);
    let mut tally = Tally::new("executor");
    let run = |job: &Job<E::Input, M>| {
        let executor = Arc::clone(&executor);
        let input = job.input.clone();
        let context = JobContext::new(job.meta.job_id(), job.meta.attempt());
        let cost = executor.cost_hint(&input);
        runtime.spawn_blocking(cost, move || executor.execute(input, &context))
    };

    let mut first = Vec::new();
    let mut panics = Vec::new();
    let mut differ = Vec::new();
    for job in &jobs {
        let a = run(job).await;
        let b = run(job).await;
        match (a, b) {
            (Ok(a), Ok(b)) => {
                if describe(&a) != describe(&b) || a.as_ref().ok() != b.as_ref().ok() {
                    differ.push(format!(
                        "job {}: {} then {}",
                        job.meta.job_id(),
                        describe(&a),
                        describe(&b)
                    ));
                }
                first.push(Some(describe(&a)));
            }
            (Err(p), _) | (_, Err(p)) => {
                panics.push(format!("job {}: {}", job.meta.job_id(), p.message));
                first.push(None);
            }
        }
    }
    tally.record(
        Check::Deterministic,
        if differ.is_empty() {
            Ok(())
        } else {
            Err(differ.join("; "))
        },
    );

    let concurrent = join_all(jobs.iter().map(run)).await;
    let mut mismatches = Vec::new();
    for ((job, result), sequential) in jobs.iter().zip(concurrent).zip(&first) {
        match result {
            Ok(result) => {
                if let Some(sequential) = sequential
                    && describe(&result) != *sequential
                {
                    mismatches.push(format!(
                        "job {}: {} concurrently, {sequential} alone",
                        job.meta.job_id(),
                        describe(&result)
                    ));
                }
            }
            Err(p) => panics.push(format!("job {}: {}", job.meta.job_id(), p.message)),
        }
    }
    tally.record(
        Check::ConcurrentMatchesSequential,
        if mismatches.is_empty() {
            Ok(())
        } else {
            Err(mismatches.join("; "))
        },
    );
    panics.dedup();
    tally.record(
        Check::NoPanics,
        if panics.is_empty() {
            Ok(())
        } else {
            Err(format!("panicked: {}", panics.join("; ")))
        },
    );
    tally.finish()
}
