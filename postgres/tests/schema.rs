//! The schema itself: concurrent migrations, and rows the queue could never
//! recover from made impossible.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::TestDb;
use pjp_postgres::{NewJob, PgQueue, schema_version};
use pjp_testkit::postgres::TestSchema;
use sqlx::Connection;

/// Two processes migrating one fresh schema at the same time: both succeed,
/// every round, and the versions are applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_of_a_fresh_schema_all_succeed() {
    // Each round a fresh schema, dropped as the round ends.
    for round in 0..10 {
        let schema = TestSchema::new();
        let handle = || async {
            PgQueue::builder(schema.url())
                .schema(schema.name())
                .max_connections(1)
                .wait(Duration::from_secs(10))
                .connect()
                .await
                .unwrap()
        };
        let (a, b) = (handle().await, handle().await);
        // A migration can run on any task: its future is `Send + 'static`.
        let spawned = tokio::spawn(async move { a.migrate().await });
        let (first, second) = tokio::join!(spawned, b.migrate());
        let (first, second) = (
            first
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e}")),
            second.unwrap_or_else(|e| panic!("round {round}: {e}")),
        );
        let mut applied = [first.clone(), second.clone()].concat();
        applied.sort_unstable();
        assert_eq!(
            applied.last(),
            Some(&schema_version()),
            "round {round}: {first:?} {second:?}"
        );
        applied.dedup();
        assert_eq!(
            applied.len(),
            first.len() + second.len(),
            "round {round}: a version applied twice: {first:?} {second:?}"
        );
        b.check_schema().await.unwrap();
    }
}

/// A `running` row without a lease expiry could never be rescued (and a
/// worker told to exit when the queue is empty would wait for it forever):
/// the schema refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_always_has_a_lease_that_can_expire() {
    let db = TestDb::new().await;
    let job = db.queue.enqueue(NewJob::new("q", vec![1])).await.unwrap();
    let error = sqlx::query(&format!(
        "UPDATE {} SET status = 'running', lease_expires_at = NULL WHERE id = $1",
        db.table()
    ))
    .bind(job.id)
    .execute(db.queue.pool())
    .await
    .unwrap_err();
    assert!(error.to_string().contains("running_has_lease"), "{error}");
}

/// Every schema gets its own identity, kept across handles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_schema_has_its_own_identity() {
    let (one, two) = (TestDb::new().await, TestDb::new().await);
    let id = one.queue.identity().await.unwrap().to_owned();
    assert_eq!(id.len(), 32, "{id}");
    assert_ne!(id, two.queue.identity().await.unwrap());
    let again = one.handle(|b| b).await;
    assert_eq!(again.identity().await.unwrap(), id);
}

/// The exported migrator is the one `migrate` runs: a schema set up with it
/// by hand (as `#[sqlx::test(migrator = "pjp_postgres::MIGRATOR")]` does)
/// passes the queue's version check and takes jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exported_migrator_sets_up_a_working_queue() {
    let schema = TestSchema::new();
    let mut conn = sqlx::PgConnection::connect(schema.url()).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(&format!("SET search_path TO {schema}"))
        .execute(&mut conn)
        .await
        .unwrap();
    pjp_postgres::MIGRATOR.run(&mut conn).await.unwrap();
    let queue = PgQueue::builder(schema.url())
        .schema(schema.name())
        .connect()
        .await
        .unwrap();
    queue.check_schema().await.unwrap();
    let job = queue.enqueue(NewJob::new("q", vec![7])).await.unwrap();
    assert!(queue.job(job.id).await.unwrap().is_some());
    conn.close().await.unwrap();
}
