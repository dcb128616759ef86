//! [`PgWorker`]: one process's membership in the queue: its leases, its
//! heartbeat, its wake-ups. Pickers and savers come from it.
//!
//! Dependencies point one way: this module starts the [`heartbeat`] and the
//! [`listen`]er and hands out [`picker`]s and savers; all of them share only
//! the leaves [`state`], [`config`] and [`job`], which import none of them.
//! So each part reads on its own, and none reaches back into the worker
//! that owns it.

pub(crate) mod coalesce;
pub(crate) mod config;
pub(crate) mod gate;
pub(crate) mod heartbeat;
pub(crate) mod job;
pub(crate) mod listen;
pub(crate) mod maintain;
pub(crate) mod picker;
pub(crate) mod state;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use pjp_core::{JobCancels, JobId};
use sqlx::postgres::PgPoolOptions;
use tokio::sync::watch;
use tokio_util::task::AbortOnDropHandle;

use crate::config::WorkerConfig;
use crate::error::QueueError;
use crate::fanout::FanOutSaver;
use crate::gate::ClaimGate;
use crate::heartbeat::{Heartbeat, HeartbeatParts};
use crate::picker::PgPicker;
use crate::queue::PgQueue;
use crate::saver::PgSaver;
use crate::state::{ClaimLatency, Counters, Leases, Wakeups, WorkerShared, WorkerStats};

/// The widest window of claims in flight that
/// [`WorkerConfig::adaptive_claims`] opens.
const MAX_CLAIMS_IN_FLIGHT: usize = 256;

/// How a worker's idle picks learn of new jobs ([`PgWorker::wake_up`]),
/// logged when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WakeUp {
    /// `LISTEN` on a connection of its own straight to the server: the
    /// queue's own URL, or its [`direct_url`](crate::PgQueueBuilder::direct_url)
    /// when it goes through a transaction pooler. Idle picks still poll
    /// every poll interval, in case a notification is lost.
    Listen,
    /// Polling every poll interval: the queue goes through a transaction
    /// pooler, which cannot carry `LISTEN`, and was given no direct URL.
    Poll(Duration),
}

impl fmt::Display for WakeUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Listen => f.write_str("LISTEN on a direct connection"),
            Self::Poll(every) => write!(f, "polling every {every:?}"),
        }
    }
}

/// One worker process's membership in the queue.
///
/// It holds what must exist once per process, whatever the number of pickers,
/// executor workers or runners: the registry of the leases it holds, one
/// heartbeat that extends all of them in one statement per interval (on its
/// own connection and its own thread, so busy claims and saves, and
/// executors that keep the caller's runtime busy, never starve it), and one
/// connection listening for enqueue notifications. Pickers and savers made
/// from it share these.
///
/// Background tasks stop when the worker and every picker and saver made from
/// it are dropped; a worker that dies without that simply stops heartbeating,
/// and other workers rescue its jobs once their leases expire.
///
/// Connections per process: the queue's pool (default
/// [`DEFAULT_MAX_CONNECTIONS`](crate::DEFAULT_MAX_CONNECTIONS)) + 1 heartbeat
/// + 1 listener (none when it polls: [`WakeUp`]).
///
/// ```no_run
/// # async fn demo() -> anyhow::Result<()> {
/// use pjp_core::{Executor, JobContext, JobRunner, Shutdown};
/// use pjp_postgres::{PgQueue, WorkerConfig};
/// use pjp_runtime_tokio::TokioRuntime;
///
/// struct Echo;
/// impl Executor for Echo {
///     type Input = bytes::Bytes;
///     type Output = bytes::Bytes;
///     type Error = String;
///     fn execute(&self, input: bytes::Bytes, _job: &JobContext) -> Result<bytes::Bytes, String> {
///         Ok(input)
///     }
/// }
///
/// let queue = PgQueue::connect("postgres://127.0.0.1/app").await?;
/// let worker = queue.worker(WorkerConfig::default()).await?;
/// let runner = JobRunner::builder(worker.picker("proofs")?, Echo, worker.saver())
///     .pick_batch(64)
///     .save_batch(64)
///     .job_cancels(worker.job_cancels())
///     .build()?;
/// let report = runner.run(&TokioRuntime::current(), Shutdown::new()).await?;
/// println!("{report:?}, {:?}", worker.stats());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PgWorker {
    shared: Arc<WorkerShared>,
    /// Here rather than in [`WorkerShared`], which the heartbeat imports: the
    /// shared state stays a leaf. Its task holds it too, and is stopped
    /// through the shared state's handles.
    heartbeat: Arc<Heartbeat>,
    wake_up: WakeUp,
}

impl fmt::Debug for PgWorker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgWorker")
            .field("id", &self.shared.config.id)
            .field("leases", &self.shared.leases.len())
            .finish_non_exhaustive()
    }
}

// Here, not beside the rest of `PgQueue`: the queue handle knows nothing of
// workers, so the worker depends on it and never the other way round.
impl PgQueue {
    /// Starts a worker on this queue: checks the schema, then spawns its
    /// heartbeat (on a thread of its own), its notification listener and its
    /// maintenance (on the ambient tokio runtime).
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: a worker dropped before it is returned aborts its heartbeat and listener,
    /// and holds no lease.
    pub async fn worker(&self, config: WorkerConfig) -> Result<PgWorker, QueueError> {
        self.check_schema().await?;
        // The rescuer keeps the hot set, but the role may still be held by
        // a worker that just stopped: a starting worker brings it up to date
        // so its first claims do not read chunks long finished.
        self.keep_hot_set().await?;
        PgWorker::start(self.clone(), config).await
    }
}

impl PgWorker {
    async fn start(queue: PgQueue, config: WorkerConfig) -> Result<Self, QueueError> {
        config.validate()?;
        let leases = Arc::new(Leases::default());
        let wakeups = Arc::new(Wakeups::default());
        let counters = Arc::new(Counters::default());
        // Where to LISTEN: a transaction pooler cannot carry it (a
        // notification goes to the session that listened, which the pooler
        // lends to other clients between transactions).
        let listen_on = if queue.inner.pool.pooled() {
            queue.inner.direct.clone()
        } else {
            Some(queue.inner.connect.clone())
        };
        let wake_up = match listen_on {
            Some(_) => WakeUp::Listen,
            None => WakeUp::Poll(config.poll_interval),
        };
        tracing::info!(worker = %config.id, "wake-ups: {wake_up}");
        let (heartbeat, heartbeat_thread) = crate::heartbeat::spawn(HeartbeatParts {
            queue: queue.clone(),
            config: config.clone(),
            leases: leases.clone(),
            counters: counters.clone(),
        })
        .await?;
        let mut tasks = vec![AbortOnDropHandle::new(tokio::spawn(maintain::run(
            queue.clone(),
            config.maintenance_interval,
        )))];
        if let Some(options) = listen_on {
            // One connection, opened lazily and reopened by sqlx after a cut.
            let listen_pool = PgPoolOptions::new()
                .max_connections(1)
                .connect_lazy_with(options);
            let (listening, mut ready) = watch::channel(false);
            let listener = crate::listen::listen(
                listen_pool,
                queue.inner.channel.clone(),
                wakeups.clone(),
                counters.clone(),
                listening,
            );
            tasks.push(AbortOnDropHandle::new(tokio::spawn(listener)));
            // Start listening before the first pick, so that no enqueue right
            // after start-up goes unnoticed; a listener that cannot connect yet
            // does not hold the worker back (picks poll meanwhile).
            let _ = tokio::time::timeout(config.poll_interval, ready.wait_for(|up| *up)).await;
        }
        let claim_gate = config
            .claim_target
            .map(|target| ClaimGate::new(target, MAX_CLAIMS_IN_FLIGHT));
        Ok(Self {
            shared: Arc::new(WorkerShared {
                queue,
                claim_gate,
                claim_lines: Default::default(),
                claim_latency: ClaimLatency::new(),
                claim_server_latency: ClaimLatency::new(),
                config,
                leases,
                wakeups,
                counters,
                _tasks: tasks,
                _heartbeat: heartbeat_thread,
            }),
            heartbeat,
            wake_up,
        })
    }

    /// How its idle picks learn of new jobs: `LISTEN`, or polling when the
    /// queue goes through a transaction pooler without a direct URL.
    pub fn wake_up(&self) -> WakeUp {
        self.wake_up
    }

    /// How many claim statements may be in flight now, on average, with
    /// [`WorkerConfig::adaptive_claims`] (`None` without: no limit). Below
    /// one, the worker's claims are paced: one is in flight that share of
    /// the time.
    pub fn claim_window(&self) -> Option<f64> {
        self.shared.claim_gate.as_ref().map(ClaimGate::limit)
    }

    /// How long its claim statements took since it started, from asking the
    /// pool for a connection to the answer (p50, p99, max over every claim,
    /// those that found nothing included; a wait at a pooler counts, a wait
    /// for [`WorkerConfig::adaptive_claims`]'s window does not). Claims slowing down is how a queue overloaded by its fleet
    /// shows first.
    pub fn claim_latency(&self) -> pjp_core::LatencySummary {
        self.shared.claim_latency.summary()
    }

    /// How long the server itself spent on its claim statements that took
    /// jobs, from the statement reaching it to its last row (p50, p99, max).
    /// Beside [`claim_latency`](Self::claim_latency) it tells where slow
    /// claims wait: both high, the database is overloaded; only the
    /// worker's, the wait is at the pooler, in the network or in this
    /// process.
    ///
    /// ```no_run
    /// # async fn show(worker: &pjp_postgres::PgWorker) {
    /// let (total, server) = (worker.claim_latency(), worker.claim_server_latency());
    /// println!("claim p99 {:?}, of which in the server {:?}", total.p99, server.p99);
    /// # }
    /// ```
    pub fn claim_server_latency(&self) -> pjp_core::LatencySummary {
        self.shared.claim_server_latency.summary()
    }

    /// The worker id (the lease owner in the table).
    pub fn id(&self) -> &str {
        &self.shared.config.id
    }

    /// The queue handle it belongs to.
    pub fn queue(&self) -> &PgQueue {
        &self.shared.queue
    }

    /// A picker claiming from `queue` (a queue name within the schema).
    pub fn picker(&self, queue: &str) -> Result<PgPicker, QueueError> {
        PgPicker::new(self.shared.clone(), queue)
    }

    /// A saver completing this worker's jobs. Outputs are bytes
    /// (`AsRef<[u8]>`); executor errors are recorded with their `Display`.
    /// Its types are inferred from the runner it is given to; to configure
    /// it first ([`PgSaver::permanent_if`](crate::PgSaver::permanent_if)), start from
    /// [`saver_for`](Self::saver_for).
    pub fn saver<O, F>(&self) -> PgSaver<O, F> {
        PgSaver::new(self.shared.clone())
    }

    /// A saver for `executor`'s outputs and errors: [`saver`](Self::saver)
    /// with its types taken from the executor, so that the closures of
    /// [`PgSaver::permanent_if`](crate::PgSaver::permanent_if) and [`PgSaver::infrastructure_if`](crate::PgSaver::infrastructure_if) need no
    /// type annotations.
    ///
    /// ```no_run
    /// # fn demo(worker: pjp_postgres::PgWorker) {
    /// use pjp_core::{ExecError, executor_fn};
    ///
    /// let prove = executor_fn(|input: bytes::Bytes| {
    ///     if input.is_empty() { Err("invalid: empty input".to_owned()) } else { Ok(input.to_vec()) }
    /// });
    /// let saver = worker
    ///     .saver_for(&prove)
    ///     .permanent_if(|e| matches!(e, ExecError::Failed(msg) if msg.starts_with("invalid")));
    /// # let _ = pjp_core::JobRunner::builder(worker.picker("proofs").unwrap(), prove, saver);
    /// # }
    /// ```
    pub fn saver_for<E: pjp_core::Executor>(&self, executor: &E) -> PgSaver<E::Output, E::Error> {
        let _ = executor;
        self.saver()
    }

    /// A saver whose outputs are [`FanOut`](crate::FanOut)s: each save
    /// completes its job and creates the jobs it spawns in one fenced
    /// transaction (dynamic fan-out).
    pub fn fan_out_saver<O, F>(&self) -> FanOutSaver<O, F> {
        FanOutSaver {
            shared: self.shared.clone(),
            inner: PgSaver::new(self.shared.clone()),
        }
    }

    /// The set of running jobs whose lease loss cancels them; pass it to the
    /// runner ([`RunnerBuilder::job_cancels`](pjp_core::RunnerBuilder::job_cancels)).
    pub fn job_cancels(&self) -> JobCancels {
        self.shared.config.cancels.clone()
    }

    /// How many leases the worker holds right now.
    pub fn leases_held(&self) -> usize {
        self.shared.leases.len()
    }

    /// What the worker counted since it started.
    pub fn stats(&self) -> WorkerStats {
        self.shared.counters.snapshot()
    }

    /// The jobs this worker handed back to the queue (released on shutdown
    /// or abandon, by a cancelled execution, a save that gave up, or put back
    /// after an infrastructure failure) and has not finished since, in id
    /// order. Only hand-backs the database confirmed are listed: a job
    /// another claim had already superseded is not.
    pub fn handed_back(&self) -> Vec<JobId> {
        self.shared
            .counters
            .handed_back_ids()
            .into_iter()
            .filter_map(|id| u64::try_from(id).ok().map(JobId::new))
            .collect()
    }

    /// Extends every lease this worker holds now, without waiting for the
    /// next heartbeat; returns how many it extended. Leases it finds lost are
    /// forgotten and their executions cancelled, as on a timed heartbeat.
    ///
    /// The background heartbeat does this every
    /// [`heartbeat_interval`](WorkerConfig::heartbeat_interval); call it to
    /// drive the protocol step by step (a conformance suite, a test).
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: one statement extending leases the worker already holds; dropped, it may or
    /// may not have extended them, and the next heartbeat does.
    pub async fn heartbeat_now(&self) -> Result<usize, QueueError> {
        self.heartbeat.beat().await
    }

    /// Whether this worker holds the schema's rescuer role (as of its latest
    /// heartbeat or rescue): one worker of a schema at a time returns
    /// expired leases to the queue, every
    /// [`rescue_interval`](WorkerConfig::rescue_interval); when it dies, the
    /// next heartbeat of another worker takes the role over.
    pub fn is_rescuer(&self) -> bool {
        self.heartbeat.is_rescuer()
    }

    /// Returns every expired lease in the schema to the queue (or, past its
    /// lost-lease budget, to `dead`) now, whether or not this worker holds
    /// the rescuer role; returns how many. The role's holder does this every
    /// [`rescue_interval`](WorkerConfig::rescue_interval).
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: one statement; dropped, it may or may not have returned expired jobs to the
    /// queue, and the next rescue does the rest.
    pub async fn rescue_now(&self) -> Result<u64, QueueError> {
        self.heartbeat.rescue().await
    }
}
