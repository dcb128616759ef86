//! # pjp-core
//!
//! The core of **prover-job-processor**: the three traits a component author
//! implements — [`JobPicker`], [`Executor`] (or [`AsyncExecutor`]) and
//! [`JobSaver`] — their closure forms ([`executor_fn`], [`async_executor_fn`],
//! [`saver_fn`]), and the [`JobRunner`] that runs them as a pipeline: picking,
//! executing and saving at once, so that database round trips hide behind
//! execution.
//!
//! ## A component in a few lines
//!
//! ```
//! use pjp_core::{JobRunner, Shutdown, executor_fn, memory::MemoryQueue};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> anyhow::Result<()> {
//! let queue = MemoryQueue::closed_with(1..=100u64);
//! let square = executor_fn(|n: u64| n.checked_mul(n).ok_or("overflow"));
//! let runner = JobRunner::builder(queue.picker(), square, queue.saver()).build()?;
//! let report = runner.run(&pjp_runtime_tokio::TokioRuntime::current(), Shutdown::new()).await?;
//! assert_eq!(report.counts.succeeded, 100);
//! # Ok(())
//! # }
//! ```
//!
//! The runner is generic over a [`Runtime`] (spawn, blocking work, sleep, clock,
//! random numbers): `pjp-runtime-tokio` runs components in production,
//! `pjp-runtime-sim` runs the same code under deterministic simulation. This
//! crate calls no `tokio::spawn` and no `tokio::time`.
//!
//! ## A component in full
//!
//! ```
//! use std::collections::VecDeque;
//! use std::sync::Mutex;
//! use pjp_core::{
//!     Executor, Job, JobContext, JobId, JobPicker, JobResult, JobRunner, JobSaver, Picked,
//!     ReleaseReason, Shutdown,
//! };
//!
//! // Where jobs come from.
//! struct Queue(Mutex<VecDeque<u64>>);
//!
//! impl JobPicker for Queue {
//!     type Input = u64;
//!     type Metadata = JobId;
//!     type Error = std::io::Error;
//!
//!     async fn pick(&self) -> Result<Picked<Job<u64, JobId>>, Self::Error> {
//!         Ok(match self.0.lock().unwrap().pop_front() {
//!             Some(n) => Picked::Some(Job::new(n, JobId::new(n))),
//!             None => Picked::Exhausted,
//!         })
//!     }
//!
//!     async fn release(&self, meta: JobId, _reason: ReleaseReason) -> Result<(), Self::Error> {
//!         self.0.lock().unwrap().push_back(meta.get());
//!         Ok(())
//!     }
//! }
//!
//! // The heavy payload: runs on blocking workers.
//! struct Square;
//!
//! impl Executor for Square {
//!     type Input = u64;
//!     type Output = u64;
//!     type Error = String;
//!
//!     fn execute(&self, n: u64, _job: &JobContext) -> Result<u64, String> {
//!         n.checked_mul(n).ok_or_else(|| format!("{n} squared overflows"))
//!     }
//! }
//!
//! // Where results go.
//! #[derive(Default)]
//! struct Results(Mutex<Vec<(JobId, Option<u64>)>>);
//!
//! impl JobSaver for Results {
//!     type Output = u64;
//!     type Failure = String;
//!     type Metadata = JobId;
//!     type Error = std::io::Error;
//!
//!     async fn save(&self, result: &JobResult<u64, String>, meta: &JobId) -> Result<(), Self::Error> {
//!         self.0.lock().unwrap().push((*meta, result.as_ref().ok().copied()));
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> anyhow::Result<()> {
//! let runner = JobRunner::builder(Queue(Mutex::new((1..=100).collect())), Square, Results::default())
//!     .stage("square")
//!     .workers(2)
//!     .prefetch(4)
//!     .build()?;
//! let runtime = pjp_runtime_tokio::TokioRuntime::current();
//! let report = runner.run(&runtime, Shutdown::new()).await?;
//! assert_eq!(report.counts.succeeded, 100);
//! assert_eq!(runner.saver().0.lock().unwrap().len(), 100);
//! # Ok(())
//! # }
//! ```
//!
//! ## The contract
//!
//! * **Nothing is lost.** Every picked job ends saved (with its output or its
//!   failure) or released back to the picker; a [`RunReport`] accounts for each.
//! * **Executor errors and panics are results**, saved as [`ExecError`]s; the
//!   runner keeps running.
//! * **Transient I/O errors are retried** with capped, jittered exponential
//!   [`Backoff`], by [`ErrorClass`]. A save gives up only after its
//!   [`RetryPolicy`] (by default at least a minute); the runner then releases
//!   the job, lists it in [`RunReport::save_gave_up`] and goes on. Only a run
//!   of such jobs in a row ends the run, with [`RunErrorKind::SinkGone`].
//! * **Cancellation drains** ([`Shutdown`]): picking stops at once, a pick in
//!   flight finishes, picked jobs are executed and saved. A second signal or the grace period abandons:
//!   unstarted jobs are released and listed in the report.
//! * **Bounded work in flight**: see [`RunnerConfig`] for the exact bound.
//! * **Latency hiding**: several picks (or batched picks) and several saves run
//!   at once.
//! * **Observability**: a tracing span per job (`job_id`, `stage`, `attempt`) and
//!   `pjp_*` metrics through the `metrics` facade.
//! * **Timelines**: an [`observe::RunObserver`] hears what each picker, worker
//!   and saver task did, and when (`pjp-timeline` draws it).
//!
//! Multi-stage components chain runners through a [`stage`] channel.

#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings), allow(dead_code))))]

pub mod autoscale;
mod backoff;
pub mod boxed;
mod cancel;
mod claim;
mod execution;
mod executor;
mod failure;
mod from_fn;
mod guard;
mod job;
mod job_options;
mod kind;
pub mod latency;
pub mod memory;
pub mod observe;
mod outcome;
mod picker;
pub mod runner;
mod runtime;
mod saver;
mod shutdown;
pub mod stage;

pub use backoff::{Backoff, BackoffPolicy, RetryPolicy, random_fraction};
pub use cancel::{JobCancels, JobContext};
pub use claim::{ClaimOrder, KindFilter};
pub use execution::{Async, Blocking, Execution};
pub use executor::{AsyncExecutor, Executor};
pub use failure::{ErrorClass, ReleaseReason};
pub use from_fn::{AsyncExecutorFn, ExecutorFn, SaverFn, async_executor_fn, executor_fn, saver_fn};
pub use guard::panic_message;
pub use job::{Job, JobId, JobMeta};
pub use job_options::JobOptions;
pub use kind::JobKind;
pub use outcome::{ExecError, JobResult};
pub use picker::{JobPicker, PickManyResult, PickResult, Picked};
pub use runner::{
    ConfigError, Counts, JobRunner, LateResults, LatencySummary, Progress, ProgressSnapshot,
    RunError, RunErrorKind, RunReport, RunnerBuilder, RunnerConfig, Step, StopReason,
};
pub use runtime::{Runtime, TaskHandle, TaskPanicked};
pub use saver::{JobSaver, SaveBatch, SaveResults};
pub use shutdown::Shutdown;

/// The top-level README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
mod readme {}

/// This crate's README (the traits in full), compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod core_readme {}
