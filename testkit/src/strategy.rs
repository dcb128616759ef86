//! [proptest](https://docs.rs/proptest) strategies for runner configurations, fault plans and
//! cancellations, and [`sample`] to draw one value from a seed (for seeded
//! simulation suites).
//!
//! ```
//! use pjp_testkit::strategy::{self, PlanSpace};
//!
//! let plan = strategy::sample(&strategy::run_plan(PlanSpace::simulated()), 42);
//! assert_eq!(plan, strategy::sample(&strategy::run_plan(PlanSpace::simulated()), 42));
//! assert!(plan.runner.pick_batch <= plan.runner.prefetch);
//! ```

use std::ops::RangeInclusive;
use std::time::Duration;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::{
    CancelPlan, ExecFaults, ExecPlan, IoFaults, LatencyProfile, Outage, RunPlan, RunnerPlan,
};

/// The bounds of generated [`RunPlan`]s.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSpace {
    /// Jobs per run.
    pub jobs: RangeInclusive<u64>,
    /// The largest modeled cost of a job.
    pub max_cost: Duration,
    /// Whether workers sleep the cost for real.
    pub sleep: bool,
    /// Cancellations, outages and timeouts fall within this time from the
    /// start.
    pub horizon: Duration,
    /// The largest injected error rate (picks and saves).
    pub max_error_rate: f64,
    /// The longest round trip (before spikes) of picks, releases and saves.
    pub max_latency: Duration,
}

impl PlanSpace {
    /// For simulated runs: up to 200 jobs of up to 50 ms modeled cost, round
    /// trips up to 100 ms, events within 2 s of virtual time.
    pub fn simulated() -> Self {
        Self {
            jobs: 0..=200,
            max_cost: Duration::from_millis(50),
            sleep: false,
            horizon: Duration::from_secs(2),
            max_error_rate: 0.2,
            max_latency: Duration::from_millis(100),
        }
    }

    /// For real runtimes: up to 60 jobs sleeping up to 1 ms, round trips up
    /// to 0.5 ms, events within 30 ms.
    pub fn real_time() -> Self {
        Self {
            jobs: 0..=60,
            max_cost: Duration::from_millis(1),
            sleep: true,
            horizon: Duration::from_millis(30),
            max_error_rate: 0.3,
            max_latency: Duration::from_micros(500),
        }
    }
}

fn duration_up_to(max: Duration) -> impl Strategy<Value = Duration> {
    let micros = u64::try_from(max.as_micros()).unwrap_or(u64::MAX).max(1);
    (0..=micros).prop_map(Duration::from_micros)
}

/// Runner configurations: 1–4 workers, small buffers (to stress the bounds),
/// sometimes a job timeout and a grace period within `horizon`.
pub fn runner_plan(horizon: Duration) -> impl Strategy<Value = RunnerPlan> {
    (
        1usize..=4,
        1usize..=8,
        1usize..=3,
        1usize..=8,
        1usize..=4,
        1usize..=4,
        proptest::option::weighted(0.2, duration_up_to(horizon / 4)),
        proptest::option::weighted(0.3, duration_up_to(horizon)),
        2u32..=8,
    )
        .prop_map(
            |(
                workers,
                prefetch,
                pickers,
                batch,
                save_queue,
                savers,
                job_timeout,
                grace_period,
                save_attempts,
            )| RunnerPlan {
                workers,
                prefetch,
                pickers,
                pick_batch: batch.min(prefetch),
                save_queue,
                savers,
                save_batch: 1,
                job_timeout: job_timeout.map(|t| t.max(Duration::from_millis(1))),
                grace_period,
                save_attempts,
                backoff: Duration::from_millis(1),
            },
        )
}

/// Picker or saver faults: an error rate up to `max_error_rate`, and
/// sometimes an outage within `horizon`.
pub fn io_faults(horizon: Duration, max_error_rate: f64) -> impl Strategy<Value = IoFaults> {
    (
        proptest::option::weighted(0.5, 0.0..=max_error_rate.clamp(0.0, 1.0)),
        proptest::option::weighted(0.25, (duration_up_to(horizon), duration_up_to(horizon / 4))),
    )
        .prop_map(|(rate, outage)| {
            let mut faults = IoFaults::none().error_rate(rate.unwrap_or(0.0));
            if let Some((start, duration)) = outage {
                faults = faults.outage(Outage::new(start, duration));
            }
            faults
        })
}

/// Executor faults: sometimes errors, panics and stragglers.
pub fn exec_faults() -> impl Strategy<Value = ExecFaults> {
    (
        proptest::option::weighted(0.4, 0.0..=0.2f64),
        proptest::option::weighted(0.4, 0.0..=0.1f64),
        proptest::option::weighted(0.3, (0.0..=0.1f64, 2u32..=20)),
    )
        .prop_map(|(errors, panics, stragglers)| {
            let mut faults = ExecFaults::none()
                .error_rate(errors.unwrap_or(0.0))
                .panic_rate(panics.unwrap_or(0.0));
            if let Some((rate, factor)) = stragglers {
                faults = faults.stragglers(rate, factor);
            }
            faults
        })
}

/// Cancellations at random times within `horizon`: never, drain, abandon, or
/// drain then abandon.
pub fn cancel_plan(horizon: Duration) -> impl Strategy<Value = CancelPlan> {
    prop_oneof![
        Just(CancelPlan::Never),
        duration_up_to(horizon).prop_map(|after| CancelPlan::Drain { after }),
        duration_up_to(horizon).prop_map(|after| CancelPlan::Abandon { after }),
        (duration_up_to(horizon), duration_up_to(horizon / 2)).prop_map(
            |(drain_after, abandon_after)| CancelPlan::DrainThenAbandon {
                drain_after,
                abandon_after,
            }
        ),
    ]
}

/// Round trips: none, or uniform up to `max` (sometimes with spikes of up to
/// ten times `max`).
pub fn latency(max: Duration) -> impl Strategy<Value = LatencyProfile> {
    prop_oneof![
        Just(LatencyProfile::none()),
        (
            duration_up_to(max),
            duration_up_to(max),
            proptest::option::weighted(0.3, (0.0..=0.05f64, duration_up_to(max * 10))),
        )
            .prop_map(|(a, b, spikes)| {
                let profile = LatencyProfile::uniform(a, b);
                match spikes {
                    Some((rate, extra)) => profile.with_spikes(rate, extra),
                    None => profile,
                }
            }),
    ]
}

/// Whole runs within `space`.
pub fn run_plan(space: PlanSpace) -> impl Strategy<Value = RunPlan> {
    let horizon = space.horizon;
    (
        space.jobs.clone(),
        runner_plan(horizon),
        io_faults(horizon, space.max_error_rate),
        io_faults(horizon, space.max_error_rate),
        duration_up_to(space.max_cost),
        exec_faults(),
        cancel_plan(horizon),
        latency(space.max_latency),
    )
        .prop_map(
            move |(jobs, runner, picker, saver, cost, faults, cancel, latency)| RunPlan {
                jobs,
                runner,
                picker,
                saver,
                latency,
                exec: ExecPlan {
                    cost,
                    sleep: space.sleep,
                    faults,
                },
                cancel,
            },
        )
}

/// Draws one value of `strategy` deterministically from `seed` (no
/// shrinking): the way a seeded simulation suite turns a seed into a plan.
///
/// # Panics
///
/// If the strategy rejects every value it generates (filters that never
/// pass); the strategies of this module never do.
pub fn sample<S: Strategy>(strategy: &S, seed: u64) -> S::Value {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let word = seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    match strategy.new_tree(&mut runner) {
        Ok(tree) => tree.current(),
        Err(reason) => panic!("strategy rejected every value: {reason}"),
    }
}
