//! `pg_paced`: a sustained offered load, not a drain. A producer enqueues
//! `PJP_PACED_RATE` jobs/s (default 4,000) in batches every 25 ms for
//! `PJP_PACED_SECS` seconds (default 60; the figure is 600), while
//! one worker runs 32 handlers of 1 ms through a `JobRunner`, with
//! autovacuum off on the jobs table. Three variants in the same run:
//!
//! * `as shipped`: the queue as it is: claims whose plan holds without
//!   statistics (the `claimable_*` functions) and read only the hot chunks,
//!   and the worker's own maintenance (`PgQueue::maintain`, every 10 s
//!   here);
//! * `no vacuum`: the same without the worker's maintenance: nothing
//!   vacuums or analyzes the table (the rescuer still keeps the hot set);
//! * `baseline`: the same queue with the claim functions' planner settings
//!   reset and no maintenance: what the claim did before, with only the
//!   statistics autovacuum would have kept (none, here).
//!
//! Per variant: jobs completed per second (median and minimum over the run
//! after a 5 s warm-up), the claim statement's latency (p50, p99; claims
//! that found nothing are left out: they wait for a notification), the
//! largest backlog (enqueued minus completed) and the dead tuples at the end.
//!
//! Run: `cargo bench -p pjp-benches --bench pg_paced`
//! (`PJP_BENCH_DATABASE_URL`, default `postgres://root@127.0.0.1:5432/test`;
//! `PJP_PACED_VARIANTS="as shipped,no vacuum"` runs only those).
//! `cargo test --benches` runs each variant for 2 s at 400 jobs/s.

#[path = "common/pg.rs"]
mod pg;
#[path = "common/timed.rs"]
mod timed;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use pjp_core::{JobRunner, Shutdown, async_executor_fn};
use pjp_postgres::{NewJob, WorkerConfig};
use pjp_runtime_tokio::TokioRuntime;
use timed::Timed;

/// The claim functions whose planner settings the baseline resets.
const CLAIM_FUNCTIONS: [&str; 4] = [
    "claimable_proof(text, integer)",
    "claimable_fifo(text, integer)",
    "claimable_except(text, integer, text[], text[])",
    "claimable_kind(text, text, integer, text[])",
];

struct Outcome {
    median: f64,
    min: f64,
    claim_p50: Duration,
    claim_p99: Duration,
    max_backlog: u64,
    dead_tuples: i64,
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let last = sorted.len().saturating_sub(1);
    sorted
        .get((last as f64 * q).round() as usize)
        .copied()
        .unwrap_or_default()
}

/// What a variant changes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    AsShipped,
    NoVacuum,
    Baseline,
}

async fn run(variant: Variant, rate: u64, secs: u64) -> Option<Outcome> {
    let schema = pg::schema("paced");
    let (schema, queue) = pg::migrated_queue(schema, "pg_paced", 12).await?;
    let s = schema.name().to_owned();
    let exec = |sql: String| {
        let pool = queue.pool().clone();
        async move {
            sqlx::raw_sql(&sql)
                .execute(&pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    };
    exec(format!(
        "ALTER TABLE {s}.jobs SET (autovacuum_enabled = false, toast.autovacuum_enabled = false)"
    ))
    .await;
    if variant == Variant::Baseline {
        for function in CLAIM_FUNCTIONS {
            exec(format!(
                "ALTER FUNCTION {s}.{function} RESET enable_bitmapscan;
                 ALTER FUNCTION {s}.{function} RESET enable_sort;"
            ))
            .await;
        }
    }
    let maintenance = if variant == Variant::AsShipped {
        Duration::from_secs(10)
    } else {
        Duration::ZERO
    };
    let worker = queue
        .worker(WorkerConfig::new("paced").maintenance_interval(maintenance))
        .await
        .unwrap_or_else(|e| panic!("worker: {e}"));
    let claims = Arc::new(Mutex::new(Vec::new()));
    let picker = Timed::new(
        worker.picker("paced").unwrap_or_else(|e| panic!("{e}")),
        Arc::clone(&claims),
    );
    let handler = async_executor_fn(|input: Bytes| async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok::<_, String>(input)
    });
    let runner = JobRunner::builder_async(picker, handler, worker.saver::<Bytes, String>())
        .workers(32)
        .pickers(4)
        .pick_batch(32)
        .prefetch(128)
        .savers(4)
        .save_batch(64)
        .save_queue(256)
        .build()
        .unwrap_or_else(|e| panic!("config: {e}"));
    let shutdown = Shutdown::new();
    let running = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { runner.run(&TokioRuntime::current(), shutdown).await }
    });

    // The producer: a batch every 25 ms.
    let enqueued = Arc::new(AtomicU64::new(0));
    let per_tick = (rate / 40).max(1);
    let producer = tokio::spawn({
        let (queue, enqueued) = (queue.clone(), Arc::clone(&enqueued));
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(25));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            loop {
                tick.tick().await;
                let jobs = (0..per_tick)
                    .map(|_| NewJob::new("paced", b"x".to_vec()))
                    .collect();
                if queue.enqueue_many(jobs).await.is_ok() {
                    enqueued.fetch_add(per_tick, Relaxed);
                }
            }
        }
    });

    // Once a second: completed jobs and the backlog.
    let mut rates = Vec::new();
    let mut max_backlog = 0;
    let mut last = 0;
    for second in 0..secs {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let done = worker.stats().succeeded;
        if second >= 5.min(secs / 2) {
            rates.push((done - last) as f64);
        }
        last = done;
        max_backlog = max_backlog.max(enqueued.load(Relaxed).saturating_sub(done));
    }
    producer.abort();
    shutdown.drain();
    let _ = running.await;
    let dead_tuples: i64 = sqlx::query_scalar(
        "SELECT coalesce(n_dead_tup, 0) FROM pg_stat_user_tables
         WHERE schemaname = $1 AND relname = 'jobs'",
    )
    .bind(&s)
    .fetch_one(queue.pool())
    .await
    .unwrap_or(-1);
    rates.sort_by(f64::total_cmp);
    let mut claims = std::mem::take(&mut *claims.lock().unwrap_or_else(PoisonError::into_inner));
    claims.sort_unstable();
    drop(worker);
    Some(Outcome {
        median: rates.get(rates.len() / 2).copied().unwrap_or(0.0),
        min: rates.first().copied().unwrap_or(0.0),
        claim_p50: quantile(&claims, 0.5),
        claim_p99: quantile(&claims, 0.99),
        max_backlog,
        dead_tuples,
    })
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (rate, secs) = if full {
        (env("PJP_PACED_RATE", 4_000), env("PJP_PACED_SECS", 60))
    } else {
        (400, 2)
    };
    let Some(rt) = pg::runtime() else {
        eprintln!("SKIPPED pg_paced: no async runtime");
        return;
    };
    println!("pg_paced: {rate} jobs/s offered for {secs} s, 32 handlers of 1 ms, autovacuum off");
    println!(
        "{:<12} {:>16} {:>12} {:>14} {:>14} {:>12} {:>12}",
        "variant",
        "completed/s p50",
        "min",
        "claim p50 ms",
        "claim p99 ms",
        "max backlog",
        "dead tuples"
    );
    // `PJP_PACED_VARIANTS="no vacuum,baseline"` runs only those.
    let chosen = std::env::var("PJP_PACED_VARIANTS").unwrap_or_default();
    let chosen: Vec<&str> = chosen
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    for (name, variant) in [
        ("as shipped", Variant::AsShipped),
        ("no vacuum", Variant::NoVacuum),
        ("baseline", Variant::Baseline),
    ] {
        if !chosen.is_empty() && !chosen.contains(&name) {
            continue;
        }
        let Some(o) = rt.block_on(run(variant, rate, secs)) else {
            return;
        };
        println!(
            "{name:<12} {:>16.0} {:>12.0} {:>14.2} {:>14.2} {:>12} {:>12}",
            o.median,
            o.min,
            o.claim_p50.as_secs_f64() * 1e3,
            o.claim_p99.as_secs_f64() * 1e3,
            o.max_backlog,
            o.dead_tuples
        );
    }
}
