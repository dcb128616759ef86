//! Scenarios: latency hiding of the pipelined runner against a sequential
//! loop, database outages, executor panics and stragglers, and a crash with
//! restart — each keeping every promise.
//!
//! Figures here are virtual time, exact for a seed: asserting them is not a
//! timing test.

#![cfg(madsim)]

use std::time::Duration;

use pjp_runtime_sim::{
    Crash, ExecFaults, IoFaults, LatencyProfile, Mode, Outage, Scenario, ScenarioReport, seeds,
};

fn run(scenario: &Scenario, seed: u64) -> ScenarioReport {
    let report = scenario
        .simulate(seed)
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    println!("{}", report.summary_line());
    assert!(report.is_clean(), "seed {seed}:\n{report}");
    report
}

/// RTT 100 ms, execute 20 ms, 4 workers.
fn cross_cloud(mode: Mode) -> Scenario {
    Scenario::new("cross-cloud")
        .jobs(2_000)
        .workers(4)
        .exec_cost(Duration::from_millis(20))
        .latency(LatencyProfile::fixed(Duration::from_millis(100)))
        .mode(mode)
}

#[test]
fn the_pipelined_runner_hides_cross_cloud_latency_and_a_sequential_loop_does_not() {
    for seed in seeds(3) {
        let pipelined = run(&cross_cloud(Mode::Pipelined), seed);
        let sequential = run(&cross_cloud(Mode::Sequential), seed);
        let (p, s) = (
            pipelined.efficiency().unwrap_or(0.0),
            sequential.efficiency().unwrap_or(1.0),
        );
        assert!(
            p >= 0.95,
            "seed {seed}: pipelined at {:.1} %\n{pipelined}",
            p * 100.0
        );
        assert!(
            s < 0.10,
            "seed {seed}: sequential at {:.1} %\n{sequential}",
            s * 100.0
        );
        assert_eq!((pipelined.saved, sequential.saved), (2_000, 2_000));
    }
}

#[test]
fn latency_profiles_cost_what_they_say() {
    for (profile, low, high) in [
        (LatencyProfile::same_region(), 0.7, 1.3),
        (LatencyProfile::cross_region(), 30.0, 80.0),
        (LatencyProfile::cross_cloud(), 80.0, 200.0),
    ] {
        // One worker, one job at a time: a job's latency is exec + one save
        // round trip (the ledger times from the pick's reply to the save).
        let report = run(
            &Scenario::new("one by one")
                .jobs(200)
                .exec_cost(Duration::from_millis(1))
                .cost_jitter(0.0)
                .latency(profile.clone().with_spikes(0.0, Duration::ZERO))
                .mode(Mode::Sequential),
            1,
        );
        let p50 = report.p50.as_secs_f64() * 1e3 - 1.0;
        assert!(
            p50 > low && p50 < high,
            "{profile}: p50 save round trip {p50} ms"
        );
    }
}

#[test]
fn a_database_outage_delays_but_loses_nothing() {
    for seed in seeds(5) {
        let report = run(
            &Scenario::new("outage")
                .jobs(500)
                .workers(4)
                .exec_cost(Duration::from_millis(10))
                .latency(LatencyProfile::cross_region())
                // Unreachable from 1 s to 3 s, for picks and saves alike.
                .picker_faults(
                    IoFaults::none()
                        .outage(Outage::new(Duration::from_secs(1), Duration::from_secs(2))),
                )
                .saver_faults(
                    IoFaults::none()
                        .error_rate(0.05)
                        .outage(Outage::new(Duration::from_secs(1), Duration::from_secs(2))),
                ),
            seed,
        );
        assert_eq!((report.saved, report.failed), (500, 0));
        assert!(report.elapsed > Duration::from_secs(3));
    }
}

#[test]
fn executor_panics_and_stragglers_are_saved_and_survived() {
    pjp_testkit::quiet_injected_panics();
    for seed in seeds(5) {
        let report = run(
            &Scenario::new("panics and stragglers")
                .jobs(1_000)
                .workers(4)
                .exec_cost(Duration::from_millis(5))
                .latency(LatencyProfile::same_region())
                .exec_faults(
                    ExecFaults::none()
                        .panic_rate(0.05)
                        .error_rate(0.05)
                        .stragglers(0.02, 50),
                ),
            seed,
        );
        assert_eq!(report.saved, 1_000);
        // About 10 % failed; the runner kept going.
        assert!(report.failed > 50 && report.failed < 160, "{report}");
        assert!(
            report.p99 > Duration::from_millis(100),
            "stragglers show in p99: {report}"
        );
    }
}

#[test]
fn a_crashed_worker_restarts_and_its_leases_come_back() {
    for seed in seeds(5) {
        let report = run(
            &Scenario::new("crash")
                .jobs(600)
                .workers(4)
                .exec_cost(Duration::from_millis(20))
                .latency(LatencyProfile::cross_cloud())
                .crash(Crash {
                    at: Duration::from_millis(1_200),
                    down_for: Duration::from_secs(1),
                    lease: Duration::from_secs(3),
                }),
            seed,
        );
        assert_eq!(report.crashes, 1);
        assert_eq!(report.saved, 600);
        // The jobs the dead node held were handed out again.
        assert!(report.reclaimed > 0, "{report}");
        assert_eq!(report.picked, 600 + report.reclaimed);
    }
}

#[test]
fn an_abandon_waits_for_releases_still_on_their_way() {
    // Regression: the run used to end as soon as its tasks did, dropping a
    // release that was still waiting on its round trip: the job stayed
    // claimed at the source, neither saved nor released.
    for seed in seeds(20) {
        let report = run(
            &Scenario::new("slow releases")
                .jobs(400)
                .workers(2)
                .exec_cost(Duration::from_millis(5))
                .latency(LatencyProfile::uniform(
                    Duration::from_millis(20),
                    Duration::from_millis(120),
                ))
                .runner(pjp_testkit::RunnerPlan {
                    prefetch: 24,
                    pickers: 3,
                    pick_batch: 8,
                    save_queue: 4,
                    savers: 4,
                    ..pjp_testkit::RunnerPlan::default()
                })
                .cancel(pjp_testkit::CancelPlan::Abandon {
                    after: Duration::from_millis(300 + seed * 7),
                }),
            seed,
        );
        assert!(report.released > 0, "{report}");
        assert_eq!(report.saved + report.released, report.picked, "{report}");
    }
}
