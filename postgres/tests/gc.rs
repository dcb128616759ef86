//! Orphan blobs: an upload whose commit failed (a fenced save, a worker that
//! crashed between upload and commit) is collected; nothing a row names,
//! nothing a running job is saving, and nothing another queue wrote is ever
//! removed; a local store never reads or deletes through a symbolic link.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{TestDb, fast};
use futures_util::TryStreamExt;
use pjp_core::{ErrorClass, JobPicker, JobSaver, Picked};
use pjp_postgres::{CollectOptions, NewJob, PayloadStore, PgJob, PgPicker, PgSaver, QueueError};

async fn claim_one(picker: &PgPicker) -> PgJob {
    match picker.pick_many(1).await.expect("pick") {
        Picked::Some(mut jobs) => jobs.pop().unwrap().meta,
        _ => panic!("nothing to claim"),
    }
}

async fn keys(db: &TestDb) -> Vec<String> {
    let store = db.queue.store().object_store();
    let prefix = object_store::path::Path::from(db.schema());
    let mut keys: Vec<String> = store
        .list(Some(&prefix))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_collected_and_live_blobs_never_are() {
    let store = PayloadStore::open("memory://").unwrap().inline_limit(16);
    // Late results rejected: the stale claim's upload below is an orphan (a
    // late success would be accepted and its upload named by the row).
    let db = TestDb::with(|b| {
        b.store(store)
            .late_results(pjp_core::runner::LateResults::Reject)
    })
    .await;
    let big = |b: u8| vec![b; 100];
    let jobs = db
        .queue
        .enqueue_many(vec![
            NewJob::new("q", big(1)),
            NewJob::new("q", big(2)),
            NewJob::new("q", big(3)),
        ])
        .await
        .unwrap();
    let worker = db.queue.worker(fast("w")).await.unwrap();
    let picker = worker.picker("q").unwrap();
    let saver: PgSaver<Vec<u8>, String> = worker.saver();

    // Job 1: done, its result in the store and named by its row.
    let done = claim_one(&picker).await;
    saver.save(&Ok(big(10)), &done).await.unwrap();

    // Job 2: a stale claim uploads its result, then its commit is fenced.
    let stale = claim_one(&picker).await;
    db.exec(&format!(
        "UPDATE {} SET lease_expires_at = now() - interval '1 minute' WHERE id = {}",
        db.table(),
        stale.id
    ))
    .await;
    worker.rescue_now().await.unwrap();
    let other = db.queue.worker(fast("other")).await.unwrap();
    let current = claim_one(&other.picker("q").unwrap()).await;
    assert_eq!(current.id, stale.id);
    let fenced = saver.save(&Ok(big(20)), &stale).await.unwrap_err();
    assert_eq!(fenced.class(), ErrorClass::LostClaim);

    // A worker that crashed between its upload and its commit left this.
    let objects = db.queue.store().object_store();
    let root = format!("{}/{}", db.schema(), db.queue.identity().await.unwrap());
    let crashed = format!("{root}/results/-/0/{}-99", jobs[2].id);
    objects
        .put(
            &object_store::path::Path::from(crashed.as_str()),
            vec![7u8; 100].into(),
        )
        .await
        .unwrap();
    // And the current holder of job 2 is between its upload and its commit.
    let in_flight = format!("{root}/results/-/0/{}-{}", current.id, current.token);
    objects
        .put(
            &object_store::path::Path::from(in_flight.as_str()),
            vec![8u8; 100].into(),
        )
        .await
        .unwrap();

    let before = keys(&db).await;
    // The layout: results by kind (`-`: none) and batch, inputs by queue too.
    let committed = format!("{root}/results/-/0/{}-{}", done.id, done.token);
    assert!(before.contains(&committed), "{before:#?}");
    assert!(
        before
            .iter()
            .any(|k| k.starts_with(&format!("{root}/inputs/q/-/0/"))),
        "{before:#?}"
    );
    // 3 inputs + 1 committed result + 1 fenced upload + 1 crash orphan + 1 in flight.
    assert_eq!(before.len(), 7, "{before:#?}");

    // Young orphans are left alone.
    let young = db
        .queue
        .collect_orphans(CollectOptions::new(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(
        (young.deleted, young.young, young.in_flight),
        (0, 2, 1),
        "{young:?}"
    );
    // A dry run counts and deletes nothing.
    let dry = db
        .queue
        .collect_orphans(CollectOptions::new(Duration::ZERO).dry_run(true))
        .await
        .unwrap();
    assert_eq!((dry.deleted, dry.referenced), (2, 4), "{dry:?}");
    assert_eq!(keys(&db).await, before);

    let collected = db
        .queue
        .collect_orphans(CollectOptions::new(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(
        (
            collected.listed,
            collected.referenced,
            collected.in_flight,
            collected.deleted,
            collected.failed
        ),
        (7, 4, 1, 2, 0),
        "{collected:?}"
    );
    let after = keys(&db).await;
    assert!(!after.contains(&crashed), "{after:#?}");
    assert!(
        after.contains(&in_flight),
        "the running job's upload is kept"
    );
    assert_eq!(after.len(), 5);
    // Everything a row names still reads back.
    assert_eq!(
        db.queue.result(done.id).await.unwrap().unwrap().as_ref(),
        big(10).as_slice()
    );
    let other_saver: PgSaver<Vec<u8>, String> = other.saver();
    other_saver.save(&Ok(big(30)), &current).await.unwrap();
    assert_eq!(
        db.queue.result(current.id).await.unwrap().unwrap().as_ref(),
        big(30).as_slice()
    );
    let third = claim_one(&picker).await;
    assert_eq!(third.id, jobs[2].id, "its input blob survived");
}

/// A folder for a `file://` store, removed when the test ends.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "pjp-gc-{name}-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn url(&self) -> String {
        format!("file://{}", self.0.display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Enqueues `n` jobs with stored payloads and saves a stored result for
/// each; returns their ids.
async fn finish_stored(db: &TestDb, n: u8) -> Vec<i64> {
    let jobs = (0..n).map(|i| NewJob::new("q", vec![i; 100])).collect();
    let ids: Vec<i64> = db
        .queue
        .enqueue_many(jobs)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let worker = db.queue.worker(fast("w")).await.unwrap();
    let picker = worker.picker("q").unwrap();
    let saver: PgSaver<Vec<u8>, String> = worker.saver();
    for _ in 0..n {
        let job = claim_one(&picker).await;
        saver.save(&Ok(vec![200; 100]), &job).await.unwrap();
    }
    ids
}

/// Two databases with the same schema name share one store: a collection
/// run against one deletes nothing of the other's, and the other's results
/// all read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_never_deletes_another_databases_blobs() {
    let dir = TempDir::new("shared");
    let store = || PayloadStore::open(&dir.url()).unwrap().inline_limit(16);
    let ours = TestDb::with(|b| b.store(store())).await;
    let theirs = TestDb::named(ours.schema())
        .database("postgres")
        .with(|b| b.store(store()))
        .await;
    assert_ne!(
        ours.queue.identity().await.unwrap(),
        theirs.queue.identity().await.unwrap()
    );
    finish_stored(&ours, 3).await;
    let their_jobs = finish_stored(&theirs, 5).await;
    // An orphan of ours, which the collection should remove.
    let orphan = format!(
        "{}/{}/results/-/0/999-1",
        ours.schema(),
        ours.queue.identity().await.unwrap()
    );
    ours.queue
        .store()
        .object_store()
        .put(
            &object_store::path::Path::from(orphan.as_str()),
            vec![1u8; 100].into(),
        )
        .await
        .unwrap();

    let collected = ours
        .queue
        .collect_orphans(CollectOptions::new(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(
        (
            collected.referenced,
            collected.foreign,
            collected.deleted,
            collected.unowned
        ),
        (6, 10, 1, 0),
        "{collected:?}"
    );
    for id in their_jobs {
        let result = theirs.queue.result(id).await.unwrap().unwrap();
        assert_eq!(
            result.as_ref(),
            [200u8; 100].as_slice(),
            "job {id} of the other database"
        );
    }
    assert!(!keys(&ours).await.contains(&orphan));
}

/// Blobs of no queue identity under the schema's prefix (written by hand, or
/// by an older layout): a collection refuses to run, deletes nothing, and
/// when told to go on leaves them alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_of_an_unknown_owner_stop_a_collection_unless_told() {
    let store = PayloadStore::open("memory://").unwrap().inline_limit(16);
    let db = TestDb::with(|b| b.store(store)).await;
    let objects = db.queue.store().object_store();
    let root = format!("{}/{}", db.schema(), db.queue.identity().await.unwrap());
    let ours = format!("{root}/results/-/0/1-1");
    let unknown = format!("{}/results/-/0/1-1", db.schema());
    for key in [&ours, &unknown] {
        objects
            .put(
                &object_store::path::Path::from(key.as_str()),
                vec![1u8; 100].into(),
            )
            .await
            .unwrap();
    }
    let refused = db
        .queue
        .collect_orphans(CollectOptions::new(Duration::ZERO))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, QueueError::UnownedBlobs { count: 1, .. }),
        "{refused}"
    );
    assert!(refused.to_string().contains(&unknown), "{refused}");
    assert_eq!(keys(&db).await.len(), 2, "nothing was deleted");

    let collected = db
        .queue
        .collect_orphans(CollectOptions::new(Duration::ZERO).ignore_unowned(true))
        .await
        .unwrap();
    assert_eq!(
        (collected.deleted, collected.unowned),
        (1, 1),
        "{collected:?}"
    );
    assert_eq!(keys(&db).await, vec![unknown]);
}

/// A symbolic link inside a `file://` store, in place of a job's result
/// folder, pointing outside the root: reading the result through it fails,
/// and a purge of the job deletes nothing outside the root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_store_never_reads_or_deletes_through_a_link() {
    let (dir, outside) = (TempDir::new("root"), TempDir::new("outside"));
    let db =
        TestDb::with(|b| b.store(PayloadStore::open(&dir.url()).unwrap().inline_limit(16))).await;
    let id = finish_stored(&db, 1).await[0];
    let key = keys(&db)
        .await
        .into_iter()
        .find(|k| k.contains("/results/"))
        .unwrap();
    // Move the result's folder out of the root and link it back in.
    let file = dir.0.join(&key);
    let folder = file.parent().unwrap();
    let moved = outside.0.join("results");
    std::fs::rename(folder, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, folder).unwrap();
    let precious = moved.join(file.file_name().unwrap());
    assert!(precious.exists());

    let read = db.queue.result(id).await;
    assert!(read.is_err(), "read through a link: {read:?}");
    db.exec(&format!(
        "UPDATE {} SET finished_at = now() - interval '1 hour'",
        db.table()
    ))
    .await;
    let purged = db.queue.purge(Duration::ZERO, true).await.unwrap();
    assert_eq!((purged.rows, purged.blobs_failed), (1, 1), "{purged:?}");
    assert!(
        precious.exists(),
        "purge deleted {} outside the root",
        precious.display()
    );
}
