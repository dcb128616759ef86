//! The fleet commands on the PostgreSQL queue: `migrate`, `enqueue`,
//! `status`, `requeue`, `purge`, `gc`, `verify`, `ui` (the worker itself is `run
//! --database-url`, in [`crate::run`]).

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use pjp_postgres::autoscale::{self, ScalePlan};
use pjp_postgres::{NewJob, PayloadStore, PgQueue, QueueStats};
use serde::Serialize;

use crate::cli::{
    DbArgs, EnqueueArgs, GcArgs, PurgeArgs, RequeueArgs, StatusArgs, UiArgs, VerifyArgs,
};
use pjp_prover::aggregate::{AGGREGATE, AggregateJob, AggregateProof, BASIC};
use pjp_prover::job::{ProofJob, StoredProof};

use crate::failure::Failure;

async fn connect(db: &DbArgs) -> Result<PgQueue, Failure> {
    connect_with_store(db, None).await
}

/// A queue handle whose blobs are in the store at `store` (if any).
async fn connect_with_store(db: &DbArgs, store: Option<&str>) -> Result<PgQueue, Failure> {
    let mut builder = PgQueue::builder(&db.database_url)
        .schema(&db.schema)
        .wait(db.wait)
        .max_connections(2)
        .application_name("pjp-prover");
    if let Some(store) = store {
        builder = builder.store(PayloadStore::open(store)?);
    }
    Ok(builder.connect().await?)
}

pub(crate) async fn gc(args: GcArgs) -> Result<(), Failure> {
    let queue = connect_with_store(&args.db, Some(&args.store_url)).await?;
    queue.check_schema().await?;
    let options = pjp_postgres::CollectOptions::new(args.older_than)
        .dry_run(args.dry_run)
        .ignore_unowned(args.ignore_unowned);
    let c = queue.collect_orphans(options).await?;
    if args.json {
        let json = serde_json::json!({
            "listed": c.listed,
            "referenced": c.referenced,
            "in_flight": c.in_flight,
            "young": c.young,
            "foreign": c.foreign,
            "unowned": c.unowned,
            "deleted": c.deleted,
            "failed": c.failed,
            "dry_run": args.dry_run,
        });
        println!("{json}");
    } else {
        println!(
            "{} {} orphan blob(s) of {} listed ({} named by a job, {} being saved, {} younger than {:?}, {} of other queues, {} of no queue: left alone){}",
            if args.dry_run {
                "would delete"
            } else {
                "deleted"
            },
            c.deleted,
            c.listed,
            c.referenced,
            c.in_flight,
            c.young,
            args.older_than,
            c.foreign,
            c.unowned,
            if c.failed > 0 {
                format!("; {} could not be deleted", c.failed)
            } else {
                String::new()
            }
        );
    }
    if c.failed > 0 {
        return Err(Failure::runtime(format!(
            "{} orphan blob(s) could not be deleted",
            c.failed
        )));
    }
    Ok(())
}

/// `ui`: the operator console, until SIGINT/SIGTERM.
pub(crate) async fn ui(args: UiArgs) -> Result<(), Failure> {
    let mut builder = PgQueue::builder(&args.db.database_url)
        .schema(&args.db.schema)
        .wait(args.db.wait)
        .max_connections(4)
        .application_name("pjp-console");
    if let Some(store) = &args.store_url {
        builder = builder.store(PayloadStore::open(store)?);
    }
    let queue = builder.connect().await?;
    queue.check_schema().await?;
    let config = pjp_console::ConsoleConfig::new(&args.db.database_url)
        .admin_token(args.admin_token.clone())
        .listen(args.listen)
        .lease_ttl(args.lease_ttl)
        .refresh(args.refresh);
    let listener = pjp_console::bind(&config)
        .await
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let addr = listener.local_addr().unwrap_or(args.listen);
    if !addr.ip().is_loopback() {
        eprintln!(
            "pjp-prover: warning: the console listens on {addr}, not loopback: anyone who reaches it can read the queue"
        );
    }
    println!(
        "pjp console of schema `{}` on http://{addr}/ ({})",
        args.db.schema,
        if config.is_writable() {
            "writes need the admin token"
        } else {
            "read-only: no admin token"
        }
    );
    let shutdown = async {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut term) => {
                    term.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            biased;
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
    };
    pjp_console::serve_on(listener, queue, config, shutdown)
        .await
        .map_err(|e| Failure::runtime(e.to_string()))
}

pub(crate) async fn migrate(db: DbArgs) -> Result<(), Failure> {
    let queue = connect(&db).await?;
    let applied = queue.migrate().await?;
    if applied.is_empty() {
        println!(
            "schema `{}` is up to date (version {})",
            db.schema,
            pjp_postgres::schema_version()
        );
    } else {
        let versions: Vec<String> = applied.iter().map(i64::to_string).collect();
        println!(
            "schema `{}`: applied migration(s) {}",
            db.schema,
            versions.join(", ")
        );
    }
    Ok(())
}

pub(crate) async fn enqueue(args: EnqueueArgs) -> Result<(), Failure> {
    let queue = connect(&args.db).await?;
    queue.check_schema().await?;
    if let (Some(batches), Some(circuits)) = (args.batches, args.circuits) {
        return enqueue_trees(&queue, &args, batches, circuits).await;
    }
    let jobs = args.jobs.unwrap_or(0);
    let bar =
        if args.progress == "bar" || (args.progress == "auto" && std::io::stderr().is_terminal()) {
            let bar = ProgressBar::new(jobs);
            if let Ok(style) =
                ProgressStyle::with_template("{bar:40} {pos}/{len} jobs enqueued ({per_sec})")
            {
                bar.set_style(style);
            }
            bar
        } else {
            ProgressBar::hidden()
        };
    let (mut created, mut existing) = (0u64, 0u64);
    let mut next = 0u64;
    while next < jobs {
        let end = (next + args.enqueue_batch).min(jobs);
        let jobs = (next..end)
            .map(|job| {
                let payload = ProofJob {
                    job,
                    log_n: args.log_n,
                    batch: args.batch,
                    seed: args.seed,
                };
                let new =
                    NewJob::new(&args.queue, payload.encode().to_vec()).priority(args.priority);
                match &args.key_prefix {
                    Some(prefix) => new.unique_key(format!("{prefix}/{job}")),
                    None => new,
                }
            })
            .collect();
        for done in queue.enqueue_many(jobs).await? {
            if done.created {
                created += 1;
            } else {
                existing += 1;
            }
        }
        bar.set_position(end);
        next = end;
    }
    bar.finish_and_clear();
    println!(
        "enqueued {created} job(s) on queue `{}` of schema `{}` ({existing} already there)",
        args.queue, args.db.schema
    );
    Ok(())
}

/// `enqueue --batches B --circuits K`: per batch a tree of K basic proofs
/// under one aggregation, each tree in one transaction; with `--key-prefix`,
/// a batch enqueued again creates nothing.
async fn enqueue_trees(
    queue: &PgQueue,
    args: &EnqueueArgs,
    batches: u64,
    circuits: u64,
) -> Result<(), Failure> {
    let (mut created, mut existing) = (0u64, 0u64);
    for batch in 0..batches {
        let at = |new: NewJob| {
            new.batch(i64::try_from(batch).unwrap_or(i64::MAX))
                .priority(args.priority)
        };
        let parent = AggregateJob {
            aggregate: batch,
            circuits,
        };
        let parent = at(NewJob::new(&args.queue, parent.encode())
            .kind(AGGREGATE)
            .depth(0));
        let parent = match &args.key_prefix {
            Some(prefix) => parent.unique_key(format!("{prefix}/batch-{batch}")),
            None => parent,
        };
        let children = (0..circuits)
            .map(|circuit| {
                let payload = ProofJob {
                    job: batch * circuits + circuit,
                    log_n: args.log_n,
                    batch: args.batch,
                    seed: args.seed,
                };
                at(NewJob::new(&args.queue, payload.encode().to_vec())
                    .kind(BASIC)
                    .depth(1))
            })
            .collect();
        let tree = queue.enqueue_tree(parent, children).await?;
        if tree.created {
            created += 1;
        } else {
            existing += 1;
        }
    }
    println!(
        "enqueued {created} tree(s) of {circuits} basic proof(s) and an aggregation on queue `{}` of schema `{}` ({existing} already there)",
        args.queue, args.db.schema
    );
    Ok(())
}

/// What `status` shows, as JSON with `--json`.
#[derive(Debug, Serialize)]
struct Status {
    schema: String,
    queues: Vec<QueueStatus>,
    /// Per queue, kind and resource class: what an autoscaler scales on.
    load: Vec<LoadStatus>,
    /// With `--plan`: the workers each needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<Vec<PlanStatus>>,
    dead: Vec<DeadStatus>,
}

/// One (queue, kind, class)'s planned workers (`status --plan`).
#[derive(Debug, Serialize)]
struct PlanStatus {
    queue: String,
    kind: String,
    resource_class: String,
    work: u64,
    duration_secs: f64,
    /// Whether the duration is the last minute's p95 (else the fallback).
    measured: bool,
    desired_workers: u32,
}

impl From<ScalePlan> for PlanStatus {
    fn from(p: ScalePlan) -> Self {
        Self {
            queue: p.queue,
            kind: p.kind,
            resource_class: p.resource_class,
            work: p.work,
            duration_secs: p.duration.as_secs_f64(),
            measured: p.measured,
            desired_workers: p.desired,
        }
    }
}

/// One (queue, kind, class)'s load, for autoscalers.
#[derive(Debug, Serialize)]
pub(crate) struct LoadStatus {
    pub(crate) queue: String,
    pub(crate) kind: String,
    pub(crate) resource_class: String,
    pub(crate) queued: i64,
    pub(crate) running: i64,
    pub(crate) oldest_queued_secs: Option<f64>,
    pub(crate) finished_last_minute: i64,
    /// (queued + running) ÷ the last minute's rate; `None` without a rate.
    pub(crate) drain_estimate_secs: Option<f64>,
    /// How long the last minute's successes ran, p95; `None` without any.
    pub(crate) p95_duration_secs: Option<f64>,
}

impl From<pjp_postgres::KindLoad> for LoadStatus {
    fn from(l: pjp_postgres::KindLoad) -> Self {
        Self {
            drain_estimate_secs: l.drain_estimate().map(|d| d.as_secs_f64()),
            p95_duration_secs: l.p95_duration.map(|d| d.as_secs_f64()),
            oldest_queued_secs: l.oldest_queued.map(|d| d.as_secs_f64()),
            queue: l.queue,
            kind: l.kind,
            resource_class: l.resource_class,
            queued: l.queued,
            running: l.running,
            finished_last_minute: l.finished_last_minute,
        }
    }
}

#[derive(Debug, Serialize)]
struct QueueStatus {
    queue: String,
    counts: std::collections::BTreeMap<String, i64>,
    oldest_queued_secs: Option<f64>,
    finished_last_minute: i64,
    jobs_per_second: f64,
    workers: std::collections::BTreeMap<String, i64>,
}

#[derive(Debug, Serialize)]
struct DeadStatus {
    id: i64,
    queue: String,
    attempts: i32,
    lost_leases: i32,
    last_error: String,
}

impl From<QueueStats> for QueueStatus {
    fn from(s: QueueStats) -> Self {
        Self {
            jobs_per_second: s.finished_last_minute as f64 / 60.0,
            queue: s.queue,
            counts: s.counts,
            oldest_queued_secs: s.oldest_queued.map(|d| d.as_secs_f64()),
            finished_last_minute: s.finished_last_minute,
            workers: s.lease_owners,
        }
    }
}

impl Status {
    fn text(&self) -> String {
        let mut out = String::new();
        if self.queues.is_empty() {
            let _ = writeln!(out, "schema `{}`: no jobs", self.schema);
        }
        for q in &self.queues {
            let counts: Vec<String> = pjp_postgres::JOB_STATUSES
                .iter()
                .map(|s| format!("{} {s}", q.counts.get(*s).copied().unwrap_or(0)))
                .collect();
            let _ = writeln!(out, "queue {}: {}", q.queue, counts.join(", "));
            let oldest = q
                .oldest_queued_secs
                .map_or_else(|| "none".to_owned(), |s| format!("{s:.1}s ago"));
            let _ = writeln!(
                out,
                "  oldest queued job: {oldest}; finished in the last minute: {} ({:.1} jobs/s)",
                q.finished_last_minute, q.jobs_per_second
            );
            if q.workers.is_empty() {
                let _ = writeln!(out, "  live workers: none");
            } else {
                let workers: Vec<String> = q
                    .workers
                    .iter()
                    .map(|(w, n)| format!("{w} ({n} running)"))
                    .collect();
                let _ = writeln!(out, "  live workers: {}", workers.join(", "));
            }
        }
        if self
            .load
            .iter()
            .any(|l| !l.kind.is_empty() || !l.resource_class.is_empty())
        {
            let _ = writeln!(
                out,
                "load by kind (queue / kind / class: queued, running, oldest, done last minute, drain estimate):"
            );
            for l in &self.load {
                let secs =
                    |s: Option<f64>| s.map_or_else(|| "-".to_owned(), |s| format!("{s:.1}s"));
                let _ = writeln!(
                    out,
                    "  {} / {} / {}: {} queued, {} running, oldest {}, {} done, drain {}",
                    l.queue,
                    if l.kind.is_empty() { "-" } else { &l.kind },
                    if l.resource_class.is_empty() {
                        "-"
                    } else {
                        &l.resource_class
                    },
                    l.queued,
                    l.running,
                    secs(l.oldest_queued_secs),
                    l.finished_last_minute,
                    secs(l.drain_estimate_secs)
                );
            }
        }
        if let Some(plan) = &self.plan {
            let _ = writeln!(out, "plan (workers to drain within the window):");
            for p in plan {
                let _ = writeln!(
                    out,
                    "  {} / {} / {}: {} job(s) × {:.1}s ({}) → {} worker(s)",
                    p.queue,
                    if p.kind.is_empty() { "-" } else { &p.kind },
                    if p.resource_class.is_empty() {
                        "-"
                    } else {
                        &p.resource_class
                    },
                    p.work,
                    p.duration_secs,
                    if p.measured { "p95" } else { "fallback" },
                    p.desired_workers
                );
            }
        }
        if !self.dead.is_empty() {
            let _ = writeln!(out, "dead jobs (first {}):", self.dead.len());
            for d in &self.dead {
                let _ = writeln!(
                    out,
                    "  #{} on {}: {} attempt(s), {} lost lease(s): {}",
                    d.id, d.queue, d.attempts, d.lost_leases, d.last_error
                );
            }
        }
        out
    }
}

async fn status_once(queue: &PgQueue, args: &StatusArgs) -> Result<Status, Failure> {
    let queues = queue.stats().await?;
    let load = queue.load().await?;
    let dead = queue.dead_jobs(None, args.dead).await?;
    let plan = args.plan.then(|| {
        autoscale::plan(&load, &args.policy.policy())
            .into_iter()
            .map(PlanStatus::from)
            .collect()
    });
    Ok(Status {
        schema: args.db.schema.clone(),
        queues: queues.into_iter().map(QueueStatus::from).collect(),
        plan,
        load: load.into_iter().map(LoadStatus::from).collect(),
        dead: dead
            .into_iter()
            .map(|d| DeadStatus {
                id: d.id,
                queue: d.queue,
                attempts: d.attempts,
                lost_leases: d.lost_leases,
                last_error: d.last_error,
            })
            .collect(),
    })
}

pub(crate) async fn status(args: StatusArgs) -> Result<(), Failure> {
    let queue = connect(&args.db).await?;
    queue.check_schema().await?;
    loop {
        let status = status_once(&queue, &args).await?;
        if args.json {
            let json = serde_json::to_string_pretty(&status).map_err(|e| Failure {
                code: 1,
                message: e.to_string(),
            })?;
            println!("{json}");
        } else {
            if args.watch.is_some() && std::io::stdout().is_terminal() {
                print!("\x1b[2J\x1b[H"); // clear the screen between refreshes
            }
            print!("{}", status.text());
        }
        let Some(every) = args.watch else {
            return Ok(());
        };
        tokio::select! {
            () = tokio::time::sleep(every.max(Duration::from_millis(100))) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

pub(crate) async fn requeue(args: RequeueArgs) -> Result<(), Failure> {
    let queue = connect(&args.db).await?;
    queue.check_schema().await?;
    match args.id {
        Some(id) => {
            if queue.requeue(id).await? {
                println!("job {id} requeued");
            } else {
                return Err(Failure {
                    code: 1,
                    message: format!("job {id} is not dead (or does not exist)"),
                });
            }
        }
        None => {
            let n = queue.requeue_dead(args.queue.as_deref()).await?;
            println!("{n} dead job(s) requeued");
        }
    }
    Ok(())
}

pub(crate) async fn purge(args: PurgeArgs) -> Result<(), Failure> {
    let queue = connect_with_store(&args.db, args.store_url.as_deref()).await?;
    queue.check_schema().await?;
    let purged = queue.purge(args.older_than, args.include_dead).await?;
    println!(
        "purged {} finished job(s) and {} blob(s){}",
        purged.rows,
        purged.blobs,
        if purged.blobs_failed > 0 {
            format!(" ({} blob(s) could not be deleted)", purged.blobs_failed)
        } else {
            String::new()
        }
    );
    Ok(())
}

/// What `verify` found.
#[derive(Debug, Default, Serialize)]
struct Verified {
    /// Succeeded jobs checked.
    checked: u64,
    /// Their proofs are right.
    verified: u64,
    /// Distinct job numbers among them (each payload proved once).
    distinct_jobs: u64,
    /// Of `verified`, aggregations whose Merkle root their children give.
    aggregates: u64,
    /// Succeeded jobs without a readable result.
    missing: Vec<i64>,
    /// Succeeded jobs whose proof is wrong or unreadable.
    wrong: Vec<i64>,
}

pub(crate) async fn verify(args: VerifyArgs) -> Result<(), Failure> {
    let mut builder = PgQueue::builder(&args.db.database_url)
        .schema(&args.db.schema)
        .wait(args.db.wait)
        .max_connections(4)
        .application_name("pjp-prover");
    if let Some(store) = &args.store_url {
        builder = builder.store(PayloadStore::open(store)?);
    }
    let queue = builder.connect().await?;
    queue.check_schema().await?;
    let cpu = pjp_gpu::CpuNtt::new();
    let mut found = Verified::default();
    let mut jobs = std::collections::HashSet::new();
    let mut after = 0;
    loop {
        let ids = queue.job_ids(&args.queue, "succeeded", after, 500).await?;
        let Some(&last) = ids.last() else { break };
        let results = futures_util::future::join_all(ids.iter().map(|&id| queue.result(id))).await;
        for (id, result) in ids.into_iter().zip(results) {
            found.checked += 1;
            let bytes = match result {
                Ok(Some(bytes)) => bytes,
                Ok(None) | Err(_) => {
                    found.missing.push(id);
                    continue;
                }
            };
            if let Some(claimed) = AggregateProof::from_bytes(&bytes) {
                // An aggregation: its root must be the one its children give.
                match pjp_prover::aggregate::aggregate(&queue, id).await {
                    Ok(again)
                        if again.root == claimed.root && again.children == claimed.children =>
                    {
                        found.verified += 1;
                        found.aggregates += 1;
                    }
                    _ => found.wrong.push(id),
                }
                continue;
            }
            match StoredProof::from_bytes(&bytes).map(|p| (p.verify(&cpu), p.job)) {
                Ok((Ok(true), job)) => {
                    found.verified += 1;
                    jobs.insert(job.job);
                }
                _ => found.wrong.push(id),
            }
        }
        after = last;
    }
    found.distinct_jobs = jobs.len() as u64;
    if args.json {
        let json =
            serde_json::to_string_pretty(&found).map_err(|e| Failure::runtime(e.to_string()))?;
        println!("{json}");
    } else {
        println!(
            "{} succeeded job(s) checked: {} verified ({} distinct payloads, {} aggregations), {} missing, {} wrong",
            found.checked,
            found.verified,
            found.distinct_jobs,
            found.aggregates,
            found.missing.len(),
            found.wrong.len()
        );
        for id in &found.missing {
            println!("  job {id}: no readable result");
        }
        for id in &found.wrong {
            println!("  job {id}: WRONG proof");
        }
    }
    if found.missing.is_empty() && found.wrong.is_empty() {
        Ok(())
    } else {
        Err(Failure::runtime("some results are missing or wrong"))
    }
}
