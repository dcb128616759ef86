//! The queue through a connection pooler in transaction mode: a PgBouncer
//! (pjp-testkit's `pooler::PgBouncer`, a few server connections shared by
//! every client) in front of the test server. The durable contract and the
//! picker's conformance suite pass through it, a fleet of workers runs every
//! job once through it, workers listen on a direct URL or poll, and
//! migrations and maintenance keep no session state on it.
//!
//! Skipped (with a message) where `pgbouncer` is not installed, unless
//! `CI=true`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use common::durable::PgUnderTest;
use common::{TestDb, fast};
use pjp_core::{BackoffPolicy, JobContext, JobRunner, Shutdown};
use pjp_postgres::{Maintained, NewJob, PgPicker, PgQueue, PgWorker, Pooler, QueueError, WakeUp};
use pjp_runtime_tokio::TokioRuntime;
use pjp_testkit::conformance::{self, PickerOptions};
use pjp_testkit::durable::{Case, check_durable_queue};
use pjp_testkit::pooler::PgBouncer;
use pjp_testkit::wait::Wait;

/// A handle on `db`'s schema through the pooler; with `listen`, given the
/// direct URL too (for `LISTEN` and migrations).
async fn through(db: &TestDb, bouncer: &PgBouncer, listen: bool) -> PgQueue {
    let mut builder = PgQueue::builder(bouncer.url())
        .schema(db.schema())
        .pooler(Pooler::Transaction)
        .wait(Duration::from_secs(10));
    if listen {
        builder = builder.direct_url(db.url());
    }
    builder.connect().await.expect("connect through the pooler")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_durable_contract_holds_through_a_transaction_pooler() {
    let Some(bouncer) = PgBouncer::start() else {
        return;
    };
    let report = check_durable_queue(async || {
        let db = TestDb::new().await;
        let queue = through(&db, &bouncer, false).await;
        PgUnderTest::on(db, queue).await
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\npgbouncer's log:\n{}", bouncer.log()));
    assert_eq!(report.passed, Case::ALL.to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_picker_passes_the_conformance_suite_through_a_transaction_pooler() {
    let Some(bouncer) = PgBouncer::start() else {
        return;
    };
    let dbs: Mutex<Vec<(TestDb, PgWorker)>> = Mutex::new(Vec::new());
    let fresh = async |jobs: u64| -> PgPicker {
        let db = TestDb::new().await;
        let queue = through(&db, &bouncer, false).await;
        queue
            .enqueue_many(
                (0..jobs)
                    .map(|i| NewJob::new("c", i.to_le_bytes().to_vec()))
                    .collect(),
            )
            .await
            .unwrap();
        let worker = queue.worker(fast("conformance")).await.unwrap();
        let picker = worker.picker("c").unwrap();
        dbs.lock().unwrap().push((db, worker));
        picker
    };
    let options = PickerOptions::default()
        .jobs(16)
        .settle(Duration::from_millis(2_000));
    let report = conformance::check_picker_with(&TokioRuntime::current(), options, fresh)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.passed.len() >= 5, "{report:?}");
}

/// Echoes its input.
#[derive(Clone, Copy)]
struct Echo;

impl pjp_core::Executor for Echo {
    type Input = Bytes;
    type Output = Bytes;
    type Error = String;

    fn execute(&self, input: Bytes, _job: &JobContext) -> Result<Bytes, String> {
        Ok(input)
    }
}

/// Runs `worker` on queue `q` until the queue is empty.
async fn drain(worker: PgWorker) -> PgWorker {
    let runner = JobRunner::builder(
        worker.picker("q").unwrap().exit_when_empty(true),
        Echo,
        worker.saver(),
    )
    .workers(2)
    .prefetch(16)
    .pick_batch(8)
    .save_batch(8)
    .empty_backoff(BackoffPolicy::new(
        Duration::from_millis(1),
        Duration::from_millis(10),
    ))
    .job_cancels(worker.job_cancels())
    .build()
    .unwrap();
    let report = runner
        .run(&TokioRuntime::current(), Shutdown::new())
        .await
        .unwrap();
    assert_eq!(report.counts.fenced, 0, "{report:?}");
    worker
}

/// Six worker "processes" (a queue handle each, 6 client connections each)
/// share two server connections: every statement of one finds its parse on
/// the server it executes on, no prepared statement of one collides with
/// another's, and every job runs exactly once. Half listen on the direct
/// URL, half poll, and each says which.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fleet_through_two_server_connections_runs_every_job_once() {
    let Some(bouncer) = PgBouncer::start_with_pool_size(2) else {
        return;
    };
    let db = TestDb::new().await;
    let producer = through(&db, &bouncer, false).await;
    let jobs = 600;
    let enqueued = producer
        .enqueue_many(
            (0..jobs)
                .map(|i: u32| NewJob::new("q", i.to_le_bytes().to_vec()))
                .collect(),
        )
        .await
        .unwrap();
    assert_eq!(enqueued.len(), jobs as usize);
    let mut runs = Vec::new();
    for i in 0..6 {
        let listen = i % 2 == 0;
        let queue = through(&db, &bouncer, listen).await;
        let worker = queue.worker(fast(&format!("w{i}"))).await.unwrap();
        let expected = if listen {
            WakeUp::Listen
        } else {
            WakeUp::Poll(Duration::from_millis(100))
        };
        assert_eq!(worker.wake_up(), expected);
        runs.push(tokio::spawn(drain(worker)));
    }
    let mut succeeded = 0;
    for run in runs {
        let worker = Wait::new("a worker to drain the queue")
            .limit(Duration::from_secs(120))
            .within(run)
            .await
            .unwrap();
        let stats = worker.stats();
        assert_eq!(stats.fenced, 0, "{stats:?}");
        succeeded += stats.succeeded;
    }
    assert_eq!(succeeded, u64::from(jobs));
    let counts: Vec<(String, i64)> = sqlx::query_as(&format!(
        "SELECT status::text, count(*) FROM {} GROUP BY 1",
        db.table()
    ))
    .fetch_all(db.queue.pool())
    .await
    .unwrap();
    assert_eq!(counts, vec![("succeeded".to_owned(), i64::from(jobs))]);
    let attempts = db
        .scalar(&format!(
            "SELECT count(*) FROM {} WHERE attempts <> 0 OR lost_leases <> 0",
            db.table()
        ))
        .await;
    assert_eq!(attempts, 0, "no retries, no lost leases");
}

/// A worker given the direct URL listens there: an enqueue through the
/// pooler (its `NOTIFY` commits with it) reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_listens_on_the_direct_url_and_hears_enqueues_through_the_pooler() {
    let Some(bouncer) = PgBouncer::start() else {
        return;
    };
    let db = TestDb::new().await;
    let queue = through(&db, &bouncer, true).await;
    let worker = queue.worker(fast("listener")).await.unwrap();
    assert_eq!(worker.wake_up(), WakeUp::Listen);
    assert_eq!(
        worker.wake_up().to_string(),
        "LISTEN on a direct connection"
    );
    // The listener may still be connecting: enqueue until one is heard.
    Wait::new("a notification through the direct connection")
        .every(Duration::from_millis(100))
        .until_async(|| async {
            queue.enqueue(NewJob::new("q", vec![1])).await.unwrap();
            worker.stats().notifications > 0
        })
        .await;
    let poller = through(&db, &bouncer, false)
        .await
        .worker(fast("poller"))
        .await
        .unwrap();
    assert_eq!(poller.wake_up().to_string(), "polling every 100ms");
}

/// A migration holds a session lock: through the pooler it needs the direct
/// URL, and runs there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_through_the_pooler_runs_on_the_direct_url_or_is_refused() {
    let Some(bouncer) = PgBouncer::start() else {
        return;
    };
    let db = TestDb::new().await;
    let fresh = pjp_testkit::postgres::TestSchema::new();
    let without = PgQueue::builder(bouncer.url())
        .schema(fresh.name())
        .pooler(Pooler::Transaction)
        .connect()
        .await
        .unwrap();
    let refused = without.migrate().await.unwrap_err();
    assert!(
        matches!(refused, QueueError::Invalid { .. }) && refused.to_string().contains("direct"),
        "{refused}"
    );
    let with = PgQueue::builder(bouncer.url())
        .schema(fresh.name())
        .pooler(Pooler::Transaction)
        .direct_url(db.url())
        .connect()
        .await
        .unwrap();
    let applied = with.migrate().await.unwrap();
    assert!(!applied.is_empty());
    with.check_schema().await.unwrap();
    assert!(with.migrate().await.unwrap().is_empty(), "idempotent");
}

/// Maintenance through the pooler: the work runs under a transaction lock
/// (no session lock left on a server the pooler lends to others), and one
/// caller of a schema at a time does it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_through_the_pooler_analyzes_and_elects_one_caller() {
    let Some(bouncer) = PgBouncer::start() else {
        return;
    };
    let db = TestDb::new().await;
    db.exec(&format!(
        "ALTER TABLE {} SET (autovacuum_enabled = false)",
        db.table()
    ))
    .await;
    let queue = through(&db, &bouncer, false).await;
    let jobs = (0..5_000)
        .map(|i| NewJob::new("q", vec![i as u8]))
        .collect();
    queue.enqueue_many(jobs).await.unwrap();
    Wait::new("maintain through the pooler to analyze the table")
        .every(Duration::from_millis(200))
        .until_async(|| async { queue.maintain().await.unwrap() == Maintained::Analyzed })
        .await;
    // Another caller holds the maintenance lock (a session lock on a direct
    // connection): maintenance through the pooler leaves the work to it.
    let mut other = db.queue.pool().acquire().await.unwrap().detach();
    let name = format!("pjp-postgres maintain {}", db.schema());
    let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
        .bind(&name)
        .fetch_one(&mut other)
        .await
        .unwrap();
    assert!(held);
    let jobs = (0..5_000)
        .map(|i| NewJob::new("q", vec![i as u8]))
        .collect();
    queue.enqueue_many(jobs).await.unwrap();
    Wait::new("maintain through the pooler to find the lock taken")
        .every(Duration::from_millis(200))
        .until_async(|| async { queue.maintain().await.unwrap() == Maintained::Busy })
        .await;
}

/// Fan-out saves from four workers share two server connections: each
/// save's transaction (its completion and the tree it spawns) finds its own
/// statements on the server it was lent, never another client's leftover
/// names, and every tree is created exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fan_out_saves_through_two_server_connections_create_each_tree_once() {
    use pjp_core::{JobPicker, JobSaver, Picked};
    use pjp_postgres::{FanOut, FanOutSaver, Spawn};

    let Some(bouncer) = PgBouncer::start_with_pool_size(2) else {
        return;
    };
    let db = TestDb::new().await;
    let witnesses = 40u8;
    db.queue
        .enqueue_many(
            (0..witnesses)
                .map(|i| NewJob::new("witness", vec![i]))
                .collect(),
        )
        .await
        .unwrap();
    let mut saves = Vec::new();
    for w in 0..4 {
        let queue = through(&db, &bouncer, false).await;
        saves.push(tokio::spawn(async move {
            let worker = queue.worker(fast(&format!("fan{w}"))).await.unwrap();
            let picker = worker.picker("witness").unwrap();
            let saver: FanOutSaver<Vec<u8>, String> = worker.fan_out_saver();
            let mut saved = 0u32;
            // Bounded: 40 jobs between four workers.
            for _ in 0..usize::from(witnesses) {
                let Picked::Some(jobs) = picker.pick_many(2).await.unwrap() else {
                    break;
                };
                for job in jobs {
                    let i = job.input[0];
                    let spawn = Spawn::tree(
                        NewJob::new("aggregate", vec![i]).kind("aggregate"),
                        (0..3)
                            .map(|c| NewJob::new("basic", vec![i, c]).kind("basic"))
                            .collect(),
                    );
                    let output = Ok(FanOut {
                        output: vec![i],
                        spawn,
                    });
                    saver.save(&output, &job.meta).await.unwrap();
                    saved += 1;
                }
            }
            saved
        }));
    }
    let mut saved = 0;
    for save in saves {
        saved += Wait::new("a fan-out worker to finish")
            .limit(Duration::from_secs(60))
            .within(save)
            .await
            .unwrap();
    }
    assert_eq!(saved, u32::from(witnesses));
    let count = |filter: &'static str| {
        let db = &db;
        async move {
            db.scalar(&format!(
                "SELECT count(*) FROM {} WHERE {filter}",
                db.table()
            ))
            .await
        }
    };
    let w = i64::from(witnesses);
    assert_eq!(count("queue = 'witness' AND status = 'succeeded'").await, w);
    assert_eq!(
        count("queue = 'aggregate' AND status = 'waiting' AND waiting_on = 3").await,
        w
    );
    assert_eq!(
        count("queue = 'basic' AND parent_id IS NOT NULL").await,
        3 * w
    );
}
