//! The reference prover component of prover-job-processor, as a library.
//!
//! Two stages chained by a stage channel: a witness generator (CPU) expands
//! each job's seed into a batch of Goldilocks polynomials; a circuit prover
//! runs the NTT on them (GPU when present, else CPU); the sink records a
//! digest of every result and checks a sample with the inverse NTT. Proof
//! trees close each batch with an aggregation over its proofs.
//!
//! The `pjp-prover` binary is a command line over this library; a program
//! can run the same component from a [`RunConfig`]:
//!
//! ```no_run
//! use pjp_core::Shutdown;
//! use pjp_prover::{Component, Pipeline, RunConfig};
//!
//! # async fn run() -> anyhow::Result<()> {
//! let mut config = RunConfig::default();
//! config.jobs = 100;
//! config.circuits = 0; // flat jobs, no aggregation
//! let component = Component::new(config).await?;
//! let stages = Pipeline::build(&component)?.run(Shutdown::new()).await;
//! println!("{} jobs saved", component.tally.counts().succeeded);
//! # drop(stages);
//! # Ok(())
//! # }
//! ```
//!
//! Modules, from the payload up:
//!
//! * [`job`]: what flows through: a job's payload, witness, proof;
//! * [`witness`] and [`circuit`]: the two stages' executors;
//! * [`store`] and [`sink`]: where results go (in memory, or PostgreSQL);
//! * [`aggregate`]: the proof tree's aggregation jobs and their runners;
//! * [`config`]: what a run is told;
//! * [`pipeline`]: the component wired and run.

#![forbid(unsafe_code)]

pub mod aggregate;
pub mod circuit;
pub mod config;
pub mod job;
pub mod pipeline;
pub mod sink;
pub mod store;
pub mod witness;

pub use config::{ConfigError, FleetConfig, RunConfig};
pub use pipeline::{Component, Pipeline, SetupError, Source};

/// This crate's README (the summary, the CLI, the library), its Rust
/// examples compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}
