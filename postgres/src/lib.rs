//! # pjp-postgres
//!
//! A durable job queue shared by many machines, on PostgreSQL, as a
//! [`JobPicker`](pjp_core::JobPicker)/[`JobSaver`](pjp_core::JobSaver) pair for
//! the prover-job-processor runner.
//!
//! * **A claim is a lease.** [`PgPicker`] claims up to K jobs per statement
//!   (`FOR UPDATE SKIP LOCKED`, highest priority first, then oldest). Each
//!   claim records its owner, an expiry on the database's clock and a new
//!   fencing token.
//! * **One heartbeat per process** ([`PgWorker`]) extends every lease the
//!   process holds in one statement per interval, on its own connection. A
//!   worker that dies stops heartbeating; any live worker returns its jobs to
//!   the queue once their leases expire, counting a *lost lease*, not an
//!   attempt.
//! * **Every write is fenced.** [`PgSaver`] completes a batch of jobs in one
//!   statement, each only if its token still matches. A stale worker's late
//!   result is rejected ([`QueueError::Fenced`]), counted and logged.
//! * **Two budgets.** An executor failure uses an attempt and retries after a
//!   back-off; a lost lease uses the smaller `max_lost_leases`, so a job that
//!   kills every worker that takes it ends `dead` instead of looping. A
//!   shutdown release burns nothing. Dead jobs keep their last error; see
//!   [`PgQueue::dead_jobs`] and [`PgQueue::requeue`].
//! * **Wake-ups by `LISTEN/NOTIFY`**, one listening connection per process,
//!   with polling as the fallback.
//! * **Through a connection pooler** in transaction mode ([`Pooler`]): every
//!   statement in a transaction of its own, unprepared, no session state;
//!   the worker listens on a direct URL or polls ([`WakeUp`]).
//! * **Liveness costs scale with workers**: one heartbeat statement per
//!   worker per interval, and one rescuer per schema
//!   ([`PgWorker::is_rescuer`]).
//! * **Large payloads and results in an object store** ([`PayloadStore`]:
//!   `file://`, `memory://`, `s3://`, `gs://`, `az://`), small ones inline.
//!
//! ```no_run
//! use std::time::Duration;
//! use pjp_core::{BackoffPolicy, JobRunner, Shutdown};
//! use pjp_postgres::{NewJob, PayloadStore, PgQueue, WorkerConfig};
//! use pjp_runtime_tokio::{TokioRuntime, shutdown_on_signals};
//! # struct Prove;
//! # impl pjp_core::Executor for Prove {
//! #     type Input = bytes::Bytes;
//! #     type Output = Vec<u8>;
//! #     type Error = String;
//! #     fn execute(&self, i: bytes::Bytes, _job: &pjp_core::JobContext) -> Result<Vec<u8>, String> {
//! #         Ok(i.to_vec())
//! #     }
//! # }
//! # async fn demo() -> anyhow::Result<()> {
//!
//! // 1. Once per database: create the schema (idempotent; safe from many machines).
//! let queue = PgQueue::builder("postgres://prover@db.internal/app")
//!     .store(PayloadStore::open("s3://proofs-bucket/pjp")?)
//!     .connect()
//!     .await?;
//! queue.migrate().await?;
//!
//! // 2. Producers enqueue, thousands per round trip; a unique key makes a retried
//! //    enqueue a no-op. `enqueue_in(&mut tx, …)` joins the producer's transaction.
//! let jobs = (0..10_000u32)
//!     .map(|i| NewJob::new("proofs", i.to_le_bytes().to_vec()).unique_key(format!("batch-7/{i}")))
//!     .collect();
//! queue.enqueue_many(jobs).await?;
//!
//! // 3. Every GPU machine runs one worker process: one heartbeat, one listener,
//! //    a fixed pool, however many pickers and executor workers it has.
//! let worker = queue.worker(WorkerConfig::default()).await?;
//! let runner = JobRunner::builder(worker.picker("proofs")?, Prove, worker.saver())
//!     .pick_batch(64)
//!     .save_batch(64)
//!     .empty_backoff(BackoffPolicy::new(Duration::from_millis(1), Duration::from_millis(10)))
//!     .job_cancels(worker.job_cancels())
//!     .build()?;
//! let shutdown = Shutdown::new();
//! shutdown_on_signals(shutdown.clone()); // SIGTERM drains: in-flight jobs finish and save
//! let report = runner.run(&TokioRuntime::current(), shutdown).await?;
//! println!("{} saved, {} fenced; {:?}", report.counts.succeeded, report.counts.fenced, worker.stats());
//!
//! // 4. Operators: counts, oldest queued job, live lease owners; dead letters.
//! for q in queue.stats().await? {
//!     println!("{}: {:?}, oldest queued {:?}, workers {:?}", q.queue, q.counts, q.oldest_queued, q.lease_owners);
//! }
//! for dead in queue.dead_jobs(None, 100).await? {
//!     println!("job {} dead: {}", dead.id, dead.last_error);
//! }
//! queue.requeue_dead(Some("proofs")).await?;
//! queue.purge(Duration::from_secs(7 * 24 * 3600), false).await?; // keep the table small
//! # Ok(()) }
//! ```
//!
//! The schema, its indexes and why each exists are in `migrations/`; every
//! statement the queue runs is in `src/sql/`.

#![forbid(unsafe_code)]

pub mod autoscale;
mod client;
mod error;
mod redact;
mod save;
mod sql;
mod store;
mod worker;

// The modules by their own names, whatever folder holds them.
use client::{admin, db, enqueue, gc, queue, schema};
use save::{fanout, saver, write};
use worker::{config, gate, heartbeat, job, listen, picker, state};

pub use admin::{
    ChildResult, DataRef, DeadJob, JOB_PAGE_WINDOW, JOB_STATUSES, JobDetail, JobFilter, JobPage,
    JobRow, JobSpan, JobSummary, JobTree, KindCounts, KindLoad, LeaseHolder, MAX_TREE_NODES,
    Purged, QueueStats, ResultRef, TreeNode, TreeTop,
};
pub use config::WorkerConfig;
pub use db::Pooler;
pub use enqueue::{Enqueued, MAX_PRIORITY, NewJob, Tree};
pub use error::QueueError;
pub use fanout::{FanOut, FanOutSaver, Spawn};
pub use gc::{CollectOptions, Collected};
pub use job::PgJob;
pub use picker::{MAX_CLAIM_BATCH, PgPicker};
pub use pjp_core::JobKind;
pub use pjp_core::{ClaimOrder, LateResults};
pub use queue::{DEFAULT_MAX_CONNECTIONS, DEFAULT_SCHEMA, PgQueue, PgQueueBuilder};
pub use redact::redact_url;
pub use saver::PgSaver;
pub use schema::{MIGRATOR, schema_version};
pub use state::WorkerStats;
pub use store::{DEFAULT_INLINE_LIMIT, PayloadStore};
pub use worker::maintain::Maintained;
pub use worker::{PgWorker, WakeUp};
