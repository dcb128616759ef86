//! The queue's semantics on a real server: schema, enqueue, claim, leases,
//! fencing, attempts, dead letters, releases, wake-ups.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{TestDb, fast};
use pjp_core::{ErrorClass, ExecError, JobPicker, JobResult, JobSaver, Picked, ReleaseReason};
use pjp_postgres::{NewJob, PgJob, PgQueue, QueueError, WorkerConfig, schema_version};
use pjp_testkit::postgres::database_url;
use pjp_testkit::wait::{Wait, eventually, eventually_async, within};

type Saver = pjp_postgres::PgSaver<Vec<u8>, String>;

async fn claim(picker: &pjp_postgres::PgPicker, max: usize) -> Vec<(PgJob, Vec<u8>)> {
    match picker.pick_many(max).await.expect("pick") {
        Picked::Some(jobs) => jobs
            .into_iter()
            .map(|j| (j.meta, j.input.to_vec()))
            .collect(),
        _ => Vec::new(),
    }
}

/// Claims one job, waiting (under the hang guard) for one to become
/// claimable.
async fn claim_eventually(picker: &pjp_postgres::PgPicker, what: &str) -> (PgJob, Vec<u8>) {
    Wait::new(what)
        .until_some(|| async { claim(picker, 1).await.pop() })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_is_idempotent_and_the_version_is_checked() {
    let db = TestDb::new().await;
    assert!(
        db.queue.migrate().await.unwrap().is_empty(),
        "already migrated"
    );
    db.queue.check_schema().await.unwrap();

    // A schema that was never migrated: a clear error, not a crash.
    let bare = db
        .handle(|b| b.schema(format!("{}_none", db.schema())))
        .await;
    let error = bare.check_schema().await.unwrap_err();
    assert!(matches!(error, QueueError::NotMigrated { .. }), "{error}");
    assert!(error.to_string().contains("migrate"), "{error}");
    let error = bare.enqueue(NewJob::new("q", vec![1])).await.unwrap_err();
    assert!(matches!(error, QueueError::NotMigrated { .. }), "{error}");

    // A schema from a newer library.
    let newer = schema_version() + 1;
    db.exec(&format!(
        "INSERT INTO {}._sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES ({newer}, 'from the future', true, '\\x00', 0)",
        db.schema()
    ))
    .await;
    let error = db.queue.check_schema().await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains(&newer.to_string()) && text.contains(&schema_version().to_string()),
        "names both versions: {text}"
    );
    assert!(
        db.queue.worker(fast("w")).await.is_err(),
        "a worker refuses it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_batches_dedupes_and_joins_the_callers_transaction() {
    let db = TestDb::new().await;
    let jobs: Vec<NewJob> = (0..5_000u32)
        .map(|i| NewJob::new("bulk", i.to_le_bytes().to_vec()))
        .collect();
    let done = db.queue.enqueue_many(jobs).await.unwrap();
    assert_eq!(done.len(), 5_000);
    assert!(done.iter().all(|e| e.created));
    let ids: HashSet<i64> = done.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 5_000);

    // A producer retrying: the same key creates nothing, and says which job it is.
    let first = db
        .queue
        .enqueue(NewJob::new("keyed", vec![1]).unique_key("batch-1"))
        .await
        .unwrap();
    let again = db
        .queue
        .enqueue_many(vec![
            NewJob::new("keyed", vec![1]).unique_key("batch-1"),
            NewJob::new("keyed", vec![2]).unique_key("batch-2"),
            NewJob::new("keyed", vec![2]).unique_key("batch-2"),
        ])
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!(again[0].id, first.id);
    assert!(!again[0].created);
    assert!(again[1].created);
    assert_eq!(again[2].id, again[1].id);
    assert!(!again[2].created, "a duplicate within one batch");
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM {} WHERE queue = 'keyed'",
            db.table()
        ))
        .await,
        2
    );

    // Inside the caller's transaction: rolled back, nothing exists.
    let mut tx = db.queue.pool().begin().await.unwrap();
    db.queue
        .enqueue_in(&mut tx, vec![NewJob::new("tx", vec![9])])
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let mut tx = db.queue.pool().begin().await.unwrap();
    db.queue
        .enqueue_in(&mut tx, vec![NewJob::new("tx", vec![8])])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM {} WHERE queue = 'tx'",
            db.table()
        ))
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_error() {
    let db = TestDb::new().await;
    for (job, what) in [
        (NewJob::new("q", vec![]).priority(101), "priority"),
        (NewJob::new("q", vec![]).priority(-1), "priority"),
        (NewJob::new("", vec![]), "queue name"),
        (NewJob::new("no spaces", vec![]), "queue name"),
        (NewJob::new("q".repeat(65), vec![]), "queue name"),
        (NewJob::new("q", vec![]).max_attempts(0), "max_attempts"),
        (NewJob::new("q", vec![]).unique_key(""), "unique key"),
    ] {
        let error = db.queue.enqueue(job).await.unwrap_err();
        assert!(
            matches!(&error, QueueError::Invalid { what: w, .. } if *w == what),
            "{what}: {error}"
        );
    }
    let worker = db.queue.worker(fast("w")).await.unwrap();
    assert!(worker.picker("bad name").is_err());
    assert!(
        db.queue
            .worker(fast("w").lease_ttl(Duration::from_millis(100)))
            .await
            .is_err(),
        "a lease shorter than the heartbeat interval"
    );
    let error = pjp_postgres::PgQueue::builder(database_url())
        .schema("Robert'); DROP TABLE students;--")
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(error, QueueError::Invalid { .. }), "{error}");
    assert_eq!(
        db.scalar(&format!("SELECT count(*) FROM {}", db.table()))
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_at_start_is_retried_then_a_clear_error() {
    // A port nobody listens on: bind one, then close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = pjp_postgres::PgQueue::builder(format!("postgres://root@127.0.0.1:{port}/test"))
        .wait(Duration::from_millis(300))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(error, QueueError::Unreachable { .. }), "{error}");
    assert!(
        error.to_string().contains(&format!("127.0.0.1:{port}")),
        "{error}"
    );
    assert_eq!(error.class(), ErrorClass::Transient);
    let error = pjp_postgres::PgQueue::connect("mysql://nope")
        .await
        .unwrap_err();
    assert!(matches!(error, QueueError::Invalid { .. }), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_follow_priority_then_age_and_are_leases() {
    let db = TestDb::new().await;
    db.queue
        .enqueue_many(vec![
            NewJob::new("q", b"low-old".to_vec()),
            NewJob::new("q", b"high".to_vec()).priority(50),
            NewJob::new("q", b"low-new".to_vec()),
            NewJob::new("q", b"later".to_vec())
                .priority(100)
                .run_after(Duration::from_secs(3600)),
            NewJob::new("other", b"other queue".to_vec()).priority(100),
        ])
        .await
        .unwrap();
    let worker = db.queue.worker(fast("w1")).await.unwrap();
    let picker = worker.picker("q").unwrap();
    let got = claim(&picker, 10).await;
    let inputs: Vec<&[u8]> = got.iter().map(|(_, i)| i.as_slice()).collect();
    assert_eq!(inputs, [&b"high"[..], b"low-old", b"low-new"]);
    assert_eq!(worker.leases_held(), 3);
    let row = db.queue.job(got[0].0.id).await.unwrap().unwrap();
    assert_eq!(row.status, "running");
    assert_eq!(row.lease_owner.as_deref(), Some("w1"));
    assert_eq!(row.token, got[0].0.token);
    assert_eq!(row.token, 1, "the first claim's token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_pickers_over_10k_jobs_never_share_a_job() {
    let db = TestDb::new().await;
    db.enqueue_numbered("c", 10_000).await;
    let worker = db.queue.worker(fast("w")).await.unwrap();
    let held = std::sync::Arc::new(std::sync::Mutex::new(HashSet::new()));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let picker = worker.picker("c").unwrap().exit_when_empty(true);
            let saver: Saver = worker.saver();
            let held = held.clone();
            tokio::spawn(async move {
                let mut done = 0usize;
                loop {
                    let jobs = match picker.pick_many(32).await.unwrap() {
                        Picked::Some(jobs) => jobs,
                        Picked::Empty => continue,
                        Picked::Exhausted => return done,
                    };
                    for job in &jobs {
                        assert!(
                            held.lock().unwrap().insert(job.meta.id),
                            "job {} claimed while held",
                            job.meta.id
                        );
                    }
                    let results: Vec<JobResult<Vec<u8>, String>> =
                        jobs.iter().map(|j| Ok(j.input.to_vec())).collect();
                    let batch: Vec<_> = results.iter().zip(jobs.iter().map(|j| &j.meta)).collect();
                    for (job, outcome) in jobs.iter().zip(saver.save_many(&batch).await) {
                        outcome.unwrap();
                        held.lock().unwrap().remove(&job.meta.id);
                    }
                    done += jobs.len();
                }
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert_eq!(total, 10_000);
    let t = db.table();
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM {t} WHERE status = 'succeeded' AND token = 1"
        ))
        .await,
        10_000,
        "every job done once, by its first claim"
    );
    assert_eq!(
        db.scalar(&format!("SELECT count(*) FROM {t} WHERE result <> payload"))
            .await,
        0
    );
}

/// Four pickers of `worker` claim (32 at a time) and save until the queue
/// is empty; the ids they did, each checked to be done once.
async fn drain_with_four_pickers(worker: &pjp_postgres::PgWorker) -> HashSet<i64> {
    drain_with(worker, 4, 32).await.0
}

/// `pickers` pickers of `worker` claim (`batch` at a time) and save until
/// the queue is empty; the ids they did, each checked to be done once, and
/// how many picks got jobs.
async fn drain_with(
    worker: &pjp_postgres::PgWorker,
    pickers: usize,
    batch: usize,
) -> (HashSet<i64>, usize) {
    let tasks: Vec<_> = (0..pickers)
        .map(|_| {
            let picker = worker.picker("c").unwrap().exit_when_empty(true);
            let saver: Saver = worker.saver();
            tokio::spawn(async move {
                let mut done = Vec::new();
                let mut picks = 0;
                loop {
                    let jobs = match picker.pick_many(batch).await.unwrap() {
                        Picked::Some(jobs) => jobs,
                        Picked::Empty => continue,
                        Picked::Exhausted => return (done, picks),
                    };
                    picks += 1;
                    let results: Vec<JobResult<Vec<u8>, String>> =
                        jobs.iter().map(|j| Ok(j.input.to_vec())).collect();
                    let batch: Vec<_> = results.iter().zip(jobs.iter().map(|j| &j.meta)).collect();
                    for outcome in saver.save_many(&batch).await {
                        outcome.unwrap();
                    }
                    done.extend(jobs.iter().map(|j| j.meta.id));
                }
            })
        })
        .collect();
    let mut ids = HashSet::new();
    let mut picks = 0;
    for task in tasks {
        let (done, made) = task.await.unwrap();
        picks += made;
        for id in done {
            assert!(ids.insert(id), "job {id} done twice");
        }
    }
    (ids, picks)
}

/// Adaptive claims: the window starts at one claim in flight. With a target
/// no claim can meet (1 µs) it never opens and closes below one, to its
/// floor (claims paced, one in flight a sixteenth of the time); with one
/// every claim meets (a minute) it opens for the pickers there are. Either way the pickers
/// share the work without sharing a job, and the worker times every claim
/// statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_claims_open_the_window_only_while_claims_are_fast() {
    let db = TestDb::new().await;
    let enqueue = || db.enqueue_numbered("c", 4_000);
    enqueue().await;
    let slow = db
        .queue
        .worker(fast("slow").adaptive_claims(Duration::from_micros(1)))
        .await
        .unwrap();
    assert_eq!(slow.claim_window(), Some(1.0), "it starts at one claim");
    assert_eq!(drain_with_four_pickers(&slow).await.len(), 4_000);
    assert_eq!(
        slow.claim_window(),
        Some(1.0 / 16.0),
        "no claim was fast: it never opened, and paces its claims"
    );
    let latency = slow.claim_latency();
    assert!(
        latency.count >= 125,
        "4,000 jobs in claims of 32: {latency:?}"
    );
    assert!(latency.p50 > Duration::ZERO && latency.p50 <= latency.p99);
    assert!(latency.p99 <= latency.max);
    // The server's part of the claims that took jobs: part of the whole.
    let server = slow.claim_server_latency();
    assert!((125..=latency.count).contains(&server.count), "{server:?}");
    assert!(server.max > Duration::ZERO, "{server:?}");
    assert!(server.max <= latency.max, "{server:?} within {latency:?}");

    enqueue().await;
    let quick = db
        .queue
        .worker(fast("quick").adaptive_claims(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(drain_with_four_pickers(&quick).await.len(), 4_000);
    let window = quick.claim_window().unwrap();
    // Four pickers keep at most four claims in flight: the window grows
    // only while at least half of it is used, so one step past eight at most.
    assert!(
        (2.0..10.0).contains(&window),
        "opened for four pickers: {window}"
    );
    // Without adaptive claims there is no window.
    let plain = db.queue.worker(fast("plain")).await.unwrap();
    assert_eq!(plain.claim_window(), None);
}

/// Pickers waiting at the adaptive gate are served by the claim of the one
/// let in: a claim takes their batches too (up to 32 jobs), so there are
/// far fewer claim statements than picks, and each job is still done once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pickers_waiting_at_the_gate_share_one_claim() {
    let db = TestDb::new().await;
    db.enqueue_numbered("c", 1_600).await;
    // No claim meets 1 µs: the window stays narrow and the pickers queue.
    let worker = db
        .queue
        .worker(fast("shared").adaptive_claims(Duration::from_micros(1)))
        .await
        .unwrap();
    let (ids, picks) = drain_with(&worker, 16, 4).await;
    assert_eq!(ids.len(), 1_600);
    let statements = worker.claim_latency().count;
    assert!(picks >= 400, "1,600 jobs in picks of at most 4: {picks}");
    assert!(
        statements * 2 <= picks as u64,
        "{statements} claim statements for {picks} picks"
    );
}

/// A picker served by another's claim that has gone by the time its share
/// arrives: the share is handed back at once, burning nothing, and not
/// left leased to a live worker. The claims are held at a table lock so
/// that the order is fixed: X claims first; B and C queue at the gate; B
/// is let in, takes C's batch into its claim, and C goes away while that
/// claim waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_whose_picker_went_away_is_handed_back_at_once() {
    let db = TestDb::new().await;
    db.enqueue_numbered("c", 40).await;
    let worker = db
        .queue
        .worker(
            fast("gone")
                .lease_ttl(Duration::from_secs(60))
                .adaptive_claims(Duration::from_micros(1)),
        )
        .await
        .unwrap();
    let picker = worker.picker("c").unwrap();
    let table = db.table();
    let lock = || async {
        let mut tx = db.queue.pool().begin().await.unwrap();
        sqlx::query(&format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
            .execute(&mut *tx)
            .await
            .unwrap();
        tx
    };
    // A claim of this schema waiting for the lock.
    let claim_waits = || async {
        db.scalar(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%{}.claimable%'",
            db.schema()
        ))
        .await
            == 1
    };
    let pick = |picker: pjp_postgres::PgPicker| {
        Box::pin(async move { picker.pick_many(4).await.unwrap() })
    };

    let held = lock().await;
    let x = tokio::spawn(pick(picker.clone()));
    Wait::new("X's claim to wait for the lock")
        .until_async(claim_waits)
        .await;
    // B, then C, queue at the gate behind X (one poll each puts them in line).
    let mut b = pick(picker.clone());
    let mut c = pick(picker.clone());
    assert!(futures_util::poll!(b.as_mut()).is_pending());
    assert!(futures_util::poll!(c.as_mut()).is_pending());
    held.commit().await.unwrap();
    assert!(matches!(x.await.unwrap(), Picked::Some(ref jobs) if jobs.len() == 4));

    let held = lock().await;
    let b = tokio::spawn(b);
    Wait::new("B's claim, for B and C, to wait for the lock")
        .until_async(claim_waits)
        .await;
    drop(c);
    held.commit().await.unwrap();
    assert!(matches!(b.await.unwrap(), Picked::Some(ref jobs) if jobs.len() == 4));

    // X's 4 and B's 4 are held; C's 4 are back in the queue as they were.
    let count = |status: &'static str| {
        let sql = format!(
            "SELECT count(*) FROM {table} WHERE status = '{status}' AND lost_leases = 0 AND attempts = 0"
        );
        let db = &db;
        async move { db.scalar(&sql).await }
    };
    assert_eq!(count("running").await, 8);
    assert_eq!(count("queued").await, 32);
    assert!(matches!(
        picker.pick_many(40).await.unwrap(),
        Picked::Some(ref jobs) if jobs.len() == 32
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_rescued_without_burning_an_attempt_and_the_stale_save_is_fenced() {
    let db = TestDb::new().await;
    let id = db
        .queue
        .enqueue(NewJob::new("q", b"x".to_vec()))
        .await
        .unwrap()
        .id;
    // Worker A never heartbeats during the test: its lease expires when the
    // test says so (a worker stalled past its lease, or cut off).
    let stalled = WorkerConfig::new("stalled")
        .heartbeat_interval(Duration::from_secs(600))
        .lease_ttl(Duration::from_secs(601));
    let a = db.queue.worker(stalled).await.unwrap();
    let a_picker = a.picker("q").unwrap();
    let a_saver: Saver = a.saver();
    let (stale, _) = claim(&a_picker, 1).await.pop().unwrap();
    db.exec(&format!(
        "UPDATE {} SET lease_expires_at = now() - interval '1 second' WHERE id = {id}",
        db.table()
    ))
    .await;

    let b = db.queue.worker(fast("live")).await.unwrap();
    let b_picker = b.picker("q").unwrap();
    let rescued = Wait::new("the rescue")
        .try_until_some(|| async { claim(&b_picker, 1).await.pop() })
        .await;
    let Ok((fresh, _)) = rescued else {
        panic!(
            "no rescue: {:?}, a {:?}, b {:?}",
            db.queue.job(id).await,
            a.stats(),
            b.stats()
        );
    };
    assert_eq!(fresh.id, id);
    assert_eq!(fresh.token, stale.token + 1);
    let row = db.queue.job(id).await.unwrap().unwrap();
    assert_eq!(
        (row.lost_leases, row.attempts),
        (1, 0),
        "a lost lease, not an attempt"
    );
    assert_eq!(a.stats().rescued + b.stats().rescued, 1, "rescued once");

    // The stalled worker wakes up and saves a failure: rejected, visibly.
    // (A success would be accepted late: `tests/late.rs`.)
    let error = a_saver
        .save(
            &Err(pjp_core::ExecError::Failed("stale".to_owned())),
            &stale,
        )
        .await
        .unwrap_err();
    assert_eq!(a_saver.classify(&error), ErrorClass::LostClaim);
    assert!(
        matches!(error, QueueError::Fenced { held, current, .. } if held == stale.token && current == fresh.token),
        "{error}"
    );
    assert_eq!(a.stats().fenced, 1);
    // A stale release changes nothing either.
    a_picker
        .release(stale, ReleaseReason::Abandon)
        .await
        .unwrap();
    assert_eq!(db.queue.job(id).await.unwrap().unwrap().status, "running");

    // The new holder's result stands.
    let b_saver: Saver = b.saver();
    b_saver.save(&Ok(b"fresh".to_vec()), &fresh).await.unwrap();
    assert_eq!(db.queue.result(id).await.unwrap().unwrap(), &b"fresh"[..]);
    // Saving again (a retry after a lost reply) is idempotent.
    b_saver.save(&Ok(b"fresh".to_vec()), &fresh).await.unwrap();
    assert_eq!(b.stats().fenced, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_keeps_a_live_lease_and_cancels_a_lost_one() {
    let db = TestDb::new().await;
    let ids: Vec<i64> = db
        .queue
        .enqueue_many(vec![NewJob::new("q", vec![1]), NewJob::new("q", vec![2])])
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let worker = db.queue.worker(fast("hb")).await.unwrap();
    let picker = worker.picker("q").unwrap();
    let claimed = claim(&picker, 2).await;
    assert_eq!(claimed.len(), 2);
    // Several lease lengths pass: the heartbeat keeps both.
    let beats = worker.stats().heartbeats;
    eventually("four heartbeats", || worker.stats().heartbeats >= beats + 4).await;
    for id in &ids {
        assert_eq!(db.queue.job(*id).await.unwrap().unwrap().status, "running");
    }
    // An operator cancels one: the heartbeat notices and forgets it.
    assert!(db.queue.cancel(ids[0]).await.unwrap());
    eventually("the lost lease noticed", || worker.stats().lost_leases == 1).await;
    assert_eq!(worker.leases_held(), 1);
    assert_eq!(
        db.queue.job(ids[0]).await.unwrap().unwrap().status,
        "cancelled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_retry_after_a_backoff_then_die_and_can_be_requeued() {
    let db = TestDb::new().await;
    let id = db
        .queue
        .enqueue(NewJob::new("q", vec![7]).max_attempts(2))
        .await
        .unwrap()
        .id;
    let config = fast("w").retry_backoff(Duration::from_secs(2), Duration::from_secs(2));
    let worker = db.queue.worker(config).await.unwrap();
    let picker = worker.picker("q").unwrap();
    let saver: Saver = worker.saver();
    let failure: JobResult<Vec<u8>, String> = Err(ExecError::Failed("bad luck".into()));

    let (job, _) = claim(&picker, 1).await.pop().unwrap();
    assert_eq!(pjp_core::JobMeta::attempt(&job), 1);
    saver.save(&failure, &job).await.unwrap();
    let row = db.queue.job(id).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("queued", 1));
    assert!(
        row.run_after_in > 0.5,
        "retried after a back-off (1–2 s), not at once: {}",
        row.run_after_in
    );
    let (job, _) = claim_eventually(&picker, "the retry to become claimable").await;
    assert_eq!(pjp_core::JobMeta::attempt(&job), 2);
    saver
        .save(
            &Err(ExecError::Panicked {
                message: "boom".into(),
            }),
            &job,
        )
        .await
        .unwrap();
    let row = db.queue.job(id).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("dead", 2));
    let dead = db.queue.dead_jobs(Some("q"), 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].last_error.contains("boom"), "{:?}", dead[0]);

    assert!(db.queue.requeue(id).await.unwrap());
    assert!(!db.queue.requeue(id).await.unwrap(), "no longer dead");
    let row = db.queue.job(id).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("queued", 0));
    assert_eq!(db.queue.requeue_dead(None).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failures_and_cancellations() {
    let db = TestDb::new().await;
    db.queue
        .enqueue_many(vec![NewJob::new("q", vec![1]), NewJob::new("q", vec![2])])
        .await
        .unwrap();
    let worker = db.queue.worker(fast("w")).await.unwrap();
    let picker = worker.picker("q").unwrap();
    let saver: Saver = worker.saver().permanent_if(
        |e: &ExecError<String>| matches!(e, ExecError::Failed(m) if m.starts_with("invalid")),
    );
    let jobs = claim(&picker, 2).await;
    let results: [JobResult<Vec<u8>, String>; 2] = [
        Err(ExecError::Failed("invalid input".into())),
        Err(ExecError::Cancelled),
    ];
    let batch = [(&results[0], &jobs[0].0), (&results[1], &jobs[1].0)];
    for outcome in saver.save_many(&batch).await {
        outcome.unwrap();
    }
    let failed = db.queue.job(jobs[0].0.id).await.unwrap().unwrap();
    assert_eq!((failed.status.as_str(), failed.attempts), ("failed", 1));
    let cancelled = db.queue.job(jobs[1].0.id).await.unwrap().unwrap();
    assert_eq!(
        (cancelled.status.as_str(), cancelled.attempts),
        ("queued", 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_burn_nothing_and_the_job_comes_back_at_once() {
    let db = TestDb::new().await;
    db.queue
        .enqueue_many((0..4).map(|i| NewJob::new("q", vec![i])).collect())
        .await
        .unwrap();
    // A save that gave up pauses its job for the retry base (10 s here),
    // so that only the drained jobs are claimable in the second claim.
    let config = fast("w").retry_backoff(Duration::from_secs(10), Duration::from_secs(10));
    let worker = db.queue.worker(config).await.unwrap();
    let picker = worker.picker("q").unwrap();
    let jobs = claim(&picker, 4).await;
    let metas: Vec<PgJob> = jobs.iter().map(|(m, _)| *m).collect();
    for outcome in picker
        .release_many(metas[..3].to_vec(), ReleaseReason::Drain)
        .await
    {
        outcome.unwrap();
    }
    picker
        .release(metas[3], ReleaseReason::SaveGaveUp)
        .await
        .unwrap();
    assert_eq!(worker.leases_held(), 0);
    let t = db.table();
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM {t} WHERE status = 'queued' AND attempts = 0 AND lost_leases = 0"
        ))
        .await,
        4
    );
    let paused = db.queue.job(metas[3].id).await.unwrap().unwrap();
    assert!(paused.last_error.unwrap_or_default().contains("gave up"));
    assert!(paused.run_after_in > 5.0, "paused: {}", paused.run_after_in);
    let again = claim(&picker, 4).await;
    assert_eq!(again.len(), 3, "released on drain: claimable at once");
    assert!(again.iter().all(|(m, _)| m.token == 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_wakes_an_idle_picker_long_before_its_poll() {
    let db = TestDb::new().await;
    let config = fast("idle").poll_interval(Duration::from_secs(120));
    let worker = db.queue.worker(config).await.unwrap();
    let picker = worker.picker("q").unwrap();
    // Loops: the listener's first connect wakes idle picks once, spuriously.
    let pick = tokio::spawn(async move {
        loop {
            let got = claim(&picker, 8).await;
            if !got.is_empty() {
                return got;
            }
        }
    });
    eventually("the pick to go idle", || worker.stats().idle_waits >= 1).await;
    let enqueued = std::time::Instant::now();
    db.queue
        .enqueue(NewJob::new("q", b"wake".to_vec()))
        .await
        .unwrap();
    // The poll interval is two minutes: a pick that ends long before was
    // woken by the notification.
    let got = within("the idle pick to be woken", pick).await.unwrap();
    let waited = enqueued.elapsed();
    assert!(
        waited < Duration::from_secs(60),
        "woken after {waited:?}: by the poll, not the notification"
    );
    assert_eq!(got.len(), 1);
    assert!(worker.stats().notifications >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_purge() {
    let db = TestDb::new().await;
    db.queue
        .enqueue_many((0..6).map(|i| NewJob::new("s", vec![i])).collect())
        .await
        .unwrap();
    let worker = db.queue.worker(fast("stats-w")).await.unwrap();
    let picker = worker.picker("s").unwrap();
    let saver: Saver = worker.saver();
    let jobs = claim(&picker, 3).await;
    saver.save(&Ok(vec![1]), &jobs[0].0).await.unwrap();
    saver.save(&Ok(vec![1]), &jobs[1].0).await.unwrap();
    let stats = db.queue.stats().await.unwrap();
    assert_eq!(stats.len(), 1);
    let s = &stats[0];
    assert_eq!(
        (s.count("queued"), s.count("running"), s.count("succeeded")),
        (3, 1, 2)
    );
    assert!(s.oldest_queued.is_some());
    assert_eq!(s.lease_owners.get("stats-w"), Some(&1));
    assert_eq!(s.finished_last_minute, 2);
    let purged = db.queue.purge(Duration::ZERO, false).await.unwrap();
    assert_eq!(purged.rows, 2);
    assert_eq!(
        db.scalar(&format!("SELECT count(*) FROM {}", db.table()))
            .await,
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_losing_its_lease_ends_dead_not_looping() {
    let db = TestDb::new().await;
    let id = db
        .queue
        .enqueue(NewJob::new("q", b"kills its worker".to_vec()).max_lost_leases(2))
        .await
        .unwrap()
        .id;
    let worker = db.queue.worker(fast("w")).await.unwrap();
    let picker = worker.picker("q").unwrap();
    // Each round: a worker takes the job and "dies" (its lease is expired
    // behind its back, as if it stopped heartbeating).
    let stalled = WorkerConfig::new("doomed")
        .heartbeat_interval(Duration::from_secs(600))
        .lease_ttl(Duration::from_secs(601));
    let doomed = db.queue.worker(stalled).await.unwrap();
    let doomed_picker = doomed.picker("q").unwrap();
    for round in 1..=2 {
        let (job, _) = claim_eventually(&doomed_picker, "the job").await;
        assert_eq!(job.lost_leases, round - 1);
        db.exec(&format!(
            "UPDATE {} SET lease_expires_at = now() - interval '1 second' WHERE id = {id}",
            db.table()
        ))
        .await;
        eventually_async("the rescue", || async {
            db.queue.job(id).await.unwrap().unwrap().status != "running"
        })
        .await;
    }
    let row = db.queue.job(id).await.unwrap().unwrap();
    assert_eq!(
        (row.status.as_str(), row.lost_leases, row.attempts),
        ("dead", 2, 0)
    );
    assert!(row.last_error.unwrap().contains("lost its lease 2 times"));
    assert!(claim(&picker, 1).await.is_empty(), "never handed out again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picks_go_on_when_the_workers_connections_and_listener_are_cut() {
    let app = format!("pjp-listen-{:x}", fastrand::u64(..));
    let db = TestDb::new().await;
    let handle = db.handle(|b| b.application_name(&app)).await;
    let worker = handle.worker(fast("w")).await.unwrap();
    let picker = worker.picker("q").unwrap();
    // Several pool connections at once, so that the cut leaves several stale.
    let (a, b, c) = tokio::join!(claim(&picker, 1), claim(&picker, 1), claim(&picker, 1));
    assert!(a.is_empty() && b.is_empty() && c.is_empty());
    let killed = db
        .scalar(&format!(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE application_name = '{app}') AS k"
        ))
        .await;
    assert!(killed >= 2, "pool and listener connections cut ({killed})");
    // The pool does not ping before each use: the next statements find the
    // stale connections, and run again on live ones instead of failing.
    assert!(claim(&picker, 1).await.is_empty());
    db.queue
        .enqueue(NewJob::new("q", b"after".to_vec()))
        .await
        .unwrap();
    // The pool reconnects; polling finds the job whether or not the
    // listener is back yet.
    let (_, input) = claim_eventually(&picker, "the job after the cut").await;
    assert_eq!(input, b"after");
    // The listener comes back: a later enqueue is notified again.
    // Each check enqueues a job: one every 100 ms until one is notified.
    let before = worker.stats().notifications;
    Wait::new("the listener to reconnect")
        .every(Duration::from_millis(100))
        .until_async(|| async {
            db.queue
                .enqueue(NewJob::new("q", b"ping".to_vec()))
                .await
                .unwrap();
            worker.stats().notifications > before
        })
        .await;
}

/// A password in the database or store URL shows in no `Debug` output and
/// no error (the local server trusts every login, so the URL still works).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_shows_nowhere() {
    const SECRET: &str = "s3cretPw";
    let mut url = url::Url::parse(&database_url()).unwrap();
    url.set_password(Some(SECRET)).unwrap();
    let store = pjp_postgres::PayloadStore::new(
        std::sync::Arc::new(object_store::memory::InMemory::new()),
        format!("s3://key:{SECRET}@bucket"),
    );
    let builder = PgQueue::builder(url.as_str()).store(store.clone());
    assert!(!format!("{builder:?}").contains(SECRET), "{builder:?}");
    assert!(!store.url().contains(SECRET), "{}", store.url());
    let queue = builder.connect().await.unwrap();
    assert!(!format!("{queue:?}").contains(SECRET), "{queue:?}");
    let bad = format!("postgres://u:{SECRET}@127.0.0.1:99999/db?password={SECRET}");
    let error = PgQueue::connect(bad).await.unwrap_err().to_string();
    assert!(!error.contains(SECRET) && error.contains("****"), "{error}");
    let error = pjp_postgres::PayloadStore::open(&format!("ftp://u:{SECRET}@host/x"))
        .unwrap_err()
        .to_string();
    assert!(!error.contains(SECRET) && error.contains("****"), "{error}");
}
