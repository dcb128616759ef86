//! Command-line interface: flags, `PJP_*` environment variables, validation.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use pjp_core::latency::LatencyProfile;
use pjp_gpu::BackendChoice;
use pjp_postgres::autoscale::ScalePolicy;
use pjp_prover::aggregate::{AGGREGATE, BASIC};
use pjp_prover::circuit::FaultRates;
use pjp_prover::job::check_size;
use pjp_prover::{FleetConfig, RunConfig};

/// The reference prover component of prover-job-processor.
///
/// Two stages chained by a stage channel: a witness generator (CPU) expands
/// each job's seed into a batch of Goldilocks polynomials; a circuit prover
/// runs the NTT on them (GPU when present, else CPU); the saver records a
/// digest of every result and checks a sample with the inverse NTT.
#[derive(Debug, Parser)]
#[command(name = "pjp-prover", version, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Prove jobs, then print a summary: from the embedded in-process queue,
    /// or, with `--database-url`, as a fleet worker on a PostgreSQL queue.
    ///
    /// SIGTERM/SIGINT drains (no new jobs; picked ones finish; exit 0); a second
    /// signal abandons (unstarted jobs are released; exit 3, listing them).
    Run(Box<RunArgs>),
    /// Create the PostgreSQL queue's schema, or bring it up to date.
    Migrate(DbArgs),
    /// Put proving jobs on the PostgreSQL queue, in batches.
    Enqueue(EnqueueArgs),
    /// Show the PostgreSQL queue: counts, oldest job, throughput, live
    /// workers, dead jobs.
    Status(StatusArgs),
    /// Put dead jobs back on the queue with fresh budgets.
    Requeue(RequeueArgs),
    /// Delete finished jobs older than a retention, with their blobs.
    Purge(PurgeArgs),
    /// Delete the object-store blobs no job names (uploads whose commit never
    /// happened: a crashed or fenced save), older than a grace period.
    Gc(GcArgs),
    /// Check every succeeded job's stored proof on the PostgreSQL queue
    /// (its inverse NTT must give back the job's witness).
    Verify(VerifyArgs),
    /// Serve the operator web console of the PostgreSQL queue: queues,
    /// workers, jobs, proof trees, a timeline; requeue, cancel and purge
    /// with `--admin-token` (read-only without one).
    Ui(UiArgs),
}

/// Options of `pjp-prover ui`.
#[derive(Debug, Clone, Args)]
pub(crate) struct UiArgs {
    #[command(flatten)]
    pub(crate) db: DbArgs,

    /// Where to listen. Loopback by default: a console on another address
    /// answers anyone who reaches it (writes still need the token).
    #[arg(long, env = "PJP_UI_LISTEN", default_value = pjp_console::DEFAULT_LISTEN)]
    pub(crate) listen: SocketAddr,

    /// The token that unlocks requeue, cancel and purge (log in with it on
    /// the console, or send `Authorization: Bearer TOKEN`). Without one the
    /// console is read-only.
    #[arg(long, env = "PJP_ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) admin_token: Option<String>,

    /// The object store the jobs' blobs are in (as given to `run`): a purge
    /// from the console deletes them with their rows.
    #[arg(long, env = "PJP_STORE_URL", hide_env_values = true)]
    pub(crate) store_url: Option<String>,

    /// The workers' lease TTL (as given to `run`): a worker's last
    /// heartbeat is shown as its newest lease's expiry less this.
    #[arg(long, env = "PJP_LEASE_TTL", default_value = "3s", value_parser = parse_duration)]
    pub(crate) lease_ttl: Duration,

    /// How often the overview refreshes itself.
    #[arg(long, env = "PJP_UI_REFRESH", default_value = "2s", value_parser = parse_duration)]
    pub(crate) refresh: Duration,
}

/// Options of `pjp-prover verify`.
#[derive(Debug, Clone, Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) db: DbArgs,

    /// The object store results were written to (as given to `run`).
    #[arg(long, env = "PJP_STORE_URL", hide_env_values = true)]
    pub(crate) store_url: Option<String>,

    /// The queue name within the schema.
    #[arg(long, env = "PJP_QUEUE", default_value = "proofs")]
    pub(crate) queue: String,

    /// Print JSON instead of text.
    #[arg(long, env = "PJP_JSON")]
    pub(crate) json: bool,
}

/// `--pooler`: `none` or `transaction`.
fn parse_pooler(name: &str) -> Result<pjp_postgres::Pooler, String> {
    pjp_postgres::Pooler::parse(name)
        .ok_or_else(|| format!("`{name}`: use `none` or `transaction`"))
}

/// Options of `pjp-prover run` that make it a fleet worker on a PostgreSQL
/// queue. Without `--database-url` the run uses the embedded queue.
#[derive(Debug, Clone, Args)]
pub(crate) struct FleetArgs {
    /// Serve this PostgreSQL queue (e.g. `postgres://user@host:5432/db`)
    /// instead of the embedded one. Jobs come from `pjp-prover enqueue`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: Option<String>,

    /// The schema the queue's tables live in.
    #[arg(long, env = "PJP_SCHEMA", default_value = pjp_postgres::DEFAULT_SCHEMA)]
    pub(crate) schema: String,

    /// How long to keep retrying a database that is not reachable yet.
    #[arg(long = "wait", env = "PJP_DB_WAIT", default_value = "10s", value_parser = parse_duration)]
    pub(crate) db_wait: Duration,

    /// Object store for payloads and results larger than `--inline-limit`:
    /// `file:///path`, `s3://bucket/prefix`, `gs://…`, `az://…`, `memory://`.
    #[arg(long, env = "PJP_STORE_URL", hide_env_values = true)]
    pub(crate) store_url: Option<String>,

    /// Results up to this many bytes stay in the table; larger ones go to the
    /// store (0: every result goes to the store). Without `--store-url` every
    /// result stays in the table.
    #[arg(long, env = "PJP_INLINE_LIMIT", default_value_t = pjp_postgres::DEFAULT_INLINE_LIMIT)]
    pub(crate) inline_limit: usize,

    /// Connections to the database for claims and saves (plus one for the
    /// heartbeat and one listening for new jobs). Over a slow link each
    /// statement holds one for a round trip: give pickers and savers enough.
    #[arg(long, env = "PJP_CONNECTIONS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) connections: u32,

    /// The lease owner's name in the table (default: host-pid-random).
    #[arg(long, env = "PJP_WORKER_ID")]
    pub(crate) worker_id: Option<String>,

    /// The queue name within the schema.
    #[arg(long, env = "PJP_QUEUE", default_value = "proofs")]
    pub(crate) queue: String,

    /// Stop once no job is queued or leased (a job leased by a dead worker is
    /// still work: it is taken when its lease expires).
    #[arg(long, env = "PJP_EXIT_WHEN_EMPTY")]
    pub(crate) exit_when_empty: bool,

    /// The job kinds this worker serves, comma-separated, in order of
    /// preference: `basic` (proofs: every job that is not an aggregation) and
    /// `aggregate` (closing a batch of a tree). Default: both. A worker
    /// must serve `basic`; `--kinds basic` leaves the aggregations to others.
    #[arg(long, env = "PJP_KINDS", value_delimiter = ',')]
    pub(crate) kinds: Vec<String>,

    /// How often the worker extends its leases.
    #[arg(long, env = "PJP_HEARTBEAT", default_value = "2s", value_parser = parse_duration)]
    pub(crate) heartbeat: Duration,

    /// How long a lease lasts past its latest heartbeat (must exceed
    /// `--heartbeat`); a dead worker's jobs come back after it.
    #[arg(long, env = "PJP_LEASE_TTL", default_value = "3s", value_parser = parse_duration)]
    pub(crate) lease_ttl: Duration,

    /// How often the worker returns dead workers' expired leases to the queue.
    #[arg(long, env = "PJP_RESCUE_INTERVAL", default_value = "500ms", value_parser = parse_duration)]
    pub(crate) rescue_interval: Duration,

    /// How long an idle pick waits for a notification before it polls
    /// (default 1s).
    #[arg(long, env = "PJP_POLL_INTERVAL", value_parser = parse_duration)]
    pub(crate) poll_interval: Option<Duration>,

    /// How `--database-url` reaches PostgreSQL: `none` (straight, or a
    /// pooler in session mode) or `transaction` (a pooler in transaction
    /// mode, e.g. PgBouncer `pool_mode = transaction`: every statement runs
    /// in a transaction of its own, unprepared).
    #[arg(long, env = "PJP_POOLER", default_value = "none", value_parser = parse_pooler)]
    pub(crate) pooler: pjp_postgres::Pooler,

    /// With `--pooler transaction`: a URL reaching the database without the
    /// pooler, where the worker listens for new jobs (without it, it polls
    /// every poll interval).
    #[arg(long, env = "PJP_DIRECT_URL", hide_env_values = true)]
    pub(crate) direct_url: Option<String>,

    /// Keep each claim statement within this latency (e.g. `20ms`): when
    /// claims slow down, fewer of this worker's pickers claim at once (the
    /// others wait in the process). For fleets whose pickers outnumber the
    /// server's connections; off by default.
    #[arg(long, env = "PJP_ADAPTIVE_CLAIMS", value_parser = parse_duration)]
    pub(crate) adaptive_claims: Option<Duration>,
}

/// Where the PostgreSQL queue is.
#[derive(Debug, Clone, Args)]
pub(crate) struct DbArgs {
    /// The queue's database, e.g. `postgres://user@host:5432/db`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: String,

    /// The schema the queue's tables live in.
    #[arg(long, env = "PJP_SCHEMA", default_value = pjp_postgres::DEFAULT_SCHEMA)]
    pub(crate) schema: String,

    /// How long to keep retrying a database that is not reachable yet.
    #[arg(long, env = "PJP_DB_WAIT", default_value = "10s", value_parser = parse_duration)]
    pub(crate) wait: Duration,
}

/// Options of `pjp-prover enqueue`.
#[derive(Debug, Clone, Args)]
pub(crate) struct EnqueueArgs {
    #[command(flatten)]
    pub(crate) db: DbArgs,

    /// Proving jobs to create.
    #[arg(long, env = "PJP_JOBS", required_unless_present = "batches", value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub(crate) jobs: Option<u64>,

    /// Create proof trees instead: per batch, `--circuits` basic proofs
    /// (kind `basic`) and one aggregation over them (kind `aggregate`,
    /// claimable when the last basic proof is saved).
    #[arg(long, conflicts_with = "jobs", requires = "circuits", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) batches: Option<u64>,

    /// Basic proofs per batch (with `--batches`).
    #[arg(long, requires = "batches", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub(crate) circuits: Option<u64>,

    /// log2 of each polynomial's size (2^log_n coefficients).
    #[arg(long, env = "PJP_LOG_N", default_value_t = 18, value_parser = clap::value_parser!(u32).range(1..=24))]
    pub(crate) log_n: u32,

    /// Polynomials per job.
    #[arg(long, env = "PJP_BATCH", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub(crate) batch: u64,

    /// Seed of the synthetic witnesses.
    #[arg(long, env = "PJP_SEED", default_value_t = 1)]
    pub(crate) seed: u64,

    /// Higher runs first (0..=100).
    #[arg(long, env = "PJP_PRIORITY", default_value_t = 0, value_parser = clap::value_parser!(i16).range(0..=100))]
    pub(crate) priority: i16,

    /// The queue name within the schema.
    #[arg(long, env = "PJP_QUEUE", default_value = "proofs")]
    pub(crate) queue: String,

    /// Give job i the unique key `PREFIX/i`: running the same command again
    /// then creates nothing twice.
    #[arg(long, env = "PJP_KEY_PREFIX")]
    pub(crate) key_prefix: Option<String>,

    /// Jobs per insert statement.
    #[arg(long, env = "PJP_ENQUEUE_BATCH", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..=50_000))]
    pub(crate) enqueue_batch: u64,

    /// Progress output: auto (a bar on a terminal, nothing otherwise), bar or none.
    #[arg(long, env = "PJP_PROGRESS", default_value = "auto", value_parser = ["auto", "bar", "none"])]
    pub(crate) progress: String,
}

/// Options of `pjp-prover status`.
#[derive(Debug, Clone, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub(crate) db: DbArgs,

    /// Print JSON instead of text.
    #[arg(long, env = "PJP_JSON")]
    pub(crate) json: bool,

    /// Refresh every interval (default 2s) until interrupted.
    #[arg(long, num_args = 0..=1, default_missing_value = "2s", value_parser = parse_duration)]
    pub(crate) watch: Option<Duration>,

    /// Dead jobs to list at most.
    #[arg(long, default_value_t = 10)]
    pub(crate) dead: i64,

    /// Also print how many workers each queue, kind and class needs
    /// (a dry run for an autoscaler): ceil(work × p95 duration ÷
    /// `--drain-window`), within `--min-workers` and `--max-workers`.
    #[arg(long)]
    pub(crate) plan: bool,

    #[command(flatten)]
    pub(crate) policy: PlanArgs,
}

/// The autoscaling plan's policy (`status --plan`, and the
/// `pjp_queue_desired_workers` gauge of `run --metrics-addr`).
#[derive(Debug, Clone, Args)]
pub(crate) struct PlanArgs {
    /// Drain the backlog within this long.
    #[arg(long, env = "PJP_DRAIN_WINDOW", default_value = "10m", value_parser = parse_duration)]
    pub(crate) drain_window: Duration,

    /// Never plan fewer workers than this per kind and class.
    #[arg(long, env = "PJP_MIN_WORKERS", default_value_t = 0)]
    pub(crate) min_workers: u32,

    /// Never plan more workers than this per kind and class.
    #[arg(long, env = "PJP_MAX_WORKERS", default_value_t = 100)]
    pub(crate) max_workers: u32,

    /// Jobs one worker runs at once.
    #[arg(long, env = "PJP_JOBS_PER_WORKER", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) jobs_per_worker: u32,

    /// A job's duration when none finished in the last minute.
    #[arg(long, env = "PJP_FALLBACK_DURATION", default_value = "60s", value_parser = parse_duration)]
    pub(crate) fallback_duration: Duration,
}

impl PlanArgs {
    /// The planner's policy.
    pub(crate) fn policy(&self) -> ScalePolicy {
        ScalePolicy::new(self.drain_window)
            .min(self.min_workers)
            .max(self.max_workers)
            .jobs_per_worker(self.jobs_per_worker)
            .fallback_duration(self.fallback_duration)
    }
}

/// Options of `pjp-prover requeue`.
#[derive(Debug, Clone, Args)]
pub(crate) struct RequeueArgs {
    #[command(flatten)]
    pub(crate) db: DbArgs,

    /// Requeue dead jobs (the only kind that can be requeued).
    #[arg(long, required = true)]
    pub(crate) dead: bool,

    /// Only this job.
    #[arg(long)]
    pub(crate) id: Option<i64>,

    /// Only this queue's dead jobs.
    #[arg(long, conflicts_with = "id")]
    pub(crate) queue: Option<String>,
}

/// Options of `pjp-prover purge`.
#[derive(Debug, Clone, Args)]
pub(crate) struct PurgeArgs {
    #[command(flatten)]
    pub(crate) db: DbArgs,

    /// Delete jobs that finished longer ago than this, e.g. `7d`.
    #[arg(long, value_parser = parse_duration)]
    pub(crate) older_than: Duration,

    /// Dead jobs too (by default they are kept for `requeue`).
    #[arg(long)]
    pub(crate) include_dead: bool,

    /// The object store the jobs' blobs are in (as given to `run` and
    /// `enqueue`): their blobs are deleted with them.
    #[arg(long, env = "PJP_STORE_URL", hide_env_values = true)]
    pub(crate) store_url: Option<String>,
}

/// Options of `pjp-prover gc`.
#[derive(Debug, Clone, Args)]
pub(crate) struct GcArgs {
    #[command(flatten)]
    pub(crate) db: DbArgs,

    /// The object store to collect (as given to `run` and `enqueue`).
    #[arg(long, env = "PJP_STORE_URL", hide_env_values = true)]
    pub(crate) store_url: String,

    /// Only blobs older than this (above the longest save: an upload whose
    /// row is about to commit is young), e.g. `1h`.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub(crate) older_than: Duration,

    /// Count what would be deleted; delete nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,

    /// Go on when the schema's prefix in the store holds blobs of no queue
    /// identity (hand-made, or an older layout): they are counted and left
    /// alone. Without it, `gc` refuses to run beside them.
    #[arg(long)]
    pub(crate) ignore_unowned: bool,

    /// Print JSON instead of text.
    #[arg(long, env = "PJP_JSON")]
    pub(crate) json: bool,
}

/// Options of `pjp-prover run`. Every flag can also be set through the
/// environment variable named in its help.
#[derive(Debug, Clone, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) fleet: FleetArgs,

    /// Synthetic jobs seeded into the embedded queue.
    #[arg(long, env = "PJP_JOBS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub(crate) jobs: u64,

    /// The embedded run as proof trees: every this many jobs are a batch's
    /// basic proofs (kind `basic`), under one aggregation (kind
    /// `aggregate`) that becomes claimable when the batch's last proof is
    /// saved and commits to all of them in a Merkle root. The summary shows
    /// each round. 0: flat jobs, no aggregation. (A fleet's trees come from
    /// `enqueue --batches --circuits`.)
    #[arg(long, env = "PJP_CIRCUITS", default_value_t = 25, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub(crate) circuits: u64,

    /// log2 of each polynomial's size (2^log_n coefficients).
    #[arg(long, env = "PJP_LOG_N", default_value_t = 18, value_parser = clap::value_parser!(u32).range(1..=24))]
    pub(crate) log_n: u32,

    /// Polynomials per job.
    #[arg(long, env = "PJP_BATCH", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub(crate) batch: u64,

    /// Witness-generator workers (CPU).
    #[arg(long, env = "PJP_WITNESS_WORKERS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub(crate) witness_workers: u64,

    /// Circuit-prover workers (each runs one NTT job at a time).
    #[arg(long, env = "PJP_PROVER_WORKERS", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub(crate) prover_workers: u64,

    /// NTT backend: auto (CUDA if a GPU is usable, else CPU), cpu or cuda.
    #[arg(long, env = "PJP_GPU", default_value = "auto", value_parser = parse_backend)]
    pub(crate) backend: BackendChoice,

    /// Fraction of jobs whose proving fails with an error (injected fault).
    #[arg(long, env = "PJP_FAIL_RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub(crate) fail_rate: f64,

    /// Fraction of jobs whose proving panics (injected fault; caught and saved as failed).
    #[arg(long, env = "PJP_PANIC_RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub(crate) panic_rate: f64,

    /// Delay of every pick from the queue, e.g. `10ms` (a database round trip).
    #[arg(long, env = "PJP_PICK_LATENCY", default_value = "0ms", value_parser = parse_duration)]
    pub(crate) pick_latency: Duration,

    /// Delay of every save, e.g. `10ms`.
    #[arg(long, env = "PJP_SAVE_LATENCY", default_value = "0ms", value_parser = parse_duration)]
    pub(crate) save_latency: Duration,

    /// Random extra delay, up to this fraction of each pick/save latency.
    #[arg(long, env = "PJP_LATENCY_JITTER", default_value_t = 0.2, value_parser = parse_rate)]
    pub(crate) latency_jitter: f64,

    /// Picks in flight at once (each hides one queue round trip).
    #[arg(long, env = "PJP_PICKERS", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub(crate) pickers: u64,

    /// Jobs claimed per pick (one statement on PostgreSQL).
    #[arg(long, env = "PJP_PICK_BATCH", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub(crate) pick_batch: u64,

    /// Jobs claimed ahead of the witness workers (at least `--pick-batch`;
    /// `--pickers` × `--pick-batch` keeps every picker busy).
    #[arg(long, env = "PJP_PREFETCH", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub(crate) prefetch: u64,

    /// Saves in flight at once, per stage.
    #[arg(long, env = "PJP_SAVERS", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub(crate) savers: u64,

    /// Results saved per call (one statement on PostgreSQL).
    #[arg(long, env = "PJP_SAVE_BATCH", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub(crate) save_batch: u64,

    /// Verify every k-th result with the inverse NTT (0 = never).
    #[arg(long, env = "PJP_VERIFY_EVERY", default_value_t = 10)]
    pub(crate) verify_every: u64,

    /// Seed for the synthetic witnesses and the injected faults.
    #[arg(long, env = "PJP_SEED", default_value_t = 1)]
    pub(crate) seed: u64,

    /// Run the same work as one plain pick → execute → save loop (no pipeline),
    /// for comparison.
    #[arg(long, env = "PJP_SEQUENTIAL")]
    pub(crate) sequential: bool,

    /// After the first signal, abandon once this much time has passed (e.g. `30s`).
    #[arg(long, env = "PJP_GRACE_PERIOD", value_parser = parse_duration)]
    pub(crate) grace_period: Option<Duration>,

    /// Print the summary as JSON instead of a table.
    #[arg(long, env = "PJP_JSON")]
    pub(crate) json: bool,

    /// Draw the run as an SVG timeline and write it to this file: one lane
    /// per picker, worker and saver task of each stage, a throughput strip
    /// below.
    #[arg(long, env = "PJP_TIMELINE", conflicts_with = "sequential")]
    pub(crate) timeline: Option<std::path::PathBuf>,

    /// Serve Prometheus metrics at this address, e.g. `127.0.0.1:9000`.
    /// A fleet worker adds the queue's load and the autoscaling plan
    /// (`pjp_queue_desired_workers`, with the `--drain-window` policy).
    #[arg(long, env = "PJP_METRICS_ADDR")]
    pub(crate) metrics_addr: Option<SocketAddr>,

    #[command(flatten)]
    pub(crate) plan: PlanArgs,

    /// Progress output: auto (a bar on a terminal, log lines otherwise), bar,
    /// lines or none.
    #[arg(long, env = "PJP_PROGRESS", default_value = "auto", value_parser = ["auto", "bar", "lines", "none"])]
    pub(crate) progress: String,
}

fn jittered(latency: Duration, jitter: f64) -> LatencyProfile {
    LatencyProfile::uniform(latency, latency.mul_f64(1.0 + jitter))
}

fn parse_backend(value: &str) -> Result<BackendChoice, String> {
    value
        .parse()
        .map_err(|e: pjp_gpu::BackendError| e.to_string())
}

fn parse_rate(value: &str) -> Result<f64, String> {
    let rate: f64 = value
        .parse()
        .map_err(|_| format!("`{value}` is not a number"))?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!("`{value}` is not a fraction between 0 and 1"))
    }
}

fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value).map_err(|e| format!("`{value}`: {e} (try e.g. 10ms or 2s)"))
}

impl RunArgs {
    /// The run these flags ask for, checked: the combinations the per-flag
    /// parsers cannot see are refused here, as usage errors.
    pub(crate) fn config(&self) -> Result<RunConfig, String> {
        let mut config = RunConfig::default();
        config.jobs = self.jobs;
        config.circuits = self.circuits;
        config.log_n = self.log_n;
        config.batch = self.batch;
        config.seed = self.seed;
        config.witness_workers = count(self.witness_workers)?;
        config.prover_workers = count(self.prover_workers)?;
        config.backend = self.backend;
        config.faults = FaultRates {
            fail: self.fail_rate,
            panic: self.panic_rate,
            seed: self.seed,
        };
        config.pick_latency = jittered(self.pick_latency, self.latency_jitter);
        config.save_latency = jittered(self.save_latency, self.latency_jitter);
        config.pickers = count(self.pickers)?;
        config.pick_batch = count(self.pick_batch)?;
        config.prefetch = count(self.prefetch)?;
        config.savers = count(self.savers)?;
        config.save_batch = count(self.save_batch)?;
        config.verify_every = self.verify_every;
        config.grace_period = self.grace_period;
        config.record_timeline = self.timeline.is_some();
        config.fleet = self.fleet.config()?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }
}

/// A count flag as the config's `usize` (clap bounds them far below).
fn count(value: u64) -> Result<usize, String> {
    usize::try_from(value).map_err(|_| format!("{value} is too large for this machine"))
}

impl EnqueueArgs {
    /// Checks what clap cannot: a job's size, which `run` would reject.
    pub(crate) fn validate(&self) -> Result<(), String> {
        check_size(self.batch, self.log_n).map_err(|e| e.to_string())
    }
}

impl FleetArgs {
    /// The fleet worker these flags ask for; `None` without `--database-url`.
    fn config(&self) -> Result<Option<FleetConfig>, String> {
        self.check_kinds()?;
        let Some(url) = &self.database_url else {
            return Ok(None);
        };
        let mut fleet = FleetConfig::new(url.clone());
        fleet.schema = self.schema.clone();
        fleet.queue = self.queue.clone();
        fleet.db_wait = self.db_wait;
        fleet.store_url = self.store_url.clone();
        fleet.inline_limit = self.inline_limit;
        fleet.connections = self.connections;
        fleet.worker_id = self.worker_id.clone();
        fleet.exit_when_empty = self.exit_when_empty;
        fleet.aggregates = self.kinds.is_empty() || self.kinds.iter().any(|k| k == AGGREGATE);
        fleet.heartbeat = self.heartbeat;
        fleet.lease_ttl = self.lease_ttl;
        fleet.rescue_interval = self.rescue_interval;
        fleet.poll_interval = self.poll_interval;
        fleet.pooler = self.pooler;
        fleet.direct_url = self.direct_url.clone();
        fleet.adaptive_claims = self.adaptive_claims;
        Ok(Some(fleet))
    }

    /// `--kinds` names only kinds this prover knows, and a proving one.
    fn check_kinds(&self) -> Result<(), String> {
        if let Some(unknown) = self
            .kinds
            .iter()
            .find(|k| ![BASIC, AGGREGATE].contains(&k.as_str()))
        {
            return Err(format!(
                "--kinds: unknown kind `{unknown}` (use {BASIC} and/or {AGGREGATE})"
            ));
        }
        if !self.kinds.is_empty() && !self.kinds.iter().any(|k| k == BASIC) {
            return Err(format!(
                "--kinds must include `{BASIC}`: every worker proves"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// The flags' defaults are the library's: a run with no flags is
    /// `RunConfig::default()`, a fleet worker `FleetConfig::new(url)`.
    #[test]
    fn the_flags_defaults_are_the_library_defaults() {
        let url = "postgres://u@h/db";
        let cli = Cli::try_parse_from(["pjp-prover", "run", "--database-url", url])
            .unwrap_or_else(|e| panic!("{e}"));
        let Command::Run(args) = cli.command else {
            panic!("not a run: {cli:?}");
        };
        let mut expected = RunConfig::default();
        expected.fleet = Some(FleetConfig::new(url));
        assert_eq!(
            format!("{:?}", args.config()),
            format!("{:?}", Ok::<_, String>(expected))
        );
    }
}
