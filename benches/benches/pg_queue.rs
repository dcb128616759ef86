//! `pg_queue`: claim + complete throughput of pjp-postgres through a
//! `JobRunner` with a no-op executor, on the local PostgreSQL server, beside
//! the zksync-era single-row loop in the same run.
//!
//! * `runner/batch=B/runners=R`: R runners (each its own `PgWorker`, as R
//!   worker processes would be: own pool, heartbeat and listener), each
//!   claiming B jobs per statement and completing B per statement, fenced and
//!   heartbeated, keeping every finished row.
//! * `single_row_loop/loops=L`: L tasks, each `UPDATE … WHERE id = (SELECT …
//!   FOR UPDATE SKIP LOCKED LIMIT 1)`, execute, complete with its own
//!   statement.
//!
//! Each sample starts on an empty table. `PJP_BENCH_HISTORY=10000000` first
//! fills it with that many finished rows and keeps every sample's finished
//! rows too, unvacuumed, to show how claims behave as history and dead
//! tuples grow. At the end the table's live rows, dead tuples and size are
//! printed.
//!
//! Run: `cargo bench -p pjp-benches --bench pg_queue`
//! (`PJP_BENCH_DATABASE_URL`, default `postgres://root@127.0.0.1:5432/test`).

#[path = "common/pg.rs"]
mod pg;

use pg::database_url;

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pjp_core::{
    BackoffPolicy, Executor, JobContext, JobId, JobPicker, JobRunner, JobSaver, Picked, Shutdown,
};
use pjp_postgres::{NewJob, PgQueue, WorkerConfig};
use pjp_runtime_tokio::TokioRuntime;
use pjp_testkit::postgres::TestSchema;
use pjp_testkit::wait::eventually;
use sqlx::PgPool;

const PICKERS: usize = 4;
const SAVERS: usize = 4;

struct Noop;

impl Executor for Noop {
    type Input = Bytes;
    type Output = Bytes;
    type Error = String;

    fn execute(&self, input: Bytes, _job: &JobContext) -> Result<Bytes, String> {
        Ok(input)
    }
}

struct Bench {
    rt: tokio::runtime::Runtime,
    queue: PgQueue,
    /// Dropped after `Drop` reports on its table.
    schema: TestSchema,
    /// `cargo bench` (true) or `cargo test --benches` (false: tiny runs).
    full: bool,
    /// Whether finished rows are kept (`PJP_BENCH_HISTORY` is set).
    history: bool,
}

impl Bench {
    fn jobs(&self, fast: bool) -> u64 {
        match (self.full, fast) {
            (true, true) => 20_000,
            (true, false) => 2_000,
            (false, _) => 200,
        }
    }

    /// Enqueues `n` jobs (not timed). Without a history, each sample starts
    /// on an empty table (`TRUNCATE`). With one (`PJP_BENCH_HISTORY`), the
    /// finished rows of every sample stay beside the history and nothing
    /// vacuums them (autovacuum is off here): claims run over the growing
    /// table and its dead tuples.
    fn fill(&self, n: u64) {
        self.rt.block_on(async {
            if !self.history {
                let truncate = format!("TRUNCATE {}.jobs", self.schema);
                if let Err(e) = sqlx::query(&truncate).execute(self.queue.pool()).await {
                    panic!("truncate: {e}");
                }
            }
            for chunk in (0..n).collect::<Vec<_>>().chunks(5_000) {
                let jobs = chunk
                    .iter()
                    .map(|i| NewJob::new("bench", i.to_le_bytes().to_vec()))
                    .collect();
                if let Err(error) = self.queue.enqueue_many(jobs).await {
                    panic!("enqueue: {error}");
                }
            }
        });
    }

    fn runners(&self, batch: usize, runners: usize, n: u64) -> Duration {
        self.fill(n);
        self.rt.block_on(async {
            let mut workers = Vec::new();
            for r in 0..runners {
                let queue = PgQueue::builder(self.schema.url())
                    .schema(self.schema.name())
                    .connect()
                    .await
                    .unwrap_or_else(|e| panic!("connect: {e}"));
                // A short poll: `exit_when_empty` waits for the other runners'
                // last jobs by polling, and the tail should not dominate.
                let config = WorkerConfig::new(format!("bench-{r}"))
                    .poll_interval(Duration::from_millis(20));
                workers.push(
                    queue
                        .worker(config)
                        .await
                        .unwrap_or_else(|e| panic!("worker: {e}")),
                );
            }
            let started = Instant::now();
            let runs = workers.iter().map(|worker| {
                let picker = match worker.picker("bench") {
                    Ok(p) => p.exit_when_empty(true),
                    Err(e) => panic!("picker: {e}"),
                };
                let runner = JobRunner::builder(picker, Noop, worker.saver::<Bytes, String>())
                    .workers(1)
                    .pickers(PICKERS)
                    .pick_batch(batch)
                    .prefetch(batch * 2)
                    .save_batch(batch)
                    .save_queue(batch * 2)
                    .savers(SAVERS)
                    .empty_backoff(BackoffPolicy::new(
                        Duration::from_millis(1),
                        Duration::from_millis(5),
                    ))
                    .build()
                    .unwrap_or_else(|e| panic!("config: {e}"));
                async move {
                    match runner.run(&TokioRuntime::current(), Shutdown::new()).await {
                        Ok(report) => report.counts.succeeded,
                        Err(e) => panic!("run: {e}"),
                    }
                }
            });
            let done: u64 = futures_util::future::join_all(runs).await.into_iter().sum();
            assert_eq!(done, n, "every job completed once");
            started.elapsed()
        })
    }

    fn single_row(&self, loops: usize, n: u64) -> Duration {
        self.fill(n);
        let s = &self.schema;
        let claim = format!(
            "UPDATE {s}.jobs SET status = 'running', lease_owner = 'loop',
                 lease_expires_at = now() + interval '3 seconds', token = token + 1, started_at = now()
             WHERE id = (SELECT id FROM {s}.jobs WHERE queue = 'bench' AND status = 'queued'
                         AND run_after <= now() ORDER BY priority DESC, id
                         LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING id, token, payload"
        );
        let complete = format!(
            "UPDATE {s}.jobs SET status = 'succeeded', result = $3, finished_at = now(),
                 lease_owner = NULL, lease_expires_at = NULL
             WHERE id = $1 AND token = $2 AND status = 'running'"
        );
        self.rt.block_on(async {
            let pool: &PgPool = self.queue.pool();
            let started = Instant::now();
            let tasks = (0..loops).map(|_| {
                let (claim, complete) = (&claim, &complete);
                async move {
                    let mut done = 0u64;
                    loop {
                        let row: Option<(i64, i64, Option<Vec<u8>>)> = sqlx::query_as(claim)
                            .fetch_optional(pool)
                            .await
                            .unwrap_or_else(|e| panic!("claim: {e}"));
                        let Some((id, token, payload)) = row else {
                            return done;
                        };
                        let job_id = JobId::new(u64::try_from(id).unwrap_or_default());
                        let output = Noop.execute(
                            Bytes::from(payload.unwrap_or_default()),
                            &JobContext::new(job_id, 1),
                        );
                        sqlx::query(complete)
                            .bind(id)
                            .bind(token)
                            .bind(output.map(|b| b.to_vec()).ok())
                            .execute(pool)
                            .await
                            .unwrap_or_else(|e| panic!("complete: {e}"));
                        done += 1;
                    }
                }
            });
            let done: u64 = futures_util::future::join_all(tasks)
                .await
                .into_iter()
                .sum();
            assert_eq!(done, n);
            started.elapsed()
        })
    }
}

impl Bench {
    /// Enqueue → claim latency of an idle worker (woken by `NOTIFY`; its poll
    /// interval is 10 s, so polling cannot be what finds the job), one job at
    /// a time.
    fn pickup(&self, samples: u64) -> Vec<Duration> {
        self.rt.block_on(async {
            let config = WorkerConfig::new("pickup").poll_interval(Duration::from_secs(10));
            let worker = match self.queue.worker(config).await {
                Ok(worker) => worker,
                Err(e) => panic!("worker: {e}"),
            };
            let picker = match worker.picker("pickup") {
                Ok(picker) => picker,
                Err(e) => panic!("picker: {e}"),
            };
            let saver = worker.saver::<Bytes, String>();
            let mut latencies = Vec::new();
            for _ in 0..samples {
                let idle = worker.stats().idle_waits;
                let waiting = picker.clone();
                let pick = tokio::spawn(async move {
                    loop {
                        if let Ok(Picked::Some(jobs)) = waiting.pick_many(1).await {
                            return (Instant::now(), jobs);
                        }
                    }
                });
                eventually("the pick to go idle", || worker.stats().idle_waits != idle).await;
                let enqueued = Instant::now();
                if let Err(e) = self.queue.enqueue(NewJob::new("pickup", vec![1])).await {
                    panic!("enqueue: {e}");
                }
                let (claimed, jobs) = match pick.await {
                    Ok(picked) => picked,
                    Err(e) => panic!("pick: {e}"),
                };
                latencies.push(claimed - enqueued);
                for job in jobs {
                    let _ = saver.save(&Ok(job.input.clone()), &job.meta).await;
                }
            }
            latencies
        })
    }
}

fn setup() -> Option<Bench> {
    let rt = pg::runtime()?;
    let schema = pg::schema("bench");
    let queue = rt.block_on(async {
        let queue = PgQueue::builder(schema.url())
            .schema(schema.name())
            .max_connections(8)
            .wait(Duration::from_secs(5))
            .connect()
            .await;
        match queue {
            Ok(queue) => match queue.migrate().await {
                Ok(_) => Some(queue),
                Err(e) => panic!("migrate: {e}"),
            },
            Err(error) => {
                eprintln!(
                    "SKIPPED pg_queue: no PostgreSQL at {}: {error}",
                    database_url()
                );
                None
            }
        }
    });
    let Some(queue) = queue else {
        schema.keep(); // never reached: nothing to drop
        return None;
    };
    let full = std::env::args().any(|a| a == "--bench");
    let rows = std::env::var("PJP_BENCH_HISTORY")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    let bench = Bench {
        rt,
        queue,
        schema,
        full,
        history: rows.is_some(),
    };
    if let Some(rows) = rows {
        bench.rt.block_on(history(&bench, rows));
    }
    Some(bench)
}

/// Fills the table with `rows` finished jobs, as months of history would.
async fn history(bench: &Bench, rows: u64) {
    let s = &bench.schema;
    let started = Instant::now();
    let sql = format!(
        "INSERT INTO {s}.jobs (queue, status, payload, result, token, created_at, started_at, finished_at)
         SELECT 'history', 'succeeded', int8send(g), int8send(g), 1,
                now() - interval '1 day', now() - interval '1 day', now() - interval '1 day'
         FROM generate_series(1, $1) AS g"
    );
    if let Err(e) = sqlx::query(&sql)
        .bind(i64::try_from(rows).unwrap_or(i64::MAX))
        .execute(bench.queue.pool())
        .await
    {
        panic!("history: {e}");
    }
    // History is old: its rows' commit status is known to every page (a
    // first read sets the hint bits) and on disk (a checkpoint), so the
    // samples do not pay for writing out the rows just inserted.
    for statement in [
        format!("ANALYZE {s}.jobs"),
        format!("SELECT count(*) FROM {s}.jobs"),
        "CHECKPOINT".to_owned(),
    ] {
        sqlx::query(&statement)
            .execute(bench.queue.pool())
            .await
            .ok();
    }
    eprintln!(
        "pg_queue: {rows} finished rows of history in {:?}",
        started.elapsed()
    );
}

impl Drop for Bench {
    fn drop(&mut self) {
        let schema = self.schema.name().to_owned();
        let pool = self.queue.pool().clone();
        self.rt.block_on(async move {
            // Report what the churn left behind (autovacuum is off here).
            let stats: Option<(i64, i64, i64)> = sqlx::query_as(
                "SELECT n_live_tup, n_dead_tup, pg_total_relation_size(relid)
                 FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'jobs'",
            )
            .bind(&schema)
            .fetch_optional(&pool)
            .await
            .ok()
            .flatten();
            if let Some((live, dead, bytes)) = stats {
                eprintln!(
                    "pg_queue: table after the run: {live} live rows, {dead} dead tuples, {} MiB",
                    bytes >> 20
                );
            }
        });
    }
}

fn pg_queue(c: &mut Criterion) {
    let Some(bench) = setup() else { return };
    let mut group = c.benchmark_group("pg_queue");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    for (batch, runners) in [(1, 1), (16, 1), (64, 1), (256, 1), (64, 4), (256, 4)] {
        let n = bench.jobs(batch >= 16);
        group.throughput(Throughput::Elements(n));
        group.bench_function(
            BenchmarkId::new("runner", format!("batch={batch}/runners={runners}")),
            |b| {
                b.iter_custom(|iters| (0..iters).map(|_| bench.runners(batch, runners, n)).sum());
            },
        );
    }
    for loops in [1, 4] {
        let n = bench.jobs(false);
        group.throughput(Throughput::Elements(n));
        group.bench_function(
            BenchmarkId::new("single_row_loop", format!("loops={loops}")),
            |b| b.iter_custom(|iters| (0..iters).map(|_| bench.single_row(loops, n)).sum()),
        );
    }
    group.finish();

    let mut pickup = c.benchmark_group("pg_queue_pickup");
    pickup.sample_size(20);
    pickup.bench_function("enqueue_to_claim_idle_worker", |b| {
        b.iter_custom(|iters| bench.pickup(iters).into_iter().sum());
    });
    pickup.finish();
    let mut latencies = bench.pickup(if bench.full { 500 } else { 5 });
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    eprintln!(
        "pg_queue summary: enqueue -> claim by an idle worker over {} jobs: p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

criterion_group!(benches, pg_queue);
criterion_main!(benches);
