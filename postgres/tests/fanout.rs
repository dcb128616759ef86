//! Dynamic fan-out: a job's save creates jobs atomically with its own fenced
//! completion; a group grows as its members are generated; a parent's
//! executor reads its children's results; a parent made claimable wakes an
//! idle worker at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{TestDb, fast};
use pjp_core::{ErrorClass, JobPicker, JobSaver, Picked};
use pjp_postgres::{
    FanOut, FanOutSaver, NewJob, PayloadStore, PgJob, PgPicker, ResultRef, Spawn, WorkerConfig,
};
use pjp_testkit::wait::within;

type Saver = FanOutSaver<Vec<u8>, String>;

async fn claim_one(picker: &PgPicker) -> Option<PgJob> {
    match picker.pick_many(1).await.expect("pick") {
        Picked::Some(mut jobs) => jobs.pop().map(|j| j.meta),
        Picked::Empty | Picked::Exhausted => None,
    }
}

async fn count(db: &TestDb, filter: &str) -> i64 {
    db.scalar(&format!(
        "SELECT count(*) FROM {} WHERE {filter}",
        db.table()
    ))
    .await
}

/// A witness job enqueued and claimed by a fresh worker `w`.
async fn witness_claimed(db: &TestDb) -> (pjp_postgres::PgWorker, PgJob) {
    db.queue
        .enqueue(NewJob::new("witness", b"batch".to_vec()))
        .await
        .unwrap();
    let worker = db.queue.worker(fast("w")).await.unwrap();
    let job = claim_one(&worker.picker("witness").unwrap()).await.unwrap();
    (worker, job)
}

fn tree_of(n: u8) -> Spawn {
    Spawn::tree(
        NewJob::new("aggregate", b"agg".to_vec()).kind("aggregate"),
        (0..n)
            .map(|i| NewJob::new("basic", vec![i]).kind("basic"))
            .collect(),
    )
}

/// The runner repeats a save whose reply was lost: the repeat is
/// recognised as done and creates nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_fan_out_save_spawns_once() {
    let db = TestDb::new().await;
    let (worker, job) = witness_claimed(&db).await;
    let saver: Saver = worker.fan_out_saver();
    let output = Ok(FanOut {
        output: b"witness done".to_vec(),
        spawn: tree_of(3),
    });
    saver.save(&output, &job).await.unwrap();
    saver.save(&output, &job).await.unwrap();
    assert_eq!(count(&db, "queue = 'aggregate'").await, 1);
    assert_eq!(count(&db, "queue = 'basic'").await, 3);
}

/// A fan-out whose spawned jobs cannot be created rolls back with its
/// completion: nothing is counted as saved, and the claim still holds the
/// job (its heartbeat keeps extending the lease) so a corrected save can
/// land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_that_rolls_back_counts_nothing_and_keeps_its_lease() {
    let db = TestDb::new().await;
    let (worker, job) = witness_claimed(&db).await;
    let saver: Saver = worker.fan_out_saver();
    let invalid = Spawn::jobs(vec![NewJob::new("basic", vec![1]).max_attempts(0)]);
    let error = saver
        .save(
            &Ok(FanOut {
                output: b"witness done".to_vec(),
                spawn: invalid,
            }),
            &job,
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("max_attempts"), "{error}");
    assert_eq!(count(&db, "status = 'running'").await, 1);
    assert_eq!(worker.stats().succeeded, 0, "{:?}", worker.stats());
    // Still held: the heartbeat extends it.
    assert_eq!(worker.heartbeat_now().await.unwrap(), 1);

    saver
        .save(
            &Ok(FanOut {
                output: b"witness done".to_vec(),
                spawn: tree_of(2),
            }),
            &job,
        )
        .await
        .unwrap();
    assert_eq!(worker.stats().succeeded, 1);
    assert_eq!(
        worker.heartbeat_now().await.unwrap(),
        0,
        "let go once saved"
    );
    assert_eq!(count(&db, "queue = 'basic'").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_creates_its_tree_with_its_completion() {
    let db = TestDb::new().await;
    let (worker, job) = witness_claimed(&db).await;
    let saver: Saver = worker.fan_out_saver();
    let output = FanOut {
        output: b"witness done".to_vec(),
        spawn: tree_of(3),
    };
    saver.save(&Ok(output), &job).await.unwrap();
    assert_eq!(
        count(&db, &format!("id = {} AND status = 'succeeded'", job.id)).await,
        1
    );
    assert_eq!(
        count(
            &db,
            "queue = 'aggregate' AND status = 'waiting' AND waiting_on = 3"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &db,
            "queue = 'basic' AND status = 'queued' AND parent_id IS NOT NULL"
        )
        .await,
        3
    );
    // A failure spawns nothing and completes as usual.
    db.queue
        .enqueue(NewJob::new("witness", b"again".to_vec()))
        .await
        .unwrap();
    let job = claim_one(&worker.picker("witness").unwrap()).await.unwrap();
    saver
        .save(&Err(pjp_core::ExecError::Failed("boom".to_owned())), &job)
        .await
        .unwrap();
    assert_eq!(count(&db, "queue = 'basic'").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_workers_fan_out_is_rejected_whole() {
    let db = TestDb::new().await;
    db.queue
        .enqueue(NewJob::new("witness", b"batch".to_vec()))
        .await
        .unwrap();
    // A late success would be accepted whole (`tests/late.rs`); this worker
    // rejects late results, as every stale write was once.
    let strict = db
        .handle(|b| b.late_results(pjp_core::runner::LateResults::Reject))
        .await;
    let stale = strict.worker(fast("stale")).await.unwrap();
    let old = claim_one(&stale.picker("witness").unwrap()).await.unwrap();
    // Its lease runs out (moved back in time) and the job is rescued and
    // claimed by another worker.
    db.exec(&format!(
        "UPDATE {} SET lease_expires_at = now() - interval '1 minute' WHERE id = {}",
        db.table(),
        old.id
    ))
    .await;
    let live = db.queue.worker(fast("live")).await.unwrap();
    // Rescued now (or already, by the new worker's first background rescue).
    live.rescue_now().await.unwrap();
    let new = claim_one(&live.picker("witness").unwrap()).await.unwrap();
    assert_ne!(new.token, old.token);

    let stale_saver: Saver = stale.fan_out_saver();
    let rejected = stale_saver
        .save(
            &Ok(FanOut {
                output: b"stale".to_vec(),
                spawn: tree_of(4),
            }),
            &old,
        )
        .await
        .expect_err("the stale save must be fenced");
    assert_eq!(rejected.class(), ErrorClass::LostClaim, "{rejected}");
    assert_eq!(
        count(&db, "queue <> 'witness'").await,
        0,
        "no orphan children"
    );

    let live_saver: Saver = live.fan_out_saver();
    live_saver
        .save(
            &Ok(FanOut {
                output: b"live".to_vec(),
                spawn: tree_of(4),
            }),
            &new,
        )
        .await
        .unwrap();
    assert_eq!(
        count(&db, "queue = 'basic'").await,
        4,
        "created once, by the holder"
    );
    assert_eq!(count(&db, "queue = 'aggregate'").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_grows_with_its_generated_members_and_its_parent_reads_their_results() {
    let store = PayloadStore::open("memory://").unwrap().inline_limit(64);
    let db = TestDb::with(|b| b.store(store)).await;
    // The group: a waiting parent whose only known member is the generator.
    let tree = db
        .queue
        .enqueue_tree(
            NewJob::new("final", b"final".to_vec()),
            vec![NewJob::new("generate", b"gen".to_vec())],
        )
        .await
        .unwrap();
    let worker = db.queue.worker(fast("w")).await.unwrap();
    let saver: Saver = worker.fan_out_saver();
    let generator = claim_one(&worker.picker("generate").unwrap())
        .await
        .unwrap();
    let members = (0..5u8).map(|i| NewJob::new("member", vec![i])).collect();
    saver
        .save(
            &Ok(FanOut {
                output: b"generated 5".to_vec(),
                spawn: Spawn::jobs(members).join(tree.parent),
            }),
            &generator,
        )
        .await
        .unwrap();
    // 1 (the generator) + 5 - 1 (the generator is done) = 5 to wait for.
    assert_eq!(
        count(
            &db,
            &format!(
                "id = {} AND status = 'waiting' AND waiting_on = 5",
                tree.parent
            )
        )
        .await,
        1
    );
    let members = worker.picker("member").unwrap();
    for i in 0..5u8 {
        let job = claim_one(&members).await.unwrap();
        assert_eq!(
            count(&db, &format!("id = {} AND status = 'queued'", tree.parent)).await,
            0
        );
        // Member 4's result is large: it goes to the object store.
        let output = if i == 4 { vec![i; 1_000] } else { vec![i; 8] };
        saver.save(&Ok(FanOut::only(output)), &job).await.unwrap();
    }
    assert_eq!(
        count(&db, &format!("id = {} AND status = 'queued'", tree.parent)).await,
        1
    );

    let children = db.queue.children(tree.parent).await.unwrap();
    assert_eq!(children.len(), 6, "the generator and its five members");
    assert!(children.iter().all(|c| c.status == "succeeded"));
    assert!(matches!(
        children.last().unwrap().result,
        Some(ResultRef::Stored { .. })
    ));
    assert!(matches!(children[1].result, Some(ResultRef::Inline(_))));
    let last = db
        .queue
        .child_result(children.last().unwrap())
        .await
        .unwrap();
    assert_eq!(last.as_ref(), vec![4u8; 1_000].as_slice());
    let first = db.queue.child_result(&children[0]).await.unwrap();
    assert_eq!(first.as_ref(), b"generated 5");
    // Joining a group that is not waiting is refused, and nothing is written.
    db.queue
        .enqueue(NewJob::new("generate", b"late".to_vec()))
        .await
        .unwrap();
    let late = claim_one(&worker.picker("generate").unwrap())
        .await
        .unwrap();
    let refused = saver
        .save(
            &Ok(FanOut {
                output: b"late".to_vec(),
                spawn: Spawn::jobs(vec![NewJob::new("member", vec![9])]).join(tree.parent),
            }),
            &late,
        )
        .await
        .expect_err("the group is queued already");
    assert!(refused.to_string().contains("not waiting"), "{refused}");
    assert_eq!(count(&db, "queue = 'member'").await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_childs_save_wakes_an_idle_worker_at_once() {
    let db = TestDb::new().await;
    let tree = db
        .queue
        .enqueue_tree(
            NewJob::new("root", b"root".to_vec()),
            vec![NewJob::new("leaf", b"leaf".to_vec())],
        )
        .await
        .unwrap();
    // An idle worker on the parent's queue that would poll only every minute.
    let slow_poll = WorkerConfig::new("idle").poll_interval(Duration::from_secs(60));
    let idle = db.handle(|q| q).await.worker(slow_poll).await.unwrap();
    let roots = idle.picker("root").unwrap();
    let waiting = tokio::spawn(async move {
        let started = Instant::now();
        // A wake-up may come early (the enqueue's own notification): pick
        // again until the parent comes, each pick waiting up to 60 s.
        for _ in 0..100 {
            if let Picked::Some(_) = roots.pick_many(1).await.expect("pick") {
                return (true, started.elapsed());
            }
        }
        (false, started.elapsed())
    });
    let worker = db.queue.worker(fast("leaf-worker")).await.unwrap();
    let leaf = claim_one(&worker.picker("leaf").unwrap()).await.unwrap();
    let saver: Saver = worker.fan_out_saver();
    saver
        .save(&Ok(FanOut::only(b"done".to_vec())), &leaf)
        .await
        .unwrap();
    let (claimed, waited) = within("the idle worker to be woken", waiting)
        .await
        .unwrap();
    assert!(claimed, "the parent {} was claimed", tree.parent);
    assert!(waited < Duration::from_secs(60), "{waited:?}");
}
