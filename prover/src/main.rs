//! The reference prover (filled by a later issue).
#![forbid(unsafe_code)]
fn main() {}
