//! The property suite under simulation: for each seed, a random runner
//! configuration, random faults (picker and saver errors and outages,
//! executor errors, panics and stragglers) and a cancellation or a node
//! crash at a random time; every promise must hold.
//!
//! Each test runs its default number of seeds from 0; `PJP_SIM_SEEDS=N` runs
//! N seeds instead, and `MADSIM_TEST_SEED=S` replays seed S alone. Every
//! failure prints its seed, its plan and the command that replays it.

#![cfg(madsim)]

use std::time::{Duration, Instant};

use pjp_runtime_sim::{Crash, Scenario, SimConfig, SimRuntime, seeds, try_simulate};
use pjp_testkit::strategy::{self, PlanSpace};
use pjp_testkit::{CancelPlan, ExecFaults, IoFaults, LatencyProfile, props};

/// Runs `check` for every seed, then reports: how many, how long, and every
/// failure with its replay command.
fn for_each_seed(
    test: &str,
    default_count: u64,
    mut check: impl FnMut(u64) -> Result<String, String>,
) {
    pjp_testkit::quiet_injected_panics();
    let seeds = seeds(default_count);
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut notes = Vec::new();
    for seed in seeds.clone() {
        match check(seed) {
            Ok(note) => notes.push(note),
            Err(failure) => failures.push(format!(
                "seed {seed}: {failure}\n  replay: MADSIM_TEST_SEED={seed} RUSTFLAGS=\"--cfg madsim\" \
                 CARGO_TARGET_DIR=target/madsim cargo test --release -p pjp-runtime-sim \
                 --test properties -- {test} --exact --nocapture"
            )),
        }
    }
    notes.sort();
    notes.dedup_by(|a, b| a == b);
    println!(
        "{test}: {} seed(s) {}..{} in {:.0} ms wall, {} failed",
        seeds.end - seeds.start,
        seeds.start,
        seeds.end,
        started.elapsed().as_secs_f64() * 1e3,
        failures.len(),
    );
    if seeds.end - seeds.start == 1 {
        for note in &notes {
            println!("  {note}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn random_faults_and_cancellations_keep_every_promise() {
    let space = strategy::run_plan(PlanSpace::simulated());
    let (mut stops, mut errors) = ([0u64; 3], 0u64);
    for_each_seed(
        "random_faults_and_cancellations_keep_every_promise",
        10_000,
        |seed| {
            let plan = strategy::sample(&space, seed);
            let run_plan = plan.clone();
            let outcome = try_simulate(seed, SimConfig::default(), move || async move {
                let runtime = SimRuntime::current().map_err(|e| e.to_string())?;
                props::check_run(&runtime, &run_plan)
                    .await
                    .map_err(|broken| broken.to_string())
            })
            .map_err(|failure| format!("{failure}\n  plan: {plan:?}"))?
            .map_err(|broken| format!("{broken}\n  plan: {plan:?}"))?;
            let stop = match outcome.report.stop {
                pjp_core::StopReason::Exhausted => 0,
                pjp_core::StopReason::Drained => 1,
                _ => 2,
            };
            stops[stop] += 1;
            errors += u64::from(outcome.error.is_some());
            Ok(format!("{plan:?}\n  {outcome}"))
        },
    );
    println!(
        "  runs: {} exhausted, {} drained, {} abandoned; {errors} ended with a run error",
        stops[0], stops[1], stops[2]
    );
}

#[test]
fn a_crash_at_any_time_loses_nothing() {
    // Crash time, downtime and error rate, drawn from the seed.
    let space = (0u64..3_000, 0u64..3_000, 0.0..0.2f64);
    for_each_seed("a_crash_at_any_time_loses_nothing", 300, |seed| {
        let (at, down, error_rate) = strategy::sample(&space, seed);
        let report = Scenario::new("crash anywhere")
            .jobs(150)
            .workers(3)
            .exec_cost(Duration::from_millis(15))
            .latency(LatencyProfile::cross_region())
            .picker_faults(IoFaults::none().error_rate(error_rate))
            .saver_faults(IoFaults::none().error_rate(error_rate))
            .exec_faults(ExecFaults::none().panic_rate(0.02).stragglers(0.02, 5))
            .crash(Crash {
                at: Duration::from_millis(at),
                down_for: Duration::from_millis(down),
                lease: Duration::from_secs(2),
            })
            .simulate(seed)
            .map_err(|e| e.to_string())?;
        if !report.is_clean() || report.saved != 150 {
            return Err(format!("\n{report}"));
        }
        Ok(report.summary_line())
    });
}

#[test]
fn a_drain_at_any_time_saves_every_picked_job() {
    let space = 0u64..4_000;
    for_each_seed("a_drain_at_any_time_saves_every_picked_job", 300, |seed| {
        let at = strategy::sample(&space, seed);
        let report = Scenario::new("drain anywhere")
            .jobs(300)
            .workers(2)
            .exec_cost(Duration::from_millis(10))
            .latency(LatencyProfile::cross_cloud())
            .cancel(CancelPlan::Drain {
                after: Duration::from_millis(at),
            })
            .simulate(seed)
            .map_err(|e| e.to_string())?;
        if !report.is_clean() || report.released != 0 || report.saved != report.picked {
            return Err(format!("\n{report}"));
        }
        Ok(report.summary_line())
    });
}
