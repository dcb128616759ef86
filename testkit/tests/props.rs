//! The ready-made property checks on tokio: random runner configurations,
//! faults and cancellations keep every promise.

use pjp_runtime_tokio::TokioRuntime;
use pjp_testkit::strategy::{self, PlanSpace};
use pjp_testkit::{CancelPlan, RunPlan, props};
use proptest::prelude::*;

fn tokio_rt() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => panic!("cannot start tokio: {error}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn cancellation_and_drain_keep_every_promise(plan in strategy::run_plan(PlanSpace::real_time())) {
        pjp_testkit::quiet_injected_panics();
        let rt = tokio_rt();
        let runtime = TokioRuntime::from_handle(rt.handle().clone());
        let outcome = rt.block_on(props::check_run(&runtime, &plan));
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}

#[test]
fn an_uncancelled_run_saves_every_job() {
    let rt = tokio_rt();
    let runtime = TokioRuntime::from_handle(rt.handle().clone());
    let plan = RunPlan {
        jobs: 300,
        cancel: CancelPlan::Never,
        ..RunPlan::default()
    };
    let outcome = rt.block_on(props::check_run(&runtime, &plan));
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(broken) => panic!("{broken}"),
    };
    assert_eq!(outcome.summary.saved, 300);
    assert_eq!(outcome.pending, 0);
    assert!(outcome.error.is_none());
}

#[test]
fn seeded_sampling_is_reproducible() {
    let space = strategy::run_plan(PlanSpace::simulated());
    let plans: Vec<RunPlan> = (0..50).map(|seed| strategy::sample(&space, seed)).collect();
    let again: Vec<RunPlan> = (0..50).map(|seed| strategy::sample(&space, seed)).collect();
    assert_eq!(plans, again);
    // Different seeds explore different plans.
    assert!(plans.windows(2).any(|w| w[0] != w[1]));
    assert!(plans.iter().any(|p| p.cancel != CancelPlan::Never));
    assert!(plans.iter().any(|p| !p.picker.is_none()));
    assert!(plans.iter().any(|p| !p.exec.faults.is_none()));
}
