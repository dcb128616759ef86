//! `pg_kinds`: does a claim cost more when many job kinds are queued?
//!
//! Two schemas on the local server, each holding 1,000,000 queued jobs
//! (`cargo bench`; 4,000 under `cargo test --benches`): in one every job is of
//! kind `k0`, in the other the jobs are spread over 20 kinds `k0`…`k19`.
//! Each iteration claims and completes 1,000 jobs (batches of 64, one
//! worker, fenced completes; flat sampling keeps the rows used per case
//! under what `k7` holds):
//!
//! * `any_kind/1_kind`: the kind-agnostic claim (the baseline);
//! * `one_kind/1_kind`: `kinds(["k0"])` when only that kind exists;
//! * `one_kind/20_kinds`: `kinds(["k7"])` among 20 kinds, 1 row in 20 its;
//! * `prefer_3/20_kinds`: `kinds(["k7", "k8", "k9"])`, heavy-first order.
//!
//! Prints a `pg_kinds summary:` line with each case's jobs/s and its ratio to
//! `one_kind/1_kind` (the target: ≥ 80 % for `one_kind/20_kinds`).
//!
//! Run: `cargo bench -p pjp-benches --bench pg_kinds`
//! (`PJP_BENCH_DATABASE_URL`, default `postgres://root@127.0.0.1:5432/test`).

#[path = "common/pg.rs"]
mod pg;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pjp_core::{JobPicker, JobSaver, Picked};
use pjp_postgres::{NewJob, PgWorker, WorkerConfig};
use pjp_testkit::postgres::TestSchema;

const BATCH: usize = 64;

struct Layout {
    worker: PgWorker,
    /// Dropped (with everything in it) when the bench ends.
    _schema: TestSchema,
}

struct Bench {
    rt: tokio::runtime::Runtime,
    one: Layout,
    twenty: Layout,
    per_sample: u64,
    rates: RefCell<BTreeMap<&'static str, Vec<f64>>>,
}

impl Bench {
    /// Claims and completes `n` jobs of `kinds` (every kind if empty).
    fn claim(&self, layout: &Layout, kinds: &[&str], n: u64) -> Duration {
        self.rt.block_on(async {
            let picker = match layout.worker.picker("bench") {
                Ok(p) => p.kinds(kinds.iter().copied()),
                Err(e) => panic!("picker: {e}"),
            };
            let saver = layout.worker.saver::<Bytes, String>();
            let started = Instant::now();
            let mut done = 0;
            while done < n {
                let want = BATCH.min(usize::try_from(n - done).unwrap_or(BATCH));
                let jobs = match picker.pick_many(want).await {
                    Ok(Picked::Some(jobs)) => jobs,
                    Ok(_) => panic!("ran out of {kinds:?} jobs after {done}"),
                    Err(e) => panic!("claim: {e}"),
                };
                let results: Vec<_> = jobs.into_iter().map(|j| (Ok(j.input), j.meta)).collect();
                let batch: Vec<_> = results.iter().map(|(r, m)| (r, m)).collect();
                for outcome in saver.save_many(&batch).await {
                    if let Err(e) = outcome {
                        panic!("complete: {e}");
                    }
                }
                done += batch.len() as u64;
            }
            started.elapsed()
        })
    }

    fn case(
        &self,
        c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
        name: &'static str,
        layout: &Layout,
        kinds: &[&str],
    ) {
        let n = self.per_sample;
        c.throughput(Throughput::Elements(n));
        c.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                let took: Duration = (0..iters).map(|_| self.claim(layout, kinds, n)).sum();
                let rate = (iters * n) as f64 / took.as_secs_f64();
                self.rates.borrow_mut().entry(name).or_default().push(rate);
                took
            });
        });
    }
}

async fn layout(kinds: u64, rows: u64) -> Option<Layout> {
    let schema = pg::schema(&format!("bench_kinds{kinds}"));
    let (schema, queue) = pg::migrated_queue(schema, "pg_kinds", 4).await?;
    // Set-based fill: a million enqueues through the API would take minutes.
    let s = queue.schema();
    let fill = format!(
        "INSERT INTO {s}.jobs (queue, payload, kind)
         SELECT 'bench', int8send(g), 'k' || (g % $2)
         FROM generate_series(1, $1) AS g"
    );
    let started = Instant::now();
    sqlx::query(&fill)
        .bind(i64::try_from(rows).unwrap_or(i64::MAX))
        .bind(i64::try_from(kinds).unwrap_or(1))
        .execute(queue.pool())
        .await
        .unwrap_or_else(|e| panic!("fill: {e}"));
    let _ = sqlx::query(&format!("ANALYZE {s}.jobs"))
        .execute(queue.pool())
        .await;
    eprintln!(
        "pg_kinds: {rows} queued rows over {kinds} kind(s) in {:?}",
        started.elapsed()
    );
    // Enqueued through the API too, so the claim's notifications are wired.
    let _ = queue
        .enqueue(NewJob::new("bench", Vec::new()).kind("k0"))
        .await;
    let worker = queue
        .worker(WorkerConfig::new(format!("bench-{kinds}")))
        .await
        .unwrap_or_else(|e| panic!("worker: {e}"));
    Some(Layout {
        worker,
        _schema: schema,
    })
}

fn setup() -> Option<Bench> {
    let rt = pg::runtime()?;
    let full = std::env::args().any(|a| a == "--bench");
    let rows = if full { 1_000_000 } else { 4_000 };
    let (one, twenty) = rt.block_on(async {
        let one = layout(1, rows).await?;
        let twenty = layout(20, rows).await?;
        Some((one, twenty))
    })?;
    Some(Bench {
        rt,
        one,
        twenty,
        per_sample: if full { 1_000 } else { 40 },
        rates: RefCell::default(),
    })
}

fn median(rates: &[f64]) -> f64 {
    let mut sorted = rates.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

fn pg_kinds(c: &mut Criterion) {
    let Some(bench) = setup() else { return };
    let mut group = c.benchmark_group("pg_kinds");
    group.sample_size(10);
    group.sampling_mode(criterion::SamplingMode::Flat);
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(2));
    bench.case(&mut group, "any_kind/1_kind", &bench.one, &[]);
    bench.case(&mut group, "one_kind/1_kind", &bench.one, &["k0"]);
    bench.case(&mut group, "one_kind/20_kinds", &bench.twenty, &["k7"]);
    bench.case(
        &mut group,
        "prefer_3/20_kinds",
        &bench.twenty,
        &["k7", "k8", "k9"],
    );
    group.finish();
    let rates = bench.rates.borrow();
    let base = rates.get("one_kind/1_kind").map_or(0.0, |r| median(r));
    let line: Vec<String> = rates
        .iter()
        .map(|(name, r)| {
            let m = median(r);
            let ratio = if base > 0.0 { m / base * 100.0 } else { 0.0 };
            format!("{name} {m:.0} jobs/s ({ratio:.0} %)")
        })
        .collect();
    eprintln!(
        "pg_kinds summary (median per sample, vs one_kind/1_kind): {}",
        line.join("; ")
    );
}

criterion_group!(benches, pg_kinds);
criterion_main!(benches);
