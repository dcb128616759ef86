//! Trees of jobs: a parent becomes claimable in the transaction of its last
//! child's completion, exactly once; a dead child settles its parent; a tree
//! enqueued twice is created once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestDb, fast};
use pjp_core::{ExecError, JobPicker, JobSaver, Picked};
use pjp_postgres::{NewJob, PgJob, PgPicker};
use pjp_testkit::wait::eventually_async;

type Saver = pjp_postgres::PgSaver<Vec<u8>, String>;

async fn claim_one(picker: &PgPicker) -> Option<(PgJob, Vec<u8>)> {
    match picker.pick_many(1).await.expect("pick") {
        Picked::Some(mut jobs) => jobs.pop().map(|j| (j.meta, j.input.to_vec())),
        Picked::Empty | Picked::Exhausted => None,
    }
}

async fn status(db: &TestDb, id: i64) -> (String, i64) {
    sqlx::query_as::<_, (String, i32)>(&format!(
        "SELECT status::text, waiting_on FROM {} WHERE id = $1",
        db.table()
    ))
    .bind(id)
    .fetch_one(db.queue.pool())
    .await
    .map(|(s, w)| (s, i64::from(w)))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_two_children_completing_at_once_queue_their_parent_exactly_once() {
    const ROUNDS: usize = 1_000;
    let db = TestDb::new().await;
    // Two "machines": separate handles, pools and workers.
    let (a, b) = (db.handle(|q| q).await, db.handle(|q| q).await);
    let (a, b) = (
        a.worker(fast("a")).await.unwrap(),
        b.worker(fast("b")).await.unwrap(),
    );
    let (pick_a, pick_b) = (a.picker("leaf").unwrap(), b.picker("leaf").unwrap());
    let (save_a, save_b): (Saver, Saver) = (a.saver(), b.saver());
    let root = db.queue.worker(fast("root")).await.unwrap();
    let roots = root.picker("root").unwrap();
    for round in 0..ROUNDS {
        let tree = db
            .queue
            .enqueue_tree(
                NewJob::new("root", format!("root {round}").into_bytes()),
                vec![
                    NewJob::new("leaf", b"left".to_vec()),
                    NewJob::new("leaf", b"right".to_vec()),
                ],
            )
            .await
            .unwrap();
        assert!(tree.created);
        assert_eq!(status(&db, tree.parent).await, ("waiting".to_owned(), 2));
        if round == 0 {
            // (Once: an empty pick waits out the poll interval.)
            assert!(
                claim_one(&roots).await.is_none(),
                "a waiting parent is not claimable"
            );
        }
        let (job_a, _) = claim_one(&pick_a).await.expect("a leaf for a");
        let (job_b, _) = claim_one(&pick_b).await.expect("a leaf for b");
        // Both completions in flight at once, on two connections.
        let (result_a, result_b) = (Ok(b"A".to_vec()), Ok(b"B".to_vec()));
        let (done_a, done_b) = tokio::join!(
            save_a.save(&result_a, &job_a),
            save_b.save(&result_b, &job_b)
        );
        done_a.unwrap();
        done_b.unwrap();
        assert_eq!(
            status(&db, tree.parent).await,
            ("queued".to_owned(), 0),
            "round {round}: the parent is queued by the last completion"
        );
        let (parent, input) = claim_one(&roots).await.expect("the parent is claimable");
        assert_eq!(parent.id, tree.parent);
        assert_eq!(input, format!("root {round}").into_bytes());
        // Claimed once: its first claim's token, and nothing left queued.
        assert_eq!(parent.token, 1, "round {round}");
        assert_eq!(
            db.scalar(&format!(
                "SELECT count(*) FROM {} WHERE queue = 'root' AND status = 'queued'",
                db.table()
            ))
            .await,
            0
        );
        let saver: Saver = root.saver();
        saver.save(&Ok(Vec::new()), &parent).await.unwrap();
    }
    let trees = db
        .scalar(&format!(
            "SELECT count(*) FROM {} WHERE queue = 'root' AND status = 'succeeded' AND token = 1",
            db.table()
        ))
        .await;
    assert_eq!(trees, ROUNDS as i64, "every parent claimed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_child_settles_its_parent_with_the_childs_error() {
    let db = TestDb::new().await;
    let worker = db.queue.worker(fast("w")).await.unwrap();
    let picker = worker.picker("leaf").unwrap();
    let saver: Saver = worker.saver();
    let tree = db
        .queue
        .enqueue_tree(
            NewJob::new("root", b"root".to_vec()),
            vec![
                NewJob::new("leaf", b"fine".to_vec()),
                NewJob::new("leaf", b"doomed".to_vec()).max_attempts(1),
            ],
        )
        .await
        .unwrap();
    for _ in 0..2 {
        let (job, input) = claim_one(&picker).await.expect("a leaf");
        let result = if input == b"doomed" {
            Err(ExecError::Failed("out of GPU memory".to_owned()))
        } else {
            Ok(b"ok".to_vec())
        };
        saver.save(&result, &job).await.unwrap();
    }
    let doomed = tree.children[1];
    let parent = db.queue.job(tree.parent).await.unwrap().unwrap();
    assert_eq!(parent.status, "dead");
    let error = parent.last_error.unwrap_or_default();
    assert!(
        error.contains(&format!("child job {doomed} failed"))
            && error.contains("out of GPU memory"),
        "{error}"
    );
    assert_eq!(db.queue.job(doomed).await.unwrap().unwrap().status, "dead");
    // The dead parent is listed for an operator, never claimed.
    let dead = db.queue.dead_jobs(Some("root"), 10).await.unwrap();
    assert_eq!(dead.iter().map(|d| d.id).collect::<Vec<_>>(), [tree.parent]);
    let roots = worker.picker("root").unwrap();
    assert!(claim_one(&roots).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_enqueued_again_is_created_once() {
    let db = TestDb::new().await;
    let tree = || {
        db.queue.enqueue_tree(
            NewJob::new("root", b"r".to_vec()).unique_key("batch-1/root"),
            (0..3)
                .map(|i| NewJob::new("leaf", vec![i]).unique_key(format!("batch-1/leaf-{i}")))
                .collect(),
        )
    };
    let first = tree().await.unwrap();
    assert!(first.created);
    assert_eq!(first.children.len(), 3);
    let again = tree().await.unwrap();
    assert!(!again.created);
    assert_eq!(again.parent, first.parent);
    assert_eq!(
        db.scalar(&format!("SELECT count(*) FROM {}", db.table()))
            .await,
        4
    );
    // No children: the parent is queued at once.
    let lone = db
        .queue
        .enqueue_tree(NewJob::new("root", b"alone".to_vec()), Vec::new())
        .await
        .unwrap();
    assert_eq!(status(&db, lone.parent).await, ("queued".to_owned(), 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_dead_of_lost_leases_settles_its_parent() {
    let db = TestDb::new().await;
    let tree = db
        .queue
        .enqueue_tree(
            NewJob::new("root", b"root".to_vec()),
            vec![NewJob::new("leaf", b"kills its worker".to_vec()).max_lost_leases(1)],
        )
        .await
        .unwrap();
    // A worker takes the child and "dies": its lease is expired behind its
    // back, as if it had stopped heartbeating; a live worker rescues it.
    let stalled = pjp_postgres::WorkerConfig::new("doomed")
        .heartbeat_interval(std::time::Duration::from_secs(600))
        .lease_ttl(std::time::Duration::from_secs(601));
    let doomed = db.queue.worker(stalled).await.unwrap();
    let (child, _) = claim_one(&doomed.picker("leaf").unwrap())
        .await
        .expect("the child");
    db.exec(&format!(
        "UPDATE {} SET lease_expires_at = now() - interval '1 second' WHERE id = {}",
        db.table(),
        child.id
    ))
    .await;
    let _rescuer = db.queue.worker(fast("rescuer")).await.unwrap();
    eventually_async("the parent settled", || async {
        status(&db, tree.parent).await.0 == "dead"
    })
    .await;
    assert_eq!(
        db.queue.job(child.id).await.unwrap().unwrap().status,
        "dead"
    );
    let error = db
        .queue
        .job(tree.parent)
        .await
        .unwrap()
        .unwrap()
        .last_error
        .unwrap_or_default();
    assert!(
        error.contains(&format!("child job {} failed", child.id))
            && error.contains("lost its lease"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_that_cancels_on_failure_cancels_its_queued_children_and_ignores_running_ones() {
    let db = TestDb::new().await;
    let worker = db.queue.worker(fast("w")).await.unwrap();
    let picker = worker.picker("leaf").unwrap();
    let saver: Saver = worker.saver();
    let tree = db
        .queue
        .enqueue_tree(
            NewJob::new("root", b"root".to_vec()).cancel_tree_on_failure(true),
            vec![
                NewJob::new("leaf", b"doomed".to_vec()).max_attempts(1),
                NewJob::new("leaf", b"running".to_vec()),
                NewJob::new("leaf", b"queued".to_vec()),
            ],
        )
        .await
        .unwrap();
    let (doomed, _) = claim_one(&picker).await.unwrap();
    let (running, _) = claim_one(&picker).await.unwrap();
    saver
        .save(&Err(ExecError::Failed("bad witness".to_owned())), &doomed)
        .await
        .unwrap();
    let status = |id| {
        let db = &db;
        async move { db.queue.job(id).await.unwrap().unwrap().status }
    };
    assert_eq!(status(tree.parent).await, "cancelled");
    assert_eq!(
        status(tree.children[2]).await,
        "cancelled",
        "the queued child went with it"
    );
    assert_eq!(
        status(tree.children[1]).await,
        "running",
        "a running child finishes"
    );
    saver.save(&Ok(b"late".to_vec()), &running).await.unwrap();
    assert_eq!(status(tree.children[1]).await, "succeeded");
    assert_eq!(
        status(tree.parent).await,
        "cancelled",
        "its result settles nothing"
    );
    assert!(claim_one(&picker).await.is_none());
    assert!(claim_one(&worker.picker("root").unwrap()).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_cancelling_a_child_settles_its_parent() {
    let db = TestDb::new().await;
    let tree = db
        .queue
        .enqueue_tree(
            NewJob::new("root", b"root".to_vec()),
            vec![
                NewJob::new("leaf", b"a".to_vec()),
                NewJob::new("leaf", b"b".to_vec()),
            ],
        )
        .await
        .unwrap();
    assert!(db.queue.cancel(tree.children[0]).await.unwrap());
    let parent = db.queue.job(tree.parent).await.unwrap().unwrap();
    assert_eq!(parent.status, "dead", "the default policy fails the parent");
    assert!(
        parent
            .last_error
            .unwrap_or_default()
            .contains(&format!("child job {} was cancelled", tree.children[0]))
    );
    // The other child is left alone (its parent is settled, nothing waits).
    assert_eq!(
        db.queue
            .job(tree.children[1])
            .await
            .unwrap()
            .unwrap()
            .status,
        "queued"
    );
    // With the other policy the whole tree goes.
    let tree = db
        .queue
        .enqueue_tree(
            NewJob::new("root", b"root 2".to_vec()).cancel_tree_on_failure(true),
            vec![
                NewJob::new("leaf", b"c".to_vec()),
                NewJob::new("leaf", b"d".to_vec()),
            ],
        )
        .await
        .unwrap();
    assert!(db.queue.cancel(tree.children[0]).await.unwrap());
    for id in [tree.parent, tree.children[1]] {
        assert_eq!(db.queue.job(id).await.unwrap().unwrap().status, "cancelled");
    }
}

/// A dead child made its parent dead; once the cause is fixed, requeueing
/// the dead jobs brings the tree back as it was: the child queued, the
/// parent waiting for it (not queued before it, to fail on "child is
/// queued" and die again), and claimable the moment the child succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeueing_a_dead_tree_makes_the_parent_wait_for_its_children() {
    let db = TestDb::new().await;
    let tree = db
        .queue
        .enqueue_tree(
            NewJob::new("root", b"root".to_vec()),
            vec![
                NewJob::new("leaf", b"good".to_vec()),
                NewJob::new("leaf", b"bad".to_vec()).max_attempts(1),
            ],
        )
        .await
        .unwrap();
    let worker = db.queue.worker(fast("w")).await.unwrap();
    let (leaves, roots) = (
        worker.picker("leaf").unwrap(),
        worker.picker("root").unwrap(),
    );
    let saver: Saver = worker.saver();
    for _ in 0..2 {
        let (job, input) = claim_one(&leaves).await.expect("a leaf");
        let result = if input == b"bad" {
            Err(ExecError::Failed("its blob is missing".to_owned()))
        } else {
            Ok(b"proof".to_vec())
        };
        saver.save(&result, &job).await.unwrap();
    }
    let bad = tree.children[1];
    assert_eq!(status(&db, bad).await.0, "dead");
    assert_eq!(status(&db, tree.parent).await.0, "dead");

    // The operator repairs the cause and requeues every dead job.
    assert_eq!(db.queue.requeue_dead(None).await.unwrap(), 2);
    assert_eq!(status(&db, tree.parent).await, ("waiting".to_owned(), 1));
    assert_eq!(status(&db, bad).await.0, "queued");
    assert!(claim_one(&roots).await.is_none(), "the parent waits");
    let (job, _) = claim_one(&leaves).await.expect("the requeued child");
    saver.save(&Ok(b"proof".to_vec()), &job).await.unwrap();
    assert_eq!(status(&db, tree.parent).await, ("queued".to_owned(), 0));
    let (root, _) = claim_one(&roots)
        .await
        .expect("the parent, after its child");
    assert_eq!(root.id, tree.parent);

    // Requeueing only the child brings its dead parent back too.
    let second = db
        .queue
        .enqueue_tree(
            NewJob::new("root", b"root 2".to_vec()),
            vec![NewJob::new("leaf", b"bad".to_vec()).max_attempts(1)],
        )
        .await
        .unwrap();
    let (job, _) = claim_one(&leaves).await.expect("the leaf");
    saver
        .save(&Err(ExecError::Failed("broken".to_owned())), &job)
        .await
        .unwrap();
    assert_eq!(status(&db, second.parent).await.0, "dead");
    assert!(db.queue.requeue(second.children[0]).await.unwrap());
    assert_eq!(status(&db, second.parent).await, ("waiting".to_owned(), 1));
}
