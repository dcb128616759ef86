//! [`PgWorker`]: one process's membership in the queue: its leases, its
//! heartbeat, its wake-ups. Pickers and savers come from it.

pub(crate) mod heartbeat;
pub(crate) mod listen;
pub(crate) mod picker;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use pjp_core::{JobCancels, JobId, JobKind, JobMeta};
use sqlx::postgres::PgPoolOptions;
use tokio::sync::watch;
use tokio_util::task::AbortOnDropHandle;

use crate::{PgQueue, QueueError};

/// How a worker holds its leases ([`PgQueue::worker`]).
///
/// The defaults: a heartbeat every 2 s extends every lease to 3 s from the
/// database's clock, so a live worker survives one late heartbeat; every
/// worker looks for expired leases every 500 ms. A worker that dies is
/// therefore rescued at most 3.5 s after its last heartbeat, within 2 ×
/// the heartbeat interval.
///
/// ```
/// use std::time::Duration;
/// use pjp_postgres::WorkerConfig;
///
/// let config = WorkerConfig::new("gpu-7")
///     .heartbeat_interval(Duration::from_secs(1))
///     .lease_ttl(Duration::from_millis(1500));
/// assert_eq!(config.id(), "gpu-7");
/// ```
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub(crate) id: String,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) lease_ttl: Duration,
    pub(crate) rescue_interval: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) retry_base: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) cancels: JobCancels,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self::new(default_worker_id())
    }
}

/// `host-pid-xxxx`: unique per process, readable in `stats`.
fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_owned());
    format!("{host}-{}-{:04x}", std::process::id(), fastrand::u16(..))
}

impl WorkerConfig {
    /// The defaults, with the given worker id (it names the lease owner).
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            heartbeat_interval: Duration::from_secs(2),
            lease_ttl: Duration::from_secs(3),
            rescue_interval: Duration::from_millis(500),
            poll_interval: Duration::from_secs(1),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            cancels: JobCancels::new(),
        }
    }

    /// The worker id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// How often the heartbeat extends this worker's leases (default 2 s).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// How long a lease lasts past its latest claim or heartbeat (default
    /// 3 s). Must exceed the heartbeat interval; the slack is how late a
    /// heartbeat may be before a live worker loses its jobs.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// How often this worker returns expired leases to the queue (default
    /// 500 ms). Every worker does it; it is one cheap statement.
    pub fn rescue_interval(mut self, interval: Duration) -> Self {
        self.rescue_interval = interval;
        self
    }

    /// How long an idle pick waits for a notification before it polls again
    /// (default 1 s). Notifications wake it sooner; polling covers a dropped
    /// listener.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The back-off before a failed job runs again: `base × 2^attempts`,
    /// capped at `max`, with jitter (defaults 1 s and 5 min).
    pub fn retry_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.retry_base = base;
        self.retry_max = max.max(base);
        self
    }

    /// The set of running jobs the heartbeat cancels when their lease is lost.
    /// Give the runner the same one
    /// ([`RunnerBuilder::job_cancels`](pjp_core::RunnerBuilder::job_cancels)),
    /// or take it from [`PgWorker::job_cancels`].
    pub fn job_cancels(mut self, cancels: JobCancels) -> Self {
        self.cancels = cancels;
        self
    }

    fn validate(&self) -> Result<(), QueueError> {
        if self.id.is_empty() || self.id.len() > 200 {
            return Err(QueueError::invalid("worker id", "must be 1–200 bytes long"));
        }
        for (what, value) in [
            ("heartbeat interval", self.heartbeat_interval),
            ("rescue interval", self.rescue_interval),
            ("poll interval", self.poll_interval),
        ] {
            if value.is_zero() {
                return Err(QueueError::invalid(what, "must be above zero"));
            }
        }
        if self.lease_ttl <= self.heartbeat_interval {
            return Err(QueueError::invalid(
                "lease ttl",
                format!(
                    "{:?} must exceed the heartbeat interval {:?}, or live workers lose their jobs",
                    self.lease_ttl, self.heartbeat_interval
                ),
            ));
        }
        Ok(())
    }
}

/// A claimed job's identity: its id and the fencing token of this claim.
///
/// Every write the worker makes for the job (complete, fail, release,
/// heartbeat) carries both; a write whose token no longer matches changes
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PgJob {
    /// The job's row id.
    pub id: i64,
    /// The fencing token of this claim.
    pub token: i64,
    /// Executor failures the job had used before this claim.
    pub attempts: i32,
    /// Leases the job had lost before this claim.
    pub lost_leases: i32,
    /// Its kind ([`NewJob::kind`](crate::NewJob::kind)).
    pub kind: JobKind,
    /// Its batch ([`NewJob::batch`](crate::NewJob::batch)).
    pub batch: i64,
}

impl JobMeta for PgJob {
    fn job_id(&self) -> JobId {
        JobId::new(u64::try_from(self.id).unwrap_or_default())
    }

    fn attempt(&self) -> u32 {
        u32::try_from(self.attempts).unwrap_or(0).saturating_add(1)
    }
}

/// What a worker counted since it started ([`PgWorker::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Jobs claimed.
    pub claimed: u64,
    /// Jobs completed successfully.
    pub succeeded: u64,
    /// Executor failures saved (retried later, failed, or dead).
    pub failed: u64,
    /// Jobs handed back (shutdown, a cancelled execution, a save that gave up).
    pub released: u64,
    /// Writes rejected because another claim superseded this one.
    pub fenced: u64,
    /// Leases the heartbeat found lost (the running jobs were cancelled).
    pub lost_leases: u64,
    /// Expired leases of other (dead) workers this worker returned to the queue.
    pub rescued: u64,
    /// Jobs dead-lettered by this worker (a missing payload, spent budgets).
    pub dead: u64,
    /// Heartbeat statements run.
    pub heartbeats: u64,
    /// Heartbeat or rescue statements that failed (retried next interval).
    pub heartbeat_errors: u64,
    /// Notifications received.
    pub notifications: u64,
    /// Picks that found nothing and waited for a notification.
    pub idle_waits: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) claimed: AtomicU64,
    pub(crate) succeeded: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) released: AtomicU64,
    pub(crate) fenced: AtomicU64,
    pub(crate) lost_leases: AtomicU64,
    pub(crate) rescued: AtomicU64,
    pub(crate) dead: AtomicU64,
    pub(crate) heartbeats: AtomicU64,
    pub(crate) heartbeat_errors: AtomicU64,
    pub(crate) notifications: AtomicU64,
    pub(crate) idle_waits: AtomicU64,
    /// Jobs handed back to the queue (released, or put back after an
    /// infrastructure failure) and not finished by this worker since.
    handed_back: Mutex<BTreeSet<i64>>,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Records jobs the database confirmed back in the queue.
    pub(crate) fn handed_back(&self, ids: impl IntoIterator<Item = i64>) {
        self.handed_back
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(ids);
    }

    /// Records a job this worker finished (it is no longer handed back).
    pub(crate) fn finished(&self, id: i64) {
        self.handed_back
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    fn snapshot(&self) -> WorkerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerStats {
            claimed: get(&self.claimed),
            succeeded: get(&self.succeeded),
            failed: get(&self.failed),
            released: get(&self.released),
            fenced: get(&self.fenced),
            lost_leases: get(&self.lost_leases),
            rescued: get(&self.rescued),
            dead: get(&self.dead),
            heartbeats: get(&self.heartbeats),
            heartbeat_errors: get(&self.heartbeat_errors),
            notifications: get(&self.notifications),
            idle_waits: get(&self.idle_waits),
        }
    }
}

/// The leases this worker holds: every job claimed and not yet completed or
/// released, wherever it is (prefetched, executing, waiting to be saved).
#[derive(Debug, Default)]
pub(crate) struct Leases(Mutex<HashMap<i64, i64>>);

impl Leases {
    fn map(&self) -> MutexGuard<'_, HashMap<i64, i64>> {
        // The map stays consistent whatever panicked while holding it.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn hold(&self, jobs: impl IntoIterator<Item = (i64, i64)>) {
        self.map().extend(jobs);
    }

    /// Forgets a lease if it is still the one with `token`.
    pub(crate) fn drop_lease(&self, id: i64, token: i64) -> bool {
        let mut map = self.map();
        if map.get(&id) == Some(&token) {
            map.remove(&id);
            true
        } else {
            false
        }
    }

    pub(crate) fn holds(&self, id: i64, token: i64) -> bool {
        self.map().get(&id) == Some(&token)
    }

    pub(crate) fn snapshot(&self) -> (Vec<i64>, Vec<i64>) {
        let mut held: Vec<(i64, i64)> = self.map().iter().map(|(i, t)| (*i, *t)).collect();
        held.sort_unstable();
        held.into_iter().unzip()
    }

    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }
}

/// Wake-ups per queue name: bumped by the listener on a notification.
#[derive(Debug, Default)]
pub(crate) struct Wakeups(Mutex<HashMap<String, watch::Sender<u64>>>);

impl Wakeups {
    pub(crate) fn subscribe(&self, queue: &str) -> watch::Receiver<u64> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(queue.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    pub(crate) fn wake(&self, queue: &str) {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = map.get(queue) {
            sender.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    pub(crate) fn wake_all(&self) {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for sender in map.values() {
            sender.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

pub(crate) struct WorkerShared {
    pub(crate) queue: PgQueue,
    pub(crate) config: WorkerConfig,
    pub(crate) leases: Arc<Leases>,
    pub(crate) wakeups: Arc<Wakeups>,
    pub(crate) counters: Arc<Counters>,
    heartbeat: Arc<crate::heartbeat::Heartbeat>,
    /// The heartbeat and the listener: aborted when the worker goes away.
    _tasks: Vec<AbortOnDropHandle<()>>,
}

impl WorkerShared {
    /// Forgets a lease once its job is written. When the worker then holds
    /// none, idle picks are woken: a picker told to exit when the queue is
    /// empty was waiting only for this worker's own jobs to finish.
    pub(crate) fn drop_lease(&self, id: i64, token: i64) {
        if self.leases.drop_lease(id, token) && self.leases.len() == 0 {
            self.wakeups.wake_all();
        }
    }
}

/// One worker process's membership in the queue.
///
/// It holds what must exist once per process, whatever the number of pickers,
/// executor workers or runners: the registry of the leases it holds, one
/// heartbeat task that extends all of them in one statement per interval (on
/// its own connection, so busy claims and saves never starve it), and one
/// connection listening for enqueue notifications. Pickers and savers made
/// from it share these.
///
/// Background tasks stop when the worker and every picker and saver made from
/// it are dropped; a worker that dies without that simply stops heartbeating,
/// and other workers rescue its jobs once their leases expire.
///
/// Connections per process: the queue's pool (default
/// [`DEFAULT_MAX_CONNECTIONS`](crate::DEFAULT_MAX_CONNECTIONS)) + 1 heartbeat
/// + 1 listener.
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
    pub(crate) shared: Arc<WorkerShared>,
}

impl fmt::Debug for PgWorker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgWorker")
            .field("id", &self.shared.config.id)
            .field("leases", &self.shared.leases.len())
            .finish_non_exhaustive()
    }
}

impl PgWorker {
    pub(crate) async fn start(queue: PgQueue, config: WorkerConfig) -> Result<Self, QueueError> {
        config.validate()?;
        let leases = Arc::new(Leases::default());
        let wakeups = Arc::new(Wakeups::default());
        let counters = Arc::new(Counters::default());
        // One connection each, opened lazily and reopened by sqlx after a cut.
        let heartbeat_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(config.heartbeat_interval)
            .connect_lazy_with(queue.inner.connect.clone());
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(queue.inner.connect.clone());
        let heartbeat = Arc::new(crate::heartbeat::Heartbeat {
            queue: queue.clone(),
            pool: heartbeat_pool,
            config: config.clone(),
            leases: leases.clone(),
            counters: counters.clone(),
            contact: crate::heartbeat::Contact::default(),
        });
        let (listening, mut ready) = watch::channel(false);
        let listener = crate::listen::listen(
            listen_pool,
            queue.inner.channel.clone(),
            wakeups.clone(),
            counters.clone(),
            listening,
        );
        let tasks = vec![
            AbortOnDropHandle::new(tokio::spawn(Arc::clone(&heartbeat).run())),
            AbortOnDropHandle::new(tokio::spawn(listener)),
        ];
        // Start listening before the first pick, so that no enqueue right
        // after start-up goes unnoticed; a listener that cannot connect yet
        // does not hold the worker back (picks poll meanwhile).
        let _ = tokio::time::timeout(config.poll_interval, ready.wait_for(|up| *up)).await;
        Ok(Self {
            shared: Arc::new(WorkerShared {
                queue,
                config,
                leases,
                wakeups,
                counters,
                heartbeat,
                _tasks: tasks,
            }),
        })
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
    pub fn picker(&self, queue: &str) -> Result<crate::PgPicker, QueueError> {
        crate::PgPicker::new(self.shared.clone(), queue)
    }

    /// A saver completing this worker's jobs. Outputs are bytes
    /// (`AsRef<[u8]>`); executor errors are recorded with their `Display`.
    /// Its types are inferred from the runner it is given to; to configure
    /// it first ([`PgSaver::permanent_if`](crate::PgSaver::permanent_if)), start from
    /// [`saver_for`](Self::saver_for).
    pub fn saver<O, F>(&self) -> crate::PgSaver<O, F> {
        crate::PgSaver::new(self.shared.clone())
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
    pub fn saver_for<E: pjp_core::Executor>(
        &self,
        executor: &E,
    ) -> crate::PgSaver<E::Output, E::Error> {
        let _ = executor;
        self.saver()
    }

    /// A saver whose outputs are [`FanOut`](crate::FanOut)s: each save
    /// completes its job and creates the jobs it spawns in one fenced
    /// transaction (dynamic fan-out).
    pub fn fan_out_saver<O, F>(&self) -> crate::FanOutSaver<O, F> {
        crate::FanOutSaver {
            shared: self.shared.clone(),
            inner: crate::PgSaver::new(self.shared.clone()),
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
            .handed_back
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(|&id| u64::try_from(id).ok().map(JobId::new))
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
        self.shared.heartbeat.beat().await
    }

    /// Returns every expired lease in the schema to the queue (or, past its
    /// lost-lease budget, to `dead`) now; returns how many. The background
    /// task does this every [`rescue_interval`](WorkerConfig::rescue_interval).
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: one statement; dropped, it may or may not have returned expired jobs to the
    /// queue, and the next rescue does the rest.
    pub async fn rescue_now(&self) -> Result<u64, QueueError> {
        self.shared.heartbeat.rescue().await
    }
}
