//! Orphan blobs: an upload whose commit failed (a fenced save, a worker that
//! crashed between upload and commit) is collected; nothing a row names, and
//! nothing a running job is saving, is ever removed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{TestDb, fast};
use futures_util::TryStreamExt;
use pjp_core::{ErrorClass, JobPicker, JobSaver, Picked};
use pjp_postgres::{NewJob, PayloadStore, PgJob, PgPicker, PgSaver};

async fn claim_one(picker: &PgPicker) -> PgJob {
    match picker.pick_many(1).await.expect("pick") {
        Picked::Some(mut jobs) => jobs.pop().unwrap().meta,
        _ => panic!("nothing to claim"),
    }
}

async fn keys(db: &TestDb) -> Vec<String> {
    let store = db.queue.store().object_store();
    let prefix = object_store::path::Path::from(db.schema.as_str());
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
    let db = TestDb::with(|b| b.store(store)).await;
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
    let crashed = format!("{}/results/-/0/{}-99", db.schema, jobs[2].id);
    objects
        .put(
            &object_store::path::Path::from(crashed.as_str()),
            vec![7u8; 100].into(),
        )
        .await
        .unwrap();
    // And the current holder of job 2 is between its upload and its commit.
    let in_flight = format!("{}/results/-/0/{}-{}", db.schema, current.id, current.token);
    objects
        .put(
            &object_store::path::Path::from(in_flight.as_str()),
            vec![8u8; 100].into(),
        )
        .await
        .unwrap();

    let before = keys(&db).await;
    // The layout: results by kind (`-`: none) and batch, inputs by queue too.
    let committed = format!("{}/results/-/0/{}-{}", db.schema, done.id, done.token);
    assert!(before.contains(&committed), "{before:#?}");
    assert!(
        before
            .iter()
            .any(|k| k.starts_with(&format!("{}/inputs/q/-/0/", db.schema))),
        "{before:#?}"
    );
    // 3 inputs + 1 committed result + 1 fenced upload + 1 crash orphan + 1 in flight.
    assert_eq!(before.len(), 7, "{before:#?}");

    // Young orphans are left alone.
    let young = db
        .queue
        .collect_orphans(Duration::from_secs(3600), false)
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
        .collect_orphans(Duration::ZERO, true)
        .await
        .unwrap();
    assert_eq!((dry.deleted, dry.referenced), (2, 4), "{dry:?}");
    assert_eq!(keys(&db).await, before);

    let collected = db
        .queue
        .collect_orphans(Duration::ZERO, false)
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
