//! # pjp-testkit
//!
//! Test tools for prover-job-processor components, on any
//! [`Runtime`](pjp_core::Runtime) (tokio in your tests, `pjp-runtime-sim` in
//! simulation):
//!
//! * [`MemoryQueue`]: an in-memory job queue whose picker and saver halves
//!   plug into a [`JobRunner`](pjp_core::JobRunner), optionally with leases
//!   and fencing like a durable queue (it lives in `pjp_core::memory`, where
//!   production code can use it too; re-exported here);
//! * [`Ledger`]: records every pick, execution, save and release and checks
//!   the runner's contract (nothing lost, nothing saved twice, nothing saved
//!   that was not picked, drains complete, released jobs never executed);
//! * decorators for *any* picker, saver or executor, built through
//!   [`PickerExt`], [`SaverExt`] and [`ExecutorExt`]: a ledger
//!   ([`Recorded`]), modeled round trips ([`Latent`] with a
//!   [`LatencyProfile`]) and injected faults ([`Faulty`], [`FaultyExecutor`]);
//! * [`Workload`]: an executor of known (modeled) cost;
//! * [`LatencyProxy`]: a real TCP proxy with a one-way delay that can cut its
//!   connections, to put a slow or flaky link between a worker and its
//!   database (tokio only);
//! * [`props`]: ready-made property checks of cancellation and drain, with
//!   proptest [`strategy`]s for runner configurations, fault plans and
//!   cancellations;
//! * [`conformance`]: a suite you run against your own picker, saver and
//!   executor;
//! * [`broken`]: deliberately broken components, to see the checks fire;
//! * [`wait`]: the tests' one polling helper: [`wait::eventually`],
//!   [`wait::within`] and friends, each with a hang guard;
//! * `postgres` (feature `postgres`): `TestSchema`, a fresh PostgreSQL schema
//!   per test, dropped when the test ends; `pooler::PgBouncer`, a PgBouncer
//!   in transaction-pooling mode in front of the test server.
//!
//! ```
//! use std::time::Duration;
//! use pjp_core::{JobRunner, Shutdown};
//! use pjp_testkit::{
//!     ExecutorExt, IoFaults, LatencyProfile, Ledger, MemoryQueue, PickerExt, SaverExt, Workload,
//! };
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> anyhow::Result<()> {
//! let runtime = pjp_runtime_tokio::TokioRuntime::current();
//! let ledger = Ledger::timed(&runtime);
//! let queue: MemoryQueue<u64, u64, String> = MemoryQueue::closed_with(0..50);
//! let picker = queue
//!     .picker()
//!     .with_ledger(&ledger)
//!     .with_faults(&runtime, IoFaults::none().error_rate(0.2))
//!     .with_latency(&runtime, LatencyProfile::fixed(Duration::from_micros(200)));
//! let saver = queue.saver().with_ledger(&ledger);
//! let runner = JobRunner::builder(picker, Workload::noop().with_ledger(&ledger), saver)
//!     .workers(2)
//!     .pickers(2)
//!     .pick_error_backoff(pjp_core::BackoffPolicy::new(Duration::from_millis(1), Duration::from_millis(5)))
//!     .build()?;
//! let report = runner.run(&runtime, Shutdown::new()).await?;
//! assert_eq!(report.counts.succeeded, 50);
//! ledger.check_all_saved((0..50).map(pjp_core::JobId::new))?;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings), allow(dead_code))))]

pub mod broken;
pub mod conformance;
pub mod durable;
mod ext;
mod fault;
mod ledger;
mod plan;
#[cfg(feature = "postgres")]
pub mod pooler;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod props;
mod proxy;
#[cfg(feature = "proptest")]
pub mod strategy;
pub mod wait;
mod workload;

pub use ext::{ExecutorExt, PickerExt, SaverExt};
pub use fault::{ExecFault, ExecFaults, FaultError, Faulty, FaultyExecutor, IoFaults, Outage};
pub use ledger::{Event, EventKind, Ledger, LedgerError, LedgerSummary, Recorded, Violation};
pub use pjp_core::latency::{LatencyProfile, Latent, ParseLatencyError, parse_duration};
pub use pjp_core::memory::{MemoryQueue, QueueError, QueueMeta, QueuePicker, QueueSaver, SavedJob};
pub use plan::{CancelPlan, ExecPlan, RunPlan, RunnerPlan};
pub use proxy::LatencyProxy;
pub use workload::Workload;

/// Installs (once per process) a panic hook that stays silent for the panics
/// [`FaultyExecutor`] injects, and reports every other panic as before.
/// Keeps the output of fault-injecting test suites readable.
pub fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !pjp_core::panic_message(info.payload()).starts_with(INJECTED_PANIC) {
                previous(info);
            }
        }));
    });
}

/// How the panics [`FaultyExecutor`] injects begin.
pub const INJECTED_PANIC: &str = "injected panic";
