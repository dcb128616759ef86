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
//! * **Large payloads and results in an object store** ([`PayloadStore`]:
//!   `file://`, `memory://`, `s3://`, `gs://`, `az://`), small ones inline.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use pjp_postgres::{NewJob, PgQueue, WorkerConfig};
//!
//! let queue = PgQueue::connect("postgres://127.0.0.1/app").await?;
//! queue.migrate().await?;
//! queue.enqueue_many((0..1000u32).map(|i| NewJob::new("proofs", i.to_le_bytes().to_vec())).collect()).await?;
//!
//! let worker = queue.worker(WorkerConfig::default()).await?;
//! let picker = worker.picker("proofs")?.exit_when_empty(true);
//! let saver = worker.saver::<Vec<u8>, std::io::Error>();
//! // JobRunner::builder(picker, executor, saver).pick_batch(64).save_batch(64) …
//! # let _ = (picker, saver);
//! # Ok(()) }
//! ```
//!
//! The schema, its indexes and why each exists are in `migrations/`; the
//! statements in `src/sql.rs`.

#![forbid(unsafe_code)]

mod admin;
mod enqueue;
mod error;
mod heartbeat;
mod listen;
mod picker;
mod queue;
mod saver;
mod schema;
mod sql;
mod store;
mod worker;
mod write;

pub use admin::{DeadJob, JobRow, Purged, QueueStats};
pub use enqueue::{Enqueued, MAX_PRIORITY, NewJob};
pub use error::QueueError;
pub use picker::{MAX_CLAIM_BATCH, PgPicker};
pub use queue::{DEFAULT_MAX_CONNECTIONS, DEFAULT_SCHEMA, PgQueue, PgQueueBuilder};
pub use saver::PgSaver;
pub use schema::schema_version;
pub use store::{DEFAULT_INLINE_LIMIT, PayloadStore};
pub use worker::{PgJob, PgWorker, WorkerConfig, WorkerStats};
