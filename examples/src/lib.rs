//! Runnable examples of prover-job-processor components: see the `*.rs`
//! files beside this folder, each run by `cargo xtask test`.
#![forbid(unsafe_code)]
