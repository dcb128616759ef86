//! Shared pieces of the criterion benchmarks in `benches/`: the baselines the
//! runner is measured against, and components with modeled I/O latency.

#![forbid(unsafe_code)]

pub mod baseline;
pub mod components;
