//! The testkit's conformance suite, run against the PostgreSQL picker and
//! saver: the promises the runner relies on hold for the durable queue too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestDb, fast};
use pjp_core::{JobId, Picked};
use pjp_postgres::{NewJob, PgJob, PgPicker, PgQueue, PgWorker};
use pjp_runtime_tokio::TokioRuntime;
use pjp_testkit::conformance::{self, PickerOptions};

/// A fresh schema holding `jobs` jobs, and a picker on it (with adaptive
/// claims aiming at `target`, if any). The schema lives as long as the test
/// (kept in `dbs`).
async fn fresh(
    dbs: &Mutex<Vec<(TestDb, PgWorker)>>,
    jobs: u64,
    target: Option<Duration>,
) -> PgPicker {
    let db = TestDb::new().await;
    db.queue
        .enqueue_many(
            (0..jobs)
                .map(|i| NewJob::new("c", i.to_le_bytes().to_vec()))
                .collect(),
        )
        .await
        .unwrap();
    let mut config = fast("conformance");
    if let Some(target) = target {
        config = config.adaptive_claims(target);
    }
    let worker = db.queue.worker(config).await.unwrap();
    let picker = worker.picker("c").unwrap();
    dbs.lock().unwrap().push((db, worker));
    picker
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_picker_passes_the_conformance_suite() {
    picker_suite(None).await;
}

/// With a target no claim meets, picks queue at the adaptive gate and are
/// served by one another's claims: the promises hold all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_picker_with_adaptive_claims_passes_the_conformance_suite() {
    picker_suite(Some(Duration::from_micros(1))).await;
}

async fn picker_suite(target: Option<Duration>) {
    let dbs = Mutex::new(Vec::new());
    // A pick dropped half-way may have committed its claim on the server: the
    // lease then expires (1 s here) and the job is rescued, so the suite
    // waits that long before draining again.
    let options = PickerOptions::default()
        .jobs(16)
        .settle(Duration::from_millis(2_000));
    let report = conformance::check_picker_with(&TokioRuntime::current(), options, async |n| {
        fresh(&dbs, n, target).await
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.passed.len() >= 5, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_saver_passes_the_conformance_suite() {
    // The suite saves jobs 0..9, 100..102 and 200..216: each make() enqueues
    // and claims those, so every save carries a real lease.
    let ns: Vec<u64> = (0..9).chain(100..102).chain(200..216).collect();
    let dbs: Mutex<Vec<(TestDb, PgWorker)>> = Mutex::new(Vec::new());
    let claims: Arc<Mutex<HashMap<u64, PgJob>>> = Arc::default();
    let current: Arc<Mutex<Option<PgQueue>>> = Arc::default();
    let make = async || {
        let db = TestDb::new().await;
        let done = db
            .queue
            .enqueue_many(
                ns.iter()
                    .map(|n| NewJob::new("s", n.to_le_bytes().to_vec()))
                    .collect(),
            )
            .await
            .unwrap();
        let worker = db.queue.worker(fast("conformance")).await.unwrap();
        let picker = worker.picker("s").unwrap();
        let Picked::Some(jobs) = pjp_core::JobPicker::pick_many(&picker, 100).await.unwrap() else {
            panic!("nothing claimed");
        };
        assert_eq!(jobs.len(), ns.len());
        let by_id: HashMap<i64, u64> = done.iter().map(|e| e.id).zip(ns.iter().copied()).collect();
        let mut claims = claims.lock().unwrap();
        claims.clear();
        for job in jobs {
            claims.insert(by_id[&job.meta.id], job.meta);
        }
        *current.lock().unwrap() = Some(db.queue.clone());
        let saver = worker.saver::<Vec<u8>, String>();
        dbs.lock().unwrap().push((db, worker));
        saver
    };
    let report = conformance::check_saver(
        &TokioRuntime::current(),
        make,
        |n| (claims.lock().unwrap()[&n], n.to_le_bytes().to_vec()),
        async |_saver, id: JobId| {
            let queue = current.lock().unwrap().clone().unwrap();
            let row = queue
                .job(i64::try_from(id.get()).unwrap())
                .await
                .unwrap()
                .unwrap();
            // Saved: no longer running (succeeded, or queued for a retry
            // with one attempt used).
            usize::from(row.status != "running" && (row.status == "succeeded" || row.attempts == 1))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.passed.len() >= 3, "{report:?}");
}
