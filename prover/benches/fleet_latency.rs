//! The reference prover as a fleet worker on PostgreSQL behind a slow link:
//! a real `pjp-prover run --database-url` process, through a TCP proxy that
//! adds 50 ms each way (a 100 ms round trip, a cross-region database), with
//! 4 prover workers on jobs of about 20 ms (4 × 2^15 coefficients).
//!
//! Three runs of the same jobs, side by side:
//! * `direct`: no proxy: what the executors can do (executor-bound);
//! * `pipelined`: through the proxy, the default pipelined, batched worker;
//! * `sequential`: through the proxy, one claim → execute → complete at a time.
//!
//! Each sample enqueues a fresh set of jobs (not timed) and runs a worker
//! until the queue is empty; criterion's time is the worker's own (its
//! summary's `elapsed_s`, so process start-up is not counted, but opening
//! connections through the link and the last saves are). Two `fleet_latency
//! summary:` lines give the fractions of executor-bound throughput: over
//! whole runs, and in the steady state (from 10 % to 90 % of the jobs done,
//! watched from the table over a direct connection), which is what a
//! long-running fleet worker sees.
//!
//! `cargo bench -p pjp-prover --bench fleet_latency` (about 10 minutes).
//! All three runs use the same flags, tuned for the slow link: 8 pickers of
//! 8 jobs, prefetch 64, 8 savers of up to 16 jobs, 16 connections.
//! `PJP_BENCH_DATABASE_URL` names the server (default the local one).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pjp_testkit::LatencyProxy;
use pjp_testkit::postgres::TestSchema;
use pjp_testkit::wait::Wait;

const PROVER_WORKERS: &str = "4";

/// What one run of the benchmark uses: the full figures under `cargo bench`,
/// a tiny smoke run under `cargo test --benches` (CI).
struct Shape {
    one_way: Duration,
    log_n: &'static str,
    batch: &'static str,
    pipelined_jobs: u64,
    sequential_jobs: u64,
}

impl Shape {
    fn of_this_run() -> Self {
        if std::env::args().any(|a| a == "--bench") {
            // One job: 4 polynomials of 2^15 coefficients (about 18 ms of NTT
            // with 4 workers on this 2-core machine).
            Self {
                one_way: Duration::from_millis(50),
                log_n: "15",
                batch: "4",
                pipelined_jobs: 4_000,
                sequential_jobs: 20,
            }
        } else {
            Self {
                one_way: Duration::from_millis(5),
                log_n: "6",
                batch: "1",
                pipelined_jobs: 20,
                sequential_jobs: 5,
            }
        }
    }
}

/// `host:port` of a `postgres://user@host:port/db` URL.
fn host_port(url: &str) -> String {
    url.split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("127.0.0.1:5432")
        .to_owned()
}

fn database_url() -> String {
    std::env::var("PJP_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_owned())
}

struct Bench {
    shape: Shape,
    /// Dropped (with everything in it) when the bench ends.
    schema: TestSchema,
    runtime: tokio::runtime::Runtime,
    proxy: LatencyProxy,
    pool: sqlx::PgPool,
}

/// One worker's run: its whole time (its summary's), and the steady state
/// (time, jobs) between 10 % and 90 % done, when the watcher saw both.
struct Run {
    whole: Duration,
    steady: Option<(Duration, f64)>,
}

impl Bench {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let shape = Shape::of_this_run();
        let upstream = host_port(&database_url()).parse().unwrap();
        let proxy = runtime
            .block_on(LatencyProxy::start(upstream, shape.one_way))
            .unwrap();
        let pool = runtime
            .block_on(sqlx::PgPool::connect(&database_url()))
            .unwrap();
        let bench = Self {
            pool,
            shape,
            schema: TestSchema::prefixed("bench_fleet_latency").with_url(database_url()),
            runtime,
            proxy,
        };
        bench.prover(&database_url(), &["migrate"]);
        bench
    }

    fn command(&self, url: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pjp-prover"));
        cmd.env_remove("RUST_LOG")
            .env("DATABASE_URL", url)
            .env("PJP_SCHEMA", self.schema.name())
            .env("PJP_GPU", "cpu")
            .args(args);
        cmd
    }

    fn prover(&self, url: &str, args: &[&str]) -> String {
        let output = self.command(url, args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Enqueues `jobs` and runs one worker over them; the worker's time.
    /// Succeeded jobs in the bench's schema.
    fn succeeded(&self) -> i64 {
        let sql = format!(
            "SELECT count(*) FROM {}.jobs WHERE status = 'succeeded'",
            self.schema
        );
        self.runtime
            .block_on(async {
                sqlx::query_scalar::<_, i64>(&sql)
                    .fetch_one(&self.pool)
                    .await
            })
            .unwrap()
    }

    fn run(&self, jobs: u64, via_proxy: bool, sequential: bool) -> Run {
        let jobs_arg = jobs.to_string();
        self.prover(
            &database_url(),
            &[
                "enqueue",
                "--jobs",
                &jobs_arg,
                "--log-n",
                self.shape.log_n,
                "--batch",
                self.shape.batch,
                "--progress",
                "none",
            ],
        );
        let url = if via_proxy {
            database_url().replace(&host_port(&database_url()), &self.proxy.addr().to_string())
        } else {
            database_url()
        };
        let mut args = vec![
            "run",
            "--exit-when-empty",
            "--json",
            "--progress",
            "none",
            "--prover-workers",
            PROVER_WORKERS,
            "--verify-every",
            "0",
            // Results go to the worker's memory: this measures the queue's
            // round trips, not a disk (the same for all three runs).
            "--store-url",
            "memory://",
            // Tuned for a 100 ms round trip: enough claims and saves in
            // flight to cover it, and connections for all of them.
            "--pickers",
            "8",
            "--prefetch",
            "64",
            "--savers",
            "8",
            "--connections",
            "16",
        ];
        if sequential {
            args.push("--sequential");
        }
        // Watch the table from the side (not through the proxy) for the
        // steady state: the time from 10 % to 90 % of the jobs done.
        let before = self.succeeded();
        let (low, high) = (before + jobs as i64 / 10, before + jobs as i64 * 9 / 10);
        let mut child = self
            .command(&url, &args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (mut at_low, mut at_high) = (None, None);
        let exited = Wait::new("the worker to exit")
            .limit(Duration::from_secs(600))
            .every(Duration::from_millis(50))
            .try_until_some_blocking(|| {
                let status = child.try_wait().unwrap();
                if status.is_none() {
                    let done = self.succeeded();
                    if at_low.is_none() && done >= low {
                        at_low = Some(Instant::now());
                    }
                    if at_high.is_none() && done >= high {
                        at_high = Some(Instant::now());
                    }
                }
                status
            });
        if let Err(hung) = exited {
            let _ = child.kill(); // by PID
            panic!("{hung}: {:?}", child.wait_with_output());
        }
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{output:?}");
        let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(summary["succeeded"], jobs, "{summary}");
        let whole = Duration::from_secs_f64(summary["elapsed_s"].as_f64().unwrap());
        let steady = match (at_low, at_high) {
            (Some(low), Some(high)) if high > low => Some((high - low, jobs as f64 * 0.8)),
            _ => None,
        };
        Run { whole, steady }
    }
}

fn fleet_latency(c: &mut Criterion) {
    let bench = Bench::new();
    // (config, whole-run jobs/s, steady-state jobs/s)
    let rates: Mutex<Vec<(&'static str, f64, Option<f64>)>> = Mutex::new(Vec::new());
    let mut group = c.benchmark_group("fleet_latency");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    let (many, few) = (bench.shape.pipelined_jobs, bench.shape.sequential_jobs);
    for (name, jobs, via_proxy, sequential) in [
        ("direct", many, false, false),
        ("pipelined", many, true, false),
        ("sequential", few, true, true),
    ] {
        group.throughput(Throughput::Elements(jobs));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let run = bench.run(jobs, via_proxy, sequential);
                    let steady = run.steady.map(|(took, n)| n / took.as_secs_f64());
                    rates.lock().unwrap().push((
                        name,
                        jobs as f64 / run.whole.as_secs_f64(),
                        steady,
                    ));
                    total += run.whole;
                }
                total
            });
        });
    }
    group.finish();

    let rates = rates.into_inner().unwrap();
    let median = |name: &str, steady: bool| {
        let mut r: Vec<f64> = rates
            .iter()
            .filter(|(n, ..)| *n == name)
            .filter_map(|(_, whole, st)| if steady { *st } else { Some(*whole) })
            .collect();
        r.sort_by(f64::total_cmp);
        r.get(r.len() / 2).copied().unwrap_or(0.0)
    };
    for (what, steady) in [
        ("whole runs", false),
        ("steady state, 10 %→90 % done", true),
    ] {
        let bound = median("direct", steady);
        let pct = |r: f64| if bound > 0.0 { 100.0 * r / bound } else { 0.0 };
        let (pipelined, sequential) = (median("pipelined", steady), median("sequential", steady));
        println!(
            "fleet_latency summary ({what}): RTT {:?}, {PROVER_WORKERS} prover workers, jobs of {} × 2^{}: \
             executor-bound (direct) {bound:.1} jobs/s; pipelined {pipelined:.1} jobs/s = {:.1} %; \
             sequential {sequential:.1} jobs/s = {:.1} %",
            bench.shape.one_way * 2,
            bench.shape.batch,
            bench.shape.log_n,
            pct(pipelined),
            pct(sequential),
        );
    }
}

criterion_group!(benches, fleet_latency);
criterion_main!(benches);
