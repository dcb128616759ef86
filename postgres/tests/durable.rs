//! The durable-queue contract (pjp-testkit's suite, the same cases the
//! in-memory model passes) against the real queue on the local server.
//!
//! Time is moved by shifting the stored deadlines (`lease_expires_at`,
//! `run_after`) back, so no case waits on the clock. Background heartbeats
//! and rescues are set an hour apart: the suite drives them step by step.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::durable::PgUnderTest;
use pjp_testkit::durable::{Case, check_durable_queue};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_queue_passes_the_durable_queue_contract() {
    let report = check_durable_queue(async || PgUnderTest::new().await)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.passed, Case::ALL.to_vec());
}
