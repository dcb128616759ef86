//! Snapshots of seeded scenario reports: a change in the runner's behaviour
//! (its timing, its counts, its trace) shows up as a diff in review.
//!
//! After an intended change, review and accept the new reports with
//! `INSTA_UPDATE=always cargo xtask test` (or `cargo insta review`).

#![cfg(madsim)]

use std::time::Duration;

use pjp_runtime_sim::{
    CancelPlan, Crash, ExecFaults, IoFaults, LatencyProfile, Mode, Outage, Scenario,
};

const SEED: u64 = 42;

fn cross_cloud() -> Scenario {
    Scenario::new("cross-cloud, RTT 100 ms")
        .jobs(400)
        .workers(4)
        .exec_cost(Duration::from_millis(20))
        .latency(LatencyProfile::fixed(Duration::from_millis(100)))
}

fn snapshot(name: &str, scenario: Scenario) {
    pjp_testkit::quiet_injected_panics();
    let report = scenario
        .simulate(SEED)
        .unwrap_or_else(|e| panic!("seed {SEED}: {e}"));
    insta::assert_snapshot!(name, report.to_string());
}

#[test]
fn pipelined_cross_cloud() {
    snapshot("pipelined_cross_cloud", cross_cloud());
}

#[test]
fn sequential_cross_cloud() {
    snapshot(
        "sequential_cross_cloud",
        cross_cloud().jobs(100).mode(Mode::Sequential),
    );
}

#[test]
fn faults_under_cross_region_latency() {
    snapshot(
        "faults_cross_region",
        Scenario::new("faults, cross-region")
            .jobs(300)
            .workers(2)
            .exec_cost(Duration::from_millis(10))
            .latency(LatencyProfile::cross_region())
            .picker_faults(IoFaults::none().error_rate(0.05))
            .saver_faults(IoFaults::none().error_rate(0.05).outage(Outage::new(
                Duration::from_millis(600),
                Duration::from_millis(500),
            )))
            .exec_faults(
                ExecFaults::none()
                    .error_rate(0.03)
                    .panic_rate(0.03)
                    .stragglers(0.03, 10),
            ),
    );
}

#[test]
fn crash_and_restart() {
    snapshot(
        "crash_and_restart",
        cross_cloud().crash(Crash {
            at: Duration::from_millis(900),
            down_for: Duration::from_millis(1_500),
            lease: Duration::from_secs(3),
        }),
    );
}

#[test]
fn drain_then_abandon() {
    snapshot(
        "drain_then_abandon",
        cross_cloud().cancel(CancelPlan::DrainThenAbandon {
            drain_after: Duration::from_millis(800),
            abandon_after: Duration::from_millis(30),
        }),
    );
}
