//! The same seed gives the same trace digest; different seeds explore
//! different traces.

#![cfg(madsim)]

use std::time::Duration;

use pjp_runtime_sim::{
    CancelPlan, Crash, ExecFaults, IoFaults, LatencyProfile, Mode, Outage, Scenario, SimConfig,
    check_determinism, seeds,
};

fn scenarios() -> Vec<Scenario> {
    let base = || {
        Scenario::new("determinism")
            .jobs(200)
            .workers(3)
            .exec_cost(Duration::from_millis(12))
            .latency(LatencyProfile::cross_cloud())
    };
    vec![
        base(),
        base().mode(Mode::Sequential),
        base()
            .picker_faults(IoFaults::none().error_rate(0.1))
            .saver_faults(IoFaults::none().error_rate(0.1).outage(Outage::new(
                Duration::from_millis(300),
                Duration::from_millis(400),
            )))
            .exec_faults(
                ExecFaults::none()
                    .error_rate(0.05)
                    .panic_rate(0.05)
                    .stragglers(0.05, 8),
            ),
        base().cancel(CancelPlan::DrainThenAbandon {
            drain_after: Duration::from_millis(400),
            abandon_after: Duration::from_millis(3),
        }),
        base().crash(Crash {
            at: Duration::from_millis(500),
            down_for: Duration::from_millis(700),
            lease: Duration::from_secs(2),
        }),
    ]
}

#[test]
fn check_determinism_of_every_kind_of_scenario() {
    pjp_testkit::quiet_injected_panics();
    for seed in seeds(5) {
        for scenario in scenarios() {
            let report = check_determinism(seed, SimConfig::default(), move || {
                let scenario = scenario.clone();
                async move {
                    let report = scenario.run().await.unwrap_or_else(|e| panic!("{e}"));
                    // The whole report, digest included, minus wall time.
                    report.to_string()
                }
            });
            println!("seed {seed}: {}", report.lines().last().unwrap_or_default());
            assert!(report.contains("invariants   hold"), "{report}");
        }
    }
}

#[test]
fn different_seeds_explore_different_traces() {
    let scenario = scenarios().remove(2);
    let digests: std::collections::BTreeSet<u64> = (0..20)
        .map(|seed| {
            scenario
                .simulate(seed)
                .unwrap_or_else(|e| panic!("seed {seed}: {e}"))
                .digest
        })
        .collect();
    assert_eq!(digests.len(), 20);
}
