//! [`WorkerConfig`]: how a worker holds its leases, checked when it starts.

use std::time::Duration;

use pjp_core::JobCancels;

use crate::error::QueueError;

/// How a worker holds its leases ([`PgQueue::worker`](crate::PgQueue::worker)).
///
/// The defaults: a heartbeat every 2 s extends every lease to 3 s from the
/// database's clock, so a live worker survives one late heartbeat; one
/// worker of the schema (the rescuer) looks for expired leases every
/// 500 ms. A worker that dies is therefore rescued at most 3.5 s (lease
/// time + rescue interval) after it died, within 2 × the heartbeat
/// interval; the rescuer too, since its role lapses one heartbeat interval
/// before its leases do and the next heartbeat of a live worker takes it.
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
    pub(crate) maintenance_interval: Duration,
    pub(crate) claim_target: Option<Duration>,
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
            maintenance_interval: Duration::from_secs(30),
            claim_target: None,
        }
    }

    /// How often the worker looks after the jobs table's statistics and
    /// dead rows (default 30 s; zero: never). One worker of a schema at a
    /// time does it (an advisory lock taken without waiting): `ANALYZE`
    /// once a tenth of the rows (at least 1,000) changed since the last
    /// one, `VACUUM (ANALYZE)` once dead rows pass a fifth of the live ones
    /// (at least 10,000). The claim keeps its plan without it (see the
    /// `claim_plans` migration), but completions, rescues and the load
    /// report read faster on a table kept clean, and the queue does not
    /// depend on autovacuum's settings for that.
    pub fn maintenance_interval(mut self, interval: Duration) -> Self {
        self.maintenance_interval = interval;
        self
    }

    /// Adapts how many claim statements this worker keeps in flight so
    /// that each answers within `target` (off by default: every picker
    /// claims when it is free). Meant for fleets whose pickers outnumber the
    /// server's connections many times over, through a pooler: a hundred
    /// pickers per process claiming at once queue at the pooler and contend
    /// for the head of the claim index, and every claim slows down. With a
    /// target, the worker's window of claims in flight starts at one and
    /// widens while claims are fast (up to 256); a claim slower than the
    /// target narrows it (by half the first time, then by a tenth). Pickers
    /// outside the window wait in the process, as idle pickers wait for a
    /// notification. A fleet of many processes may need fewer claims in
    /// flight than it has processes, so the window goes below one (down to
    /// a sixteenth): the worker then paces its claims, starting each one
    /// `latency × (1/window − 1)` after the last answered. The picker let
    /// in claims for the pickers of the same claim waiting behind it too
    /// (up to 32 jobs in all, or its own batch when larger) and hands each
    /// its share, so a storm makes fewer, fuller claims.
    /// [`PgWorker::claim_window`](crate::PgWorker::claim_window) shows the
    /// window.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pjp_postgres::WorkerConfig;
    ///
    /// let config = WorkerConfig::new("gpu-7").adaptive_claims(Duration::from_millis(20));
    /// # let _ = config;
    /// ```
    pub fn adaptive_claims(mut self, target: Duration) -> Self {
        self.claim_target = Some(target);
        self
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

    /// How often the schema's rescuer returns expired leases to the queue
    /// (default 500 ms): one statement per interval per schema, by the one
    /// worker holding the rescuer role ([`PgWorker::is_rescuer`](crate::PgWorker::is_rescuer)),
    /// however many workers there are.
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

    /// The set of running jobs the heartbeat cancels when their lease is lost
    /// (for a queue that accepts late results, once the job finished under
    /// another claim: until then the execution may still complete it).
    /// Give the runner the same one
    /// ([`RunnerBuilder::job_cancels`](pjp_core::RunnerBuilder::job_cancels)),
    /// or take it from
    /// [`PgWorker::job_cancels`](crate::PgWorker::job_cancels).
    pub fn job_cancels(mut self, cancels: JobCancels) -> Self {
        self.cancels = cancels;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), QueueError> {
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
        if self.claim_target.is_some_and(|t| t.is_zero()) {
            return Err(QueueError::invalid(
                "adaptive claims target",
                "must be above zero",
            ));
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
