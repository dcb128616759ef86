//! `pg_storm`: a picker storm. Many worker processes claim from one queue of
//! `PJP_STORM_JOBS` jobs (default 100,000) through PgBouncer in transaction
//! mode; each process runs one `JobRunner` with one picker per client
//! connection, so every picker is a claim in flight at the pooler. Two
//! variants in the same run, on the same number of jobs:
//!
//! * `storm`: `PJP_STORM_PROCESSES` processes (default 10) ×
//!   `PJP_STORM_PICKERS` pickers (default 100) = 1,000 pickers through a
//!   pooler of `PJP_STORM_POOL` server connections (default 8: four per
//!   core of this machine's server; more make every statement slower);
//! * `single`: the baseline, one process of 4 pickers straight to the
//!   server (the figure a single worker reaches);
//! * `storm, adaptive claims`: the storm with
//!   `WorkerConfig::adaptive_claims(PJP_STORM_TARGET_MS)` (default 20 ms):
//!   each process narrows its claims in flight when they slow down.
//!
//! Both claim batches of `PJP_STORM_BATCH` jobs (default 8) and run a
//! no-op executor. Per variant: jobs
//! completed per second from "go" to an empty queue, and the claim's
//! latency as each picker saw it, from asking to holding its jobs (p50,
//! p99, max; a wait at the adaptive gate counts; claims that found nothing
//! are left out: they wait for the next poll); and the claim statement's
//! own p99 as the worker timed it (`PgWorker::claim_latency`, every claim,
//! no wait at the gate), the worst process's; and of that, the server's own
//! time on the claims that took jobs (`PgWorker::claim_server_latency`: a
//! wait at the pooler or in the client process excluded).
//!
//! Run: `cargo bench -p pjp-benches --bench pg_storm` (needs `pgbouncer`;
//! skipped without it). `cargo test --benches` runs a small storm: 4
//! processes × 25 pickers on 4,000 jobs.

#[path = "common/pg.rs"]
mod pg;
#[path = "common/timed.rs"]
mod timed;

use std::io::{BufRead, BufWriter, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use pjp_core::{JobRunner, Shutdown, async_executor_fn};
use pjp_postgres::{NewJob, PgQueue, Pooler, WorkerConfig};
use pjp_runtime_tokio::TokioRuntime;
use pjp_testkit::pooler::PgBouncer;
use timed::Timed;

/// Jobs per claim (`PJP_STORM_BATCH`, default 8).
fn batch() -> usize {
    std::env::var("PJP_STORM_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&b| b > 0)
        .unwrap_or(8)
}

/// A worker process's part: connect, say `ready`, wait for `go`, claim and
/// complete until told `stop` (or stdin closes), then print each claim's
/// latency in microseconds, one per line, after `claims`.
async fn child(
    url: String,
    schema: String,
    pickers: usize,
    pooled: bool,
    target: Option<Duration>,
) -> anyhow::Result<()> {
    let pooler = if pooled {
        Pooler::Transaction
    } else {
        Pooler::None
    };
    let queue = PgQueue::builder(&url)
        .schema(&schema)
        .pooler(pooler)
        .max_connections(u32::try_from(pickers)? + 4)
        .connect()
        .await?;
    let mut config = WorkerConfig::new(format!("storm-{}", std::process::id()))
        .poll_interval(Duration::from_millis(200));
    if let Some(target) = target {
        config = config.adaptive_claims(target);
    }
    let worker = queue.worker(config).await?;
    let claims = Arc::new(Mutex::new(Vec::new()));
    let picker = Timed::new(worker.picker("storm")?, Arc::clone(&claims));
    let handler = async_executor_fn(|input: Bytes| async move { Ok::<_, String>(input) });
    let runner = JobRunner::builder_async(picker, handler, worker.saver::<Bytes, String>())
        .workers(8)
        .pickers(pickers)
        .pick_batch(batch())
        .prefetch(pickers * batch())
        .savers(2)
        .save_batch(64)
        .build()?;
    println!("ready");
    std::io::stdout().flush()?;
    // `go`, then `stop` (or the end of stdin) ends the run.
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let shutdown = Shutdown::new();
    let stop = shutdown.clone();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        stop.drain();
    });
    runner.run(&TokioRuntime::current(), shutdown).await?;
    let claims = std::mem::take(&mut *claims.lock().unwrap_or_else(PoisonError::into_inner));
    let mut out = BufWriter::new(std::io::stdout().lock());
    // The statements' own latency, as the worker timed them (a wait at the
    // adaptive gate not included).
    let statements = worker.claim_latency();
    writeln!(
        out,
        "statements {} {}",
        statements.p99.as_micros(),
        statements.count
    )?;
    // The part the server itself spent on them.
    writeln!(
        out,
        "server {}",
        worker.claim_server_latency().p99.as_micros()
    )?;
    writeln!(out, "claims")?;
    for claim in claims {
        writeln!(out, "{}", claim.as_micros())?;
    }
    out.flush()?;
    Ok(())
}

struct Outcome {
    jobs_per_sec: f64,
    /// The worst process's claim-statement p99.
    statement_p99: Duration,
    /// The worst process's p99 of the server's own time on its claims.
    server_p99: Duration,
    claims: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let last = sorted.len().saturating_sub(1);
    sorted
        .get((last as f64 * q).round() as usize)
        .copied()
        .unwrap_or_default()
}

/// Kills the children left when a variant fails half-way (by PID, through
/// their handles).
struct Children(Vec<(Child, ChildStdin)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (child, _) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One variant: enqueue `jobs`, start `processes` workers of `pickers`
/// pickers each on `url`, time them from `go` until the queue is empty.
async fn variant(
    queue: &PgQueue,
    url: &str,
    pooled: bool,
    processes: usize,
    pickers: usize,
    jobs: usize,
    target: Option<Duration>,
) -> anyhow::Result<Outcome> {
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(5_000) {
        let batch = chunk
            .iter()
            .map(|_| NewJob::new("storm", b"x".to_vec()))
            .collect();
        queue.enqueue_many(batch).await.context("enqueueing")?;
    }
    let exe = std::env::current_exe().context("finding this bench's binary")?;
    let mut children = Children(Vec::new());
    for _ in 0..processes {
        let mut child = Command::new(&exe)
            .env("PJP_STORM_CHILD", "1")
            .env("PJP_STORM_URL", url)
            .env("PJP_STORM_SCHEMA", queue.schema())
            .env("PJP_STORM_PICKERS", pickers.to_string())
            .env("PJP_STORM_POOLED", if pooled { "1" } else { "0" })
            .env(
                "PJP_STORM_TARGET_US",
                target.map_or(0, |t| t.as_micros()).to_string(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting a worker process ({})", exe.display()))?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdin"))?;
        children.0.push((child, stdin));
    }
    let mut outputs = Vec::new();
    for (child, _) in &mut children.0 {
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut lines = std::io::BufReader::new(stdout).lines();
        match lines.next() {
            Some(Ok(line)) if line == "ready" => outputs.push(lines),
            other => anyhow::bail!("a worker did not start: {other:?}"),
        }
    }
    let started = Instant::now();
    for (_, stdin) in &mut children.0 {
        writeln!(stdin, "go")?;
        stdin.flush()?;
    }
    // Bounded: an hour, or the queue is empty.
    let left = |queue: PgQueue| async move {
        // Two index probes (the claim's and the lease index), not a count.
        let s = queue.schema();
        let busy: bool = sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM {s}.jobs WHERE status = 'queued')
                 OR EXISTS (SELECT 1 FROM {s}.jobs WHERE status = 'running')"
        ))
        .fetch_one(queue.pool())
        .await?;
        Ok::<_, anyhow::Error>(busy)
    };
    let deadline = started + Duration::from_secs(3_600);
    while left(queue.clone()).await.context("looking for jobs left")? {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the storm did not drain in an hour"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    for (_, stdin) in &mut children.0 {
        writeln!(stdin, "stop")?;
        stdin.flush()?;
    }
    let mut claims = Vec::new();
    let mut statement_p99 = Duration::ZERO;
    let mut server_p99 = Duration::ZERO;
    for lines in outputs {
        let mut past_header = false;
        for line in lines {
            let line = line?;
            if past_header {
                claims.push(Duration::from_micros(line.trim().parse()?));
            } else if let Some(rest) = line.strip_prefix("statements ") {
                let p99: u64 = rest.split(' ').next().unwrap_or("0").parse()?;
                statement_p99 = statement_p99.max(Duration::from_micros(p99));
            } else if let Some(rest) = line.strip_prefix("server ") {
                server_p99 = server_p99.max(Duration::from_micros(rest.trim().parse()?));
            } else {
                past_header = line == "claims";
            }
        }
    }
    for (child, _) in &mut children.0 {
        let status = child.wait().context("waiting for a worker")?;
        anyhow::ensure!(status.success(), "a worker failed: {status}");
    }
    children.0.clear();
    claims.sort_unstable();
    Ok(Outcome {
        jobs_per_sec: jobs as f64 / took.as_secs_f64(),
        statement_p99,
        server_p99,
        claims: claims.len(),
        p50: quantile(&claims, 0.5),
        p99: quantile(&claims, 0.99),
        max: claims.last().copied().unwrap_or_default(),
    })
}

fn main() -> anyhow::Result<()> {
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let Some(rt) = pg::runtime() else {
        eprintln!("SKIPPED pg_storm: no async runtime");
        return Ok(());
    };
    if std::env::var("PJP_STORM_CHILD").is_ok() {
        let var = |name: &str| std::env::var(name).unwrap_or_default();
        return rt.block_on(child(
            var("PJP_STORM_URL"),
            var("PJP_STORM_SCHEMA"),
            env("PJP_STORM_PICKERS", 1),
            var("PJP_STORM_POOLED") == "1",
            Some(env("PJP_STORM_TARGET_US", 0))
                .filter(|&us| us > 0)
                .map(|us| Duration::from_micros(us as u64)),
        ));
    }
    let full = std::env::args().any(|a| a == "--bench");
    let (jobs, processes, pickers) = if full {
        (
            env("PJP_STORM_JOBS", 100_000),
            env("PJP_STORM_PROCESSES", 10),
            env("PJP_STORM_PICKERS", 100),
        )
    } else {
        (4_000, 4, 25)
    };
    let pool = u32::try_from(env("PJP_STORM_POOL", 8)).unwrap_or(8);
    let Some(bouncer) = PgBouncer::start_with_pool_size(pool) else {
        eprintln!("SKIPPED pg_storm: no pgbouncer");
        return Ok(());
    };
    println!(
        "pg_storm: {jobs} jobs, claims of {}, no-op executor; storm: {processes} processes × {pickers} pickers through PgBouncer (transaction mode, {pool} server connections)",
        batch()
    );
    println!(
        "{:<34} {:>10} {:>8} {:>12} {:>12} {:>12} {:>16} {:>13}",
        "variant",
        "jobs/s",
        "claims",
        "claim p50 ms",
        "claim p99 ms",
        "claim max ms",
        "statement p99 ms",
        "server p99 ms"
    );
    let target = Duration::from_millis(env("PJP_STORM_TARGET_MS", 20) as u64);
    let mut rates = Vec::new();
    for (name, pooled, processes, pickers, adaptive) in [
        ("single (1 × 4 pickers, direct)", false, 1, 4, None),
        ("storm", true, processes, pickers, None),
        ("storm", true, processes, pickers, Some(target)),
    ] {
        let outcome = rt.block_on(async {
            let Some((schema, queue)) =
                pg::migrated_queue(pg::schema("storm"), "pg_storm", 4).await
            else {
                return Ok(None);
            };
            let url = if pooled {
                bouncer.url()
            } else {
                pg::database_url()
            };
            let outcome = variant(&queue, &url, pooled, processes, pickers, jobs, adaptive).await?;
            drop(schema);
            Ok::<_, anyhow::Error>(Some(outcome))
        })?;
        let Some(o) = outcome else {
            return Ok(());
        };
        let name = match (pooled, adaptive) {
            (false, _) => name.to_owned(),
            (true, None) => format!("storm ({processes} × {pickers} pickers, pooled)"),
            (true, Some(t)) => format!("storm, adaptive claims ({} ms)", t.as_millis()),
        };
        println!(
            "{name:<34} {:>10.0} {:>8} {:>12.2} {:>12.2} {:>12.2} {:>16.2} {:>13.2}",
            o.jobs_per_sec,
            o.claims,
            o.p50.as_secs_f64() * 1e3,
            o.p99.as_secs_f64() * 1e3,
            o.max.as_secs_f64() * 1e3,
            o.statement_p99.as_secs_f64() * 1e3,
            o.server_p99.as_secs_f64() * 1e3
        );
        rates.push(o.jobs_per_sec);
    }
    if let [single, storm, adaptive] = rates[..] {
        println!(
            "pg_storm summary: the storm completes {:.0} % of the single process's rate, {:.0} % with adaptive claims",
            storm / single * 100.0,
            adaptive / single * 100.0
        );
    }
    Ok(())
}
