//! Job kinds and resource classes: a worker claims the kinds it serves in its
//! order of preference, and only the classes it can run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestDb, claim_payloads, fast};
use pjp_core::{JobPicker, Picked};
use pjp_postgres::autoscale::{self, ScalePolicy};
use pjp_postgres::{NewJob, PgPicker};
use std::time::Duration;

const QUEUE: &str = "proofs";

fn job(name: &str, kind: &str, class: &str) -> NewJob {
    NewJob::new(QUEUE, name.as_bytes().to_vec())
        .kind(kind)
        .resource_class(class)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_only_worker_never_claims_a_gpu_job() {
    let db = TestDb::new().await;
    db.queue
        .enqueue_many(vec![
            job("gpu-1", "basic", "gpu-80g"),
            job("cpu-1", "basic", "cpu"),
            job("gpu-2", "leaf", "gpu-24g"),
            job("cpu-2", "leaf", "cpu"),
        ])
        .await
        .unwrap();
    let worker = db.queue.worker(fast("cpu-box")).await.unwrap();
    // Any kind, CPU only; and the same through a kind list.
    let any_kind = worker.picker(QUEUE).unwrap().classes(["cpu"]);
    let mut claimed = claim_payloads(&any_kind, 10).await;
    claimed.sort();
    assert_eq!(claimed, ["cpu-1", "cpu-2"]);
    let by_kind = worker
        .picker(QUEUE)
        .unwrap()
        .kinds(["basic", "leaf"])
        .classes(["cpu"]);
    assert!(
        claim_payloads(&by_kind, 10).await.is_empty(),
        "only GPU jobs are left"
    );
    let gpu = db.queue.worker(fast("gpu-box")).await.unwrap();
    let gpu = gpu.picker(QUEUE).unwrap().classes(["gpu-80g", "gpu-24g"]);
    let mut claimed = claim_payloads(&gpu, 10).await;
    claimed.sort();
    assert_eq!(claimed, ["gpu-1", "gpu-2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_first_falls_back_to_light_and_other_kinds_are_left_alone() {
    let db = TestDb::new().await;
    // Light jobs first (older), heavy ones later, one of a kind nobody serves here.
    let mut jobs: Vec<NewJob> = (0..3)
        .map(|i| job(&format!("light-{i}"), "light", ""))
        .collect();
    jobs.push(job("other-0", "scheduler", ""));
    jobs.extend((0..2).map(|i| job(&format!("heavy-{i}"), "heavy", "")));
    jobs.push(job("heavy-urgent", "heavy", "").priority(5));
    db.queue.enqueue_many(jobs).await.unwrap();
    let worker = db.queue.worker(fast("w")).await.unwrap();
    let picker = worker.picker(QUEUE).unwrap().kinds(["heavy", "light"]);
    // Every heavy job (priority first within the kind), then the oldest light one.
    assert_eq!(
        claim_payloads(&picker, 4).await,
        ["heavy-urgent", "heavy-0", "heavy-1", "light-0"]
    );
    assert_eq!(claim_payloads(&picker, 1).await, ["light-1"]);
    assert_eq!(claim_payloads(&picker, 5).await, ["light-2"]);
    assert!(
        claim_payloads(&picker, 5).await.is_empty(),
        "the scheduler job is not this worker's"
    );
    let scheduler = worker.picker(QUEUE).unwrap().kinds(["scheduler"]);
    assert_eq!(claim_payloads(&scheduler, 5).await, ["other-0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_but_the_excluded_ones_and_only_they_count_for_exit() {
    let db = TestDb::new().await;
    db.queue
        .enqueue_many(vec![
            job("agg-0", "aggregate", ""),
            job("plain-0", "", ""),
            job("basic-gpu", "basic", "gpu"),
            job("leaf-0", "leaf", "cpu").priority(3),
            job("agg-1", "aggregate", "cpu"),
        ])
        .await
        .unwrap();
    let worker = db.queue.worker(fast("w")).await.unwrap();
    let provers = worker
        .picker(QUEUE)
        .unwrap()
        .except_kinds(["aggregate"])
        .exit_when_empty(true);
    // CPU only first: the leaf job, never the CPU aggregation.
    let cpu = provers.clone().classes(["cpu"]);
    assert_eq!(claim_payloads(&cpu, 10).await, ["leaf-0"]);
    // Then every class, in priority-then-age order, still no aggregation.
    assert_eq!(claim_payloads(&provers, 10).await, ["plain-0", "basic-gpu"]);
    // The provers' three jobs are still running: work, so `Empty`.
    assert!(matches!(
        provers.pick_many(10).await.unwrap(),
        Picked::Empty
    ));
    // Once they are done, only aggregations are left (one queued, one
    // held): not its work, so `Exhausted`.
    db.exec(&format!(
        "UPDATE {} SET status = 'succeeded' WHERE status = 'running'",
        db.table()
    ))
    .await;
    let aggregations = worker.picker(QUEUE).unwrap().kinds(["aggregate"]);
    assert_eq!(claim_payloads(&aggregations, 1).await, ["agg-0"]);
    assert!(matches!(
        provers.pick_many(10).await.unwrap(),
        Picked::Exhausted
    ));
    // An empty list serves every kind again.
    let every = worker
        .picker(QUEUE)
        .unwrap()
        .except_kinds(Vec::<String>::new());
    assert!(format!("{every:?}").contains("Every"), "{every:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kind_and_class_labels_are_checked() {
    let db = TestDb::new().await;
    let error = db
        .queue
        .enqueue(job("x", "no spaces", ""))
        .await
        .expect_err("a kind with a space");
    assert!(error.to_string().contains("kind"), "{error}");
    let error = db
        .queue
        .enqueue(job("x", "", &"c".repeat(65)))
        .await
        .expect_err("a class too long");
    assert!(error.to_string().contains("resource class"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_kind_claims_hand_each_job_out_once() {
    let db = TestDb::new().await;
    let jobs: Vec<NewJob> = (0..400)
        .map(|i| {
            job(
                &format!("j{i}"),
                if i % 2 == 0 { "heavy" } else { "light" },
                "",
            )
        })
        .collect();
    db.queue.enqueue_many(jobs).await.unwrap();
    let (a, b) = (
        db.handle(|q| q).await.worker(fast("a")).await.unwrap(),
        db.handle(|q| q).await.worker(fast("b")).await.unwrap(),
    );
    let (pa, pb) = (
        a.picker(QUEUE).unwrap().kinds(["heavy", "light"]),
        b.picker(QUEUE).unwrap().kinds(["light", "heavy"]),
    );
    let mut seen = std::collections::HashSet::new();
    for _ in 0..100 {
        let (x, y) = tokio::join!(claim_payloads(&pa, 16), claim_payloads(&pb, 16));
        if x.is_empty() && y.is_empty() {
            break;
        }
        for name in x.into_iter().chain(y) {
            assert!(seen.insert(name.clone()), "{name} claimed twice");
        }
    }
    assert_eq!(seen.len(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_report_counts_each_kind_and_class() {
    let db = TestDb::new().await;
    let mut jobs: Vec<NewJob> = (0..6)
        .map(|i| job(&format!("b{i}"), "basic", "gpu-80g"))
        .collect();
    jobs.extend((0..3).map(|i| job(&format!("s{i}"), "scheduler", "cpu")));
    db.queue.enqueue_many(jobs).await.unwrap();
    let worker = db.queue.worker(fast("w")).await.unwrap();
    let basic = worker.picker(QUEUE).unwrap().kinds(["basic"]);
    // Claim 4 basic jobs, complete 2 of them.
    let claimed = match basic.pick_many(4).await.unwrap() {
        Picked::Some(jobs) => jobs,
        _ => panic!("nothing claimed"),
    };
    let saver: pjp_postgres::PgSaver<Vec<u8>, String> = worker.saver();
    for j in &claimed[..2] {
        pjp_core::JobSaver::save(&saver, &Ok(b"ok".to_vec()), &j.meta)
            .await
            .unwrap();
    }
    let load = db.queue.load().await.unwrap();
    let of = |kind: &str| {
        load.iter()
            .find(|l| l.kind == kind)
            .unwrap_or_else(|| panic!("no {kind} in {load:?}"))
    };
    let basic = of("basic");
    assert_eq!(
        (
            basic.resource_class.as_str(),
            basic.queued,
            basic.running,
            basic.finished_last_minute
        ),
        ("gpu-80g", 2, 2, 2)
    );
    assert!(basic.oldest_queued.is_some());
    // 4 left at 2 per minute: about two minutes.
    let drain = basic.drain_estimate().expect("a rate");
    assert!((drain.as_secs_f64() - 120.0).abs() < 1.0, "{drain:?}");
    let scheduler = of("scheduler");
    assert_eq!(
        (
            scheduler.queued,
            scheduler.running,
            scheduler.finished_last_minute
        ),
        (3, 0, 0)
    );
    assert_eq!(scheduler.drain_estimate(), None, "no rate yet");
    assert_eq!(scheduler.p95_duration, None, "nothing succeeded yet");

    // The two successes ran 10 s each (set by hand: the test does not wait):
    // their p95 is what the autoscaling plan uses.
    db.exec(&format!(
        "UPDATE {} SET started_at = finished_at - interval '10 seconds' WHERE status = 'succeeded'",
        db.table()
    ))
    .await;
    let load = db.queue.load().await.unwrap();
    let of = |kind: &str| load.iter().find(|l| l.kind == kind).cloned();
    let basic = of("basic").expect("basic");
    assert_eq!(basic.p95_duration, Some(Duration::from_secs(10)));
    // 4 jobs of 10 s within 10 s: 4 workers; the scheduler's 3 jobs use the
    // fallback of 60 s: 18 workers, capped at 8.
    let policy = ScalePolicy::new(Duration::from_secs(10)).max(8);
    let plans = autoscale::plan(&load, &policy);
    let desired = |kind: &str| plans.iter().find(|p| p.kind == kind).map(|p| p.desired);
    assert_eq!(desired("basic"), Some(4), "{plans:?}");
    assert_eq!(desired("scheduler"), Some(8), "{plans:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proof_first_takes_the_oldest_batch_and_the_round_nearest_the_root_first() {
    let db = TestDb::new().await;
    let spec = |queue: &str, name: &str, batch: i64, depth: u16| {
        NewJob::new(queue, name.as_bytes().to_vec())
            .batch(batch)
            .depth(depth)
    };
    for queue in ["proof-first", "fifo"] {
        db.queue
            .enqueue_many(vec![
                spec(queue, "b2-basic", 2, 2),
                spec(queue, "b1-basic-0", 1, 2),
                spec(queue, "b2-agg", 2, 1),
                spec(queue, "b1-agg", 1, 1),
                spec(queue, "b1-basic-1", 1, 2),
                spec(queue, "b9-urgent", 9, 2).priority(5),
            ])
            .await
            .unwrap();
    }
    let worker = db.queue.worker(fast("w")).await.unwrap();
    let one_by_one = |picker: PgPicker| async move {
        let mut order = Vec::new();
        loop {
            let got = claim_payloads(&picker, 1).await;
            if got.is_empty() {
                return order;
            }
            order.extend(got);
        }
    };
    let proof_first = one_by_one(worker.picker("proof-first").unwrap()).await;
    assert_eq!(
        proof_first,
        [
            "b9-urgent",
            "b1-agg",
            "b1-basic-0",
            "b1-basic-1",
            "b2-agg",
            "b2-basic"
        ]
    );
    let fifo = one_by_one(
        worker
            .picker("fifo")
            .unwrap()
            .order(pjp_postgres::ClaimOrder::Fifo),
    )
    .await;
    assert_eq!(
        fifo,
        [
            "b9-urgent",
            "b2-basic",
            "b1-basic-0",
            "b2-agg",
            "b1-agg",
            "b1-basic-1"
        ]
    );
    // A batch claimed whole is handed on in the same order.
    db.queue
        .enqueue_many(vec![
            spec("batch", "late", 3, 3),
            spec("batch", "root", 3, 0),
        ])
        .await
        .unwrap();
    assert_eq!(
        claim_payloads(&worker.picker("batch").unwrap(), 2).await,
        ["root", "late"]
    );
}
