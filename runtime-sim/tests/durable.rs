//! The durable-queue contract against the in-memory model under madsim: the
//! model runs on the simulated clock, time passes by sleeping (exact, no wall
//! time), and every case passes as on tokio and as on PostgreSQL.

#![cfg(madsim)]

use pjp_runtime_sim::{SimConfig, SimRuntime, simulate};
use pjp_testkit::durable::{Case, ModelQueue, check_durable_queue};

#[test]
fn the_model_passes_the_durable_queue_contract_under_simulation() {
    let passed = simulate(7, SimConfig::default(), || async {
        let runtime = SimRuntime::current().unwrap_or_else(|e| panic!("{e}"));
        check_durable_queue(async || ModelQueue::on_runtime(&runtime))
            .await
            .map(|report| report.passed)
            .unwrap_or_else(|e| panic!("{e}"))
    });
    assert_eq!(passed, Case::ALL.to_vec());
}
