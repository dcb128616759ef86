//! One `JobOptions` for every queue: the same options, given to a
//! PostgreSQL job, land in its row as the in-memory model reads them.

mod common;

use std::time::Duration;

use common::TestDb;
use pjp_core::{JobKind, JobOptions};
use pjp_postgres::NewJob;

#[tokio::test]
async fn job_options_land_in_the_row() {
    let db = TestDb::new().await;
    let kind = JobKind::new("aggregate").unwrap_or_default();
    let options = JobOptions::new()
        .priority(7)
        .batch(42)
        .depth(2)
        .kind(kind)
        .max_attempts(4)
        .max_lost_leases(2)
        .delay(Duration::from_secs(3600));
    let job = NewJob::new("q", b"x".to_vec()).options(options);
    assert_eq!(job.job_options(), &options);
    let id = db
        .queue
        .enqueue(job)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .id;
    let table = db.table();
    let row = |column: &str| format!("SELECT ({column})::bigint FROM {table} WHERE id = {id}");
    assert_eq!(db.scalar(&row("priority")).await, 7);
    assert_eq!(db.scalar(&row("batch")).await, 42);
    assert_eq!(db.scalar(&row("depth")).await, 2);
    assert_eq!(db.scalar(&row("max_attempts")).await, 4);
    assert_eq!(db.scalar(&row("max_lost_leases")).await, 2);
    assert_eq!(db.scalar(&row("(kind = 'aggregate')::int")).await, 1);
    // Delayed by about an hour (the database's clock).
    let delay = db
        .scalar(&row("extract(epoch FROM run_after - now())"))
        .await;
    assert!((3500..=3600).contains(&delay), "{delay}");
}

#[tokio::test]
async fn an_unfit_kind_is_refused_with_its_text() {
    let db = TestDb::new().await;
    let long = "k".repeat(65);
    let error = db
        .queue
        .enqueue(NewJob::new("q", vec![]).kind(long.clone()))
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(error.contains("kind") && error.contains(&long), "{error}");
    // A single setter after `options` still applies; `options` replaces.
    let job = NewJob::new("q", vec![])
        .priority(9)
        .options(JobOptions::new().batch(1));
    assert_eq!(job.job_options().priority, 0);
    assert_eq!(job.job_options().batch, 1);
}
