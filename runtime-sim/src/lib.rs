//! # pjp-runtime-sim
//!
//! Deterministic simulation of prover-job-processor components on
//! [madsim](https://docs.rs/madsim): the *same* picker, executor and saver
//! code that runs on `pjp-runtime-tokio` in production runs here under
//! injected latency and failures, reproducibly from a seed.
//!
//! * [`SimRuntime`]: the [`Runtime`](pjp_core::Runtime) on madsim — virtual
//!   time, seeded randomness, spawned tasks whose panics become errors, and
//!   blocking work modeled as "take one of N cores, sleep the modeled cost
//!   (with seeded jitter), run the closure inline".
//! * [`simulate`]: runs one simulation on a fresh thread and, if it fails,
//!   prints how to replay it (`MADSIM_TEST_SEED=…`); [`check_determinism`]
//!   runs a seed twice and compares.
//! * [`Scenario`]: jobs, executor cost, latency profile, faults, cancellation,
//!   node crash and restart, and runner configuration in; a
//!   [`ScenarioReport`] out (throughput, utilisation, p50/p99 job latency,
//!   counts, lost and duplicated jobs, and a trace digest that the same seed
//!   reproduces).
//! * Re-exported from `pjp-testkit`: latency profiles and fault plans, which
//!   wrap any picker or saver (`picker.with_latency(&runtime, profile)`).
//!
//! This crate compiles to nothing unless built with `RUSTFLAGS="--cfg madsim"`
//! (in its own target directory): run `cargo xtask test` for its test suite
//! and `cargo xtask sim --help` for the command line.
//!
//! ```
//! # #[cfg(madsim)]
//! # fn main() {
//! use std::time::Duration;
//! use pjp_runtime_sim::{LatencyProfile, Scenario, SimConfig, simulate};
//!
//! let scenario = Scenario::new("cross-cloud")
//!     .jobs(200)
//!     .workers(4)
//!     .exec_cost(Duration::from_millis(20))
//!     .latency(LatencyProfile::fixed(Duration::from_millis(100)));
//! let report = simulate(7, SimConfig::default(), move || async move { scenario.run().await });
//! let report = report.expect("valid scenario");
//! assert_eq!((report.saved, report.lost, report.duplicated), (200, 0, 0));
//! assert!(report.efficiency().unwrap_or(0.0) > 0.8);
//! # }
//! # #[cfg(not(madsim))]
//! # fn main() {}
//! ```

#![forbid(unsafe_code)]
// Without `--cfg madsim` the items these docs link to are compiled out.
#![cfg_attr(not(madsim), allow(rustdoc::broken_intra_doc_links))]
#![doc(test(attr(deny(warnings), allow(dead_code))))]
#![cfg_attr(
    not(madsim),
    doc = "\n**This build was made without `--cfg madsim`: the crate is empty.**"
)]

#[cfg(madsim)]
mod fleet;
#[cfg(madsim)]
mod runtime;
#[cfg(madsim)]
mod scenario;
#[cfg(madsim)]
mod simulate;

#[cfg(madsim)]
pub use fleet::{
    Fleet, FleetEvent, FleetReport, HeartbeatDelay, Liveness, Marker, NodeSpans, NodeSpec,
    QueueCalls, Region,
};
#[cfg(madsim)]
pub use runtime::{NotInSimulation, SimRuntime, SimRuntimeBuilder};
#[cfg(madsim)]
pub use scenario::{Crash, Mode, Scenario, ScenarioError, ScenarioReport};
#[cfg(madsim)]
pub use simulate::{SimConfig, SimFailure, check_determinism, seeds, simulate, try_simulate};

#[cfg(madsim)]
pub use pjp_testkit::{CancelPlan, ExecFaults, IoFaults, LatencyProfile, Outage, RunnerPlan};
