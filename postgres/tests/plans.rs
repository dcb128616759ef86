//! The claim's plan without statistics: with autovacuum off and the table
//! never analyzed, the planner believes almost nothing is queued and would
//! sort the whole backlog on every claim. The claim's row choice runs in
//! functions that rule that plan out for their own statements, so it reads
//! the partial index in claim order whatever the statistics say.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestDb, fast};
use pjp_core::{JobPicker, Picked};
use pjp_postgres::NewJob;

/// The body of `claimable_proof` for one hot chunk (all the jobs here
/// are in chunk 0), as the planner sees it.
const PROOF_ORDER: &str = "SELECT id FROM jobs
    WHERE queue = 'q' AND (id >> 16) = 0 AND status = 'queued' AND run_after <= now()
    ORDER BY priority DESC, batch, depth, id LIMIT 8 FOR UPDATE SKIP LOCKED";

async fn plan(db: &TestDb, settings: &str) -> String {
    let mut conn = db.queue.pool().acquire().await.unwrap();
    let sql = format!("SET search_path = {}; {settings}", db.schema());
    sqlx::raw_sql(&sql).execute(&mut *conn).await.unwrap();
    let rows: Vec<(String,)> = sqlx::query_as(&format!("EXPLAIN {PROOF_ORDER}"))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    // The connection's settings must not reach another test's statement.
    sqlx::raw_sql("RESET ALL")
        .execute(&mut *conn)
        .await
        .unwrap();
    rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_keeps_its_index_plan_without_statistics() {
    let db = TestDb::new().await;
    let t = db.table();
    db.exec(&format!("ALTER TABLE {t} SET (autovacuum_enabled = false)"))
        .await;
    for chunk in 0..8 {
        let jobs = (0..5_000).map(|i| NewJob::new("q", vec![(chunk * 5_000 + i) as u8]));
        db.queue.enqueue_many(jobs.collect()).await.unwrap();
    }
    // Never analyzed: what a plain claim would do is the planner's guess.
    let guessed = plan(&db, "").await;
    println!("without the functions' settings:\n{guessed}");

    // Each claim function carries the settings that leave the index order
    // as the only plan, and is bound to the queue's schema.
    let config: Vec<(String, Vec<String>)> = sqlx::query_as(&format!(
        "SELECT p.proname::text, p.proconfig FROM pg_proc p
         WHERE p.pronamespace = '{}'::regnamespace AND p.proname LIKE 'claimable_%'
         ORDER BY 1",
        db.schema()
    ))
    .fetch_all(db.queue.pool())
    .await
    .unwrap();
    let names: Vec<&str> = config.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "claimable_except",
            "claimable_fifo",
            "claimable_kind",
            "claimable_proof"
        ]
    );
    for (name, settings) in &config {
        for wanted in ["enable_bitmapscan=off", "enable_sort=off"] {
            assert!(settings.iter().any(|s| s == wanted), "{name}: {settings:?}");
        }
        let search_path = format!("search_path={}", db.schema());
        assert!(
            settings.iter().any(|s| s.replace('"', "") == search_path),
            "{name}: {settings:?}"
        );
    }
    // Under those settings the statement reads the index in claim order.
    let held = plan(&db, "SET enable_bitmapscan = off; SET enable_sort = off;").await;
    assert!(
        held.contains("Index Scan using jobs_claimable_proof") && !held.contains("Sort"),
        "{held}"
    );

    // And the claim itself takes the first jobs in order.
    let worker = db.queue.worker(fast("w")).await.unwrap();
    let picker = worker.picker("q").unwrap();
    let Picked::Some(jobs) = picker.pick_many(8).await.unwrap() else {
        panic!("nothing claimed");
    };
    let ids: Vec<i64> = jobs.iter().map(|j| j.meta.id).collect();
    assert_eq!(ids, (1..=8).collect::<Vec<i64>>());
}

/// The queue maintains itself: once enough rows changed, `maintain`
/// refreshes the statistics (autovacuum is off here), and one caller of a
/// schema at a time does it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_analyzes_its_table_once_enough_changed() {
    use pjp_postgres::Maintained;
    use pjp_testkit::wait::Wait;

    let db = TestDb::new().await;
    let t = db.table();
    db.exec(&format!("ALTER TABLE {t} SET (autovacuum_enabled = false)"))
        .await;
    let analyzed = || async {
        db.scalar(&format!(
            "SELECT coalesce(analyze_count, 0) FROM pg_stat_user_tables
             WHERE schemaname = '{}' AND relname = 'jobs'",
            db.schema()
        ))
        .await
    };
    // `migrate` analyzed the empty table.
    let before = analyzed().await;
    assert!(before >= 1, "migrate analyzes: {before}");

    let jobs = (0..5_000)
        .map(|i| NewJob::new("q", vec![i as u8]))
        .collect();
    db.queue.enqueue_many(jobs).await.unwrap();
    // The statistics collector sees the inserts within seconds.
    Wait::new("maintain to analyze the table")
        .every(std::time::Duration::from_millis(200))
        .until_async(|| async { db.queue.maintain().await.unwrap() == Maintained::Analyzed })
        .await;
    assert!(analyzed().await > before);

    // Another holder of the maintenance lock: once the table needs work
    // again, `maintain` leaves it to that holder.
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
    db.queue.enqueue_many(jobs).await.unwrap();
    Wait::new("maintain to find the lock taken")
        .every(std::time::Duration::from_millis(200))
        .until_async(|| async { db.queue.maintain().await.unwrap() == Maintained::Busy })
        .await;
}
