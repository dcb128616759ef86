//! `pg_tree`: the round-boundary latency of a tree of jobs, from the last
//! child's save to the parent's claim by an idle worker, on the local server.
//!
//! * `parent_claim/notified`: the parent is made claimable in the last
//!   child's completion, which notifies; an idle worker on another connection
//!   (its poll interval is a minute) claims it.
//! * the baseline, zksync-era's shape: a poller looks for claimable parents
//!   every 10 s (`WitnessJobQueuer`), so a parent waits for the next poll.
//!   Measured for real over 6 rounds whose last saves land at evenly spread
//!   points of the poll cycle (`cargo bench`; a 100 ms poll under
//!   `cargo test --benches`).
//!
//! Prints a `pg_tree summary:` line: p50 and p99 of both.
//!
//! Run: `cargo bench -p pjp-benches --bench pg_tree`
//! (`PJP_BENCH_DATABASE_URL`, default `postgres://root@127.0.0.1:5432/test`).

#[path = "common/pg.rs"]
mod pg;

use pg::database_url;

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use pjp_core::{JobPicker, JobSaver, Picked};
use pjp_postgres::{FanOut, FanOutSaver, NewJob, PgPicker, PgQueue, PgWorker, WorkerConfig};
use pjp_testkit::postgres::TestSchema;

struct Bench {
    rt: tokio::runtime::Runtime,
    queue: PgQueue,
    leaf_worker: PgWorker,
    idle_worker: PgWorker,
    full: bool,
    /// Dropped (with everything in it) when the bench ends.
    _schema: TestSchema,
}

impl Bench {
    /// One round: a tree of one parent and two children; the first child is
    /// done beforehand, the second's save is the round boundary. Returns the
    /// time from that save's return to the parent's claim (zero if the claim
    /// came first).
    fn round(&self, parent_picker: &PgPicker) -> Duration {
        self.rt.block_on(async {
            let tree = self
                .queue
                .enqueue_tree(
                    NewJob::new("root", b"root".to_vec()),
                    vec![
                        NewJob::new("leaf", b"a".to_vec()),
                        NewJob::new("leaf", b"b".to_vec()),
                    ],
                )
                .await
                .unwrap_or_else(|e| panic!("enqueue: {e}"));
            let leaves = self
                .leaf_worker
                .picker("leaf")
                .unwrap_or_else(|e| panic!("{e}"));
            let saver: FanOutSaver<Vec<u8>, String> = self.leaf_worker.fan_out_saver();
            let claimed = match leaves.pick_many(2).await {
                Ok(Picked::Some(jobs)) if jobs.len() == 2 => jobs,
                other => panic!("claim leaves: {:?}", other.map(|p| p.map(|j| j.len()))),
            };
            saver
                .save(&Ok(FanOut::only(b"a".to_vec())), &claimed[0].meta)
                .await
                .unwrap_or_else(|e| panic!("save: {e}"));
            let picker = parent_picker.clone();
            let waiting = tokio::spawn(async move {
                for _ in 0..10_000 {
                    if let Ok(Picked::Some(_)) = picker.pick_many(1).await {
                        return Instant::now();
                    }
                }
                panic!("the parent was never claimed");
            });
            saver
                .save(&Ok(FanOut::only(b"b".to_vec())), &claimed[1].meta)
                .await
                .unwrap_or_else(|e| panic!("save: {e}"));
            let saved = Instant::now();
            let claimed_at = waiting.await.unwrap_or_else(|e| panic!("{e}"));
            let _ = tree;
            claimed_at.saturating_duration_since(saved)
        })
    }

    /// The baseline: the same round, but the parent is found by a poller
    /// that looks every `every` (a zksync-style single-row claim of the
    /// parent queue), its cycle `phase` along when the last save lands.
    fn polled_round(&self, every: Duration, phase: Duration) -> Duration {
        self.rt.block_on(async {
            self.queue
                .enqueue_tree(
                    NewJob::new("polled", b"root".to_vec()),
                    vec![NewJob::new("leaf", b"a".to_vec())],
                )
                .await
                .unwrap_or_else(|e| panic!("enqueue: {e}"));
            let leaves = self
                .leaf_worker
                .picker("leaf")
                .unwrap_or_else(|e| panic!("{e}"));
            let leaf = match leaves.pick_many(1).await {
                Ok(Picked::Some(mut jobs)) => jobs.remove(0),
                other => panic!("claim leaf: {:?}", other.map(|p| p.map(|j| j.len()))),
            };
            let claim = format!(
                "UPDATE {s}.jobs SET status = 'running', lease_owner = 'poller',
                     lease_expires_at = now() + interval '1 minute', token = token + 1
                 WHERE id = (SELECT id FROM {s}.jobs WHERE queue = 'polled' AND status = 'queued'
                             ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING id",
                s = self.queue.schema()
            );
            let pool = self.queue.pool().clone();
            let first_tick = Instant::now() + every.saturating_sub(phase);
            let poller = tokio::spawn(async move {
                let mut tick = first_tick;
                loop {
                    tokio::time::sleep_until(tick.into()).await;
                    let found: Option<i64> = sqlx::query_scalar(&claim)
                        .fetch_optional(&pool)
                        .await
                        .unwrap_or_else(|e| panic!("poll: {e}"));
                    if found.is_some() {
                        return Instant::now();
                    }
                    tick += every;
                }
            });
            let saver: FanOutSaver<Vec<u8>, String> = self.leaf_worker.fan_out_saver();
            saver
                .save(&Ok(FanOut::only(b"a".to_vec())), &leaf.meta)
                .await
                .unwrap_or_else(|e| panic!("save: {e}"));
            let saved = Instant::now();
            let claimed_at = poller.await.unwrap_or_else(|e| panic!("{e}"));
            claimed_at.saturating_duration_since(saved)
        })
    }
}

fn setup() -> Option<Bench> {
    let rt = pg::runtime()?;
    let schema = pg::schema("bench_tree");
    let setup = rt.block_on(async {
        let connect = || {
            PgQueue::builder(schema.url())
                .schema(schema.name())
                .max_connections(4)
                .wait(Duration::from_secs(5))
                .connect()
        };
        let queue = match connect().await {
            Ok(queue) => queue,
            Err(error) => {
                eprintln!(
                    "SKIPPED pg_tree: no PostgreSQL at {}: {error}",
                    database_url()
                );
                return None;
            }
        };
        queue
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("migrate: {e}"));
        let leaf_worker = queue
            .worker(WorkerConfig::new("leaves"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // Another "machine": its own pool and listener; it polls once a minute.
        let other = connect().await.unwrap_or_else(|e| panic!("{e}"));
        let idle_worker = other
            .worker(WorkerConfig::new("roots").poll_interval(Duration::from_secs(60)))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Some((queue, leaf_worker, idle_worker))
    });
    let Some((queue, leaf_worker, idle_worker)) = setup else {
        schema.keep(); // never reached: nothing to drop
        return None;
    };
    let full = std::env::args().any(|a| a == "--bench");
    Some(Bench {
        rt,
        queue,
        leaf_worker,
        idle_worker,
        full,
        _schema: schema,
    })
}

fn quantiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.99))
}

fn pg_tree(c: &mut Criterion) {
    let Some(bench) = setup() else { return };
    let roots = bench
        .idle_worker
        .picker("root")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("pg_tree");
    group.sample_size(20);
    group.bench_function("parent_claim/notified", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| bench.round(&roots)).sum());
    });
    group.finish();

    let rounds = if bench.full { 300 } else { 5 };
    let notified = quantiles((0..rounds).map(|_| bench.round(&roots)).collect());
    let (every, polls) = if bench.full {
        (Duration::from_secs(10), 6)
    } else {
        (Duration::from_millis(100), 3)
    };
    // The last saves land evenly spread over the poll cycle.
    let polled = quantiles(
        (0..polls)
            .map(|i| bench.polled_round(every, every * i / polls))
            .collect(),
    );
    eprintln!(
        "pg_tree summary: last child's save -> parent claimed by an idle worker over {rounds} rounds: \
         p50 {:?}, p99 {:?}; a poller every {every:?} (zksync-era's queuer), {polls} rounds: p50 {:?}, p99 {:?}",
        notified.0, notified.1, polled.0, polled.1
    );
}

criterion_group!(benches, pg_tree);
criterion_main!(benches);
