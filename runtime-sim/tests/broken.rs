//! Under simulation too, the ledger catches broken components: a saver that
//! drops results, a picker that hands jobs out twice, and releases that never
//! reach the source on abandon.

#![cfg(madsim)]

use std::time::Duration;

use pjp_core::{JobRunner, Shutdown, StopReason};
use pjp_runtime_sim::{SimConfig, SimRuntime, simulate};
use pjp_testkit::broken::{DroppingSaver, DuplicatingPicker, SwallowReleases};
use pjp_testkit::{
    ExecutorExt, LatencyProfile, Ledger, LedgerError, MemoryQueue, PickerExt, SaverExt, Violation,
    Workload,
};

type Queue = MemoryQueue<u64, u64, String>;

fn kinds(error: &LedgerError) -> Vec<&'static str> {
    let mut kinds: Vec<&'static str> = error
        .violations
        .iter()
        .map(|v| match v {
            Violation::Lost { .. } => "lost",
            Violation::SavedTwice { .. } => "saved twice",
            Violation::PickedWhileClaimed { .. } | Violation::PickedAfterSave { .. } => {
                "picked twice"
            }
            _ => "other",
        })
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    kinds
}

#[test]
fn broken_components_are_reported_in_simulation() {
    let found = simulate(11, SimConfig::default(), || async {
        let rt = SimRuntime::current().unwrap_or_else(|e| panic!("{e}"));
        let latency = LatencyProfile::cross_region();

        let dropping = {
            let (ledger, queue) = (Ledger::timed(&rt), Queue::closed_with(0..200));
            let runner = JobRunner::builder(
                queue
                    .picker()
                    .with_ledger(&ledger)
                    .with_latency(&rt, latency.clone()),
                Workload::modeled(Duration::from_millis(5)).with_ledger(&ledger),
                DroppingSaver::new(queue.saver().with_ledger(&ledger), 25)
                    .with_latency(&rt, latency.clone()),
            )
            .workers(2)
            .savers(8)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
            runner
                .run(&rt, Shutdown::new())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            ledger.check().expect_err("dropped results")
        };

        let duplicating = {
            let (ledger, queue) = (Ledger::timed(&rt), Queue::closed_with(0..200));
            let runner = JobRunner::builder(
                DuplicatingPicker::new(queue.picker(), 40)
                    .with_ledger(&ledger)
                    .with_latency(&rt, latency.clone()),
                Workload::modeled(Duration::from_millis(5)).with_ledger(&ledger),
                queue
                    .saver()
                    .with_ledger(&ledger)
                    .with_latency(&rt, latency.clone()),
            )
            .workers(2)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
            runner
                .run(&rt, Shutdown::new())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            ledger.check().expect_err("duplicates")
        };

        let swallowing = {
            let (ledger, queue) = (Ledger::timed(&rt), Queue::closed_with(0..200));
            let runner = JobRunner::builder(
                SwallowReleases(queue.picker().with_ledger(&ledger))
                    .with_latency(&rt, latency.clone()),
                Workload::modeled(Duration::from_millis(50)).with_ledger(&ledger),
                queue
                    .saver()
                    .with_ledger(&ledger)
                    .with_latency(&rt, latency.clone()),
            )
            .workers(2)
            .prefetch(16)
            .pickers(4)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
            let shutdown = Shutdown::new();
            let abandon = {
                let (rt, shutdown) = (rt.clone(), shutdown.clone());
                pjp_core::Runtime::spawn(&rt.clone(), async move {
                    pjp_core::Runtime::sleep(&rt, Duration::from_secs(1)).await;
                    shutdown.abandon();
                })
            };
            let report = runner
                .run(&rt, shutdown)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            drop(abandon);
            assert_eq!(report.stop, StopReason::Abandoned);
            assert!(!report.released.is_empty());
            let error = ledger.check().expect_err("swallowed releases");
            let lost: Vec<_> = error.violations.iter().map(Violation::job).collect();
            let mut released = report.released.clone();
            released.sort_unstable();
            // Exactly the jobs the runner believes it released.
            assert_eq!(lost, released);
            error
        };
        (kinds(&dropping), kinds(&duplicating), kinds(&swallowing))
    });
    assert_eq!(found.0, vec!["lost"]);
    assert_eq!(found.1, vec!["picked twice", "saved twice"]);
    assert_eq!(found.2, vec!["lost"]);
}
