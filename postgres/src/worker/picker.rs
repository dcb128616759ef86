//! [`PgPicker`]: claims jobs as leases, in batches, waking on notifications.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pjp_core::{
    ClaimOrder, ErrorClass, Job, JobKind, JobPicker, KindFilter, Picked, ReleaseReason,
};
use tokio::sync::watch;

use super::gate::Pass;
use crate::enqueue::check_queue_name;
use crate::error::QueueError;
use crate::job::PgJob;
use crate::queue::once_more_if_gone;
use crate::sql::Completion;
use crate::state::{Counters, WorkerShared};
use crate::store::{BlobError, Stored};
use crate::write::{self, Finish};

/// The most jobs one claim statement takes.
pub const MAX_CLAIM_BATCH: usize = 1_000;

type ClaimedRow = (
    i64,
    i64,
    i16,
    i32,
    i32,
    Option<Vec<u8>>,
    Option<String>,
    Option<i64>,
    String,
    i64,
    i16,
    // Server time on the statement, µs.
    i64,
);

/// Claims jobs from one queue name ([`PgWorker::picker`](crate::PgWorker::picker)).
///
/// `pick_many(k)` claims up to `k` jobs in one statement
/// (`FOR UPDATE SKIP LOCKED`, highest priority first, then oldest), as leases
/// held by this worker: the heartbeat extends them until they are saved or
/// released. Payloads kept in the object store are fetched before the jobs
/// are handed out; a job whose blob is missing or corrupt is dead-lettered
/// with an error naming the key, and the others go on.
///
/// When nothing is claimable, a pick waits up to the worker's poll interval
/// for an enqueue notification, claims again, and only then reports
/// `Empty`. Give the runner a short empty back-off
/// (`.empty_backoff(BackoffPolicy::new(1ms, 10ms))`): the wait happens here.
#[derive(Clone)]
pub struct PgPicker {
    shared: Arc<WorkerShared>,
    queue: String,
    wakeups: watch::Receiver<u64>,
    exit_when_empty: bool,
    /// The kinds served.
    kinds: Kinds,
    /// The resource classes it can run (`None`: every class).
    classes: Option<Vec<String>>,
    order: ClaimOrder,
    /// What it claims (queue, kinds, classes, order): the pickers of one
    /// worker making the same claim wait at its gate in one line, and the
    /// one let in claims for the line too.
    shape: String,
}

/// Which kinds a picker claims: every kind (the kind-agnostic claim), these
/// in order of preference (one index range each), or every kind but these
/// (the kind-agnostic scan, filtered).
type Kinds = KindFilter<String>;

impl std::fmt::Debug for PgPicker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPicker")
            .field("queue", &self.queue)
            .field("worker", &self.shared.config.id)
            .field("exit_when_empty", &self.exit_when_empty)
            .field("kinds", &self.kinds)
            .field("classes", &self.classes)
            .finish_non_exhaustive()
    }
}

impl PgPicker {
    pub(crate) fn new(shared: Arc<WorkerShared>, queue: &str) -> Result<Self, QueueError> {
        check_queue_name(queue)?;
        let wakeups = shared.wakeups.subscribe(queue);
        Ok(Self {
            shared,
            queue: queue.to_owned(),
            wakeups,
            exit_when_empty: false,
            kinds: KindFilter::Every,
            classes: None,
            order: ClaimOrder::default(),
            shape: String::new(),
        }
        .reshaped())
    }

    /// Names what it claims, after a change of it.
    fn reshaped(mut self) -> Self {
        self.shape = format!(
            "{}\0{:?}\0{:?}\0{:?}",
            self.queue, self.kinds, self.classes, self.order
        );
        self
    }

    /// Claims only jobs of these kinds, in this order of preference: a job of
    /// the first kind whenever one is claimable, one of the next only when
    /// none of the kinds before it is (zksync's "heavy circuits first, light
    /// ones when no heavy one is queued"). Still one statement per batch,
    /// and each kind is read from its own index range, so a claim costs the
    /// same however many other kinds are queued. An empty list serves every
    /// kind (the default). Replaces an earlier
    /// [`except_kinds`](Self::except_kinds).
    ///
    /// ```no_run
    /// # fn demo(worker: pjp_postgres::PgWorker) -> Result<(), pjp_postgres::QueueError> {
    /// let picker = worker.picker("proofs")?.kinds(["heavy", "light"]).classes(["gpu-80g"]);
    /// # let _ = picker; Ok(()) }
    /// ```
    pub fn kinds<K: Into<String>>(mut self, kinds: impl IntoIterator<Item = K>) -> Self {
        self.kinds = KindFilter::only(kinds.into_iter().map(Into::into));
        self.reshaped()
    }

    /// Claims jobs of every kind except these: a worker that proves
    /// anything but the aggregations, which a runner of their own takes.
    /// The claim is the kind-agnostic one (proof-first, one index scan) with
    /// the excluded rows skipped as it reads, so it keeps the kind-agnostic
    /// speed where [`kinds`](Self::kinds) with a long list would pay one
    /// index range per kind. Meant for kinds that are few in the queue: a
    /// scan that meets many excluded rows reads them all. An empty list
    /// serves every kind. Replaces an earlier [`kinds`](Self::kinds).
    ///
    /// ```no_run
    /// # fn demo(worker: pjp_postgres::PgWorker) -> Result<(), pjp_postgres::QueueError> {
    /// let provers = worker.picker("proofs")?.except_kinds(["aggregate"]);
    /// let aggregations = worker.picker("proofs")?.kinds(["aggregate"]);
    /// # let _ = (provers, aggregations); Ok(()) }
    /// ```
    pub fn except_kinds<K: Into<String>>(mut self, kinds: impl IntoIterator<Item = K>) -> Self {
        self.kinds = KindFilter::except(kinds.into_iter().map(Into::into));
        self.reshaped()
    }

    /// The order it claims in ([`ClaimOrder::ProofFirst`] by default). A
    /// picker with [`kinds`](Self::kinds), [`except_kinds`](Self::except_kinds)
    /// or [`classes`](Self::classes) always claims proof-first within them.
    pub fn order(mut self, order: ClaimOrder) -> Self {
        self.order = order;
        self.reshaped()
    }

    /// Claims only jobs whose resource class is one of these (a CPU-only
    /// worker never takes a job that needs a GPU). An empty list serves every
    /// class (the default).
    pub fn classes<C: Into<String>>(mut self, classes: impl IntoIterator<Item = C>) -> Self {
        let classes: Vec<String> = classes.into_iter().map(Into::into).collect();
        self.classes = (!classes.is_empty()).then_some(classes);
        self.reshaped()
    }

    /// Reports `Exhausted` (the run finishes once its jobs are saved) when no
    /// job of the queue is queued *or running*: a job held by a dead worker is
    /// still work, taken once its lease expires. With [`kinds`](Self::kinds)
    /// or [`except_kinds`](Self::except_kinds), only jobs of the kinds it
    /// claims count, waiting parents included (they become claimable). Off by default: a fleet worker waits for work forever.
    pub fn exit_when_empty(mut self, exit: bool) -> Self {
        self.exit_when_empty = exit;
        self
    }

    /// The queue it claims from.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// Claims up to `max` jobs. With adaptive claims, a picker that waits
    /// at the gate may be served by the claim of one let in before it (see
    /// [`coalesce`](super::coalesce)).
    async fn claim(&self, max: usize) -> Result<Vec<Job<Bytes, PgJob>>, QueueError> {
        let max = max.clamp(1, MAX_CLAIM_BATCH);
        let Some(gate) = &self.shared.claim_gate else {
            return self.claim_now(max, None).await;
        };
        let line = self.shared.claim_lines.line(&self.shape);
        let pass = loop {
            let (ticket, mut share) = line.wait(max);
            tokio::select! {
                // A claim that took this picker hands its share over at once.
                biased;
                served = &mut share => match served {
                    Ok(jobs) => return Ok(jobs),
                    // That claim failed: queue again.
                    Err(_) => continue,
                },
                pass = gate.enter() => {
                    if ticket.claim_self() {
                        break pass;
                    }
                    // Taken while it waited: its share is on the way; the
                    // place goes to the next in line.
                    drop(pass);
                    match share.await {
                        Ok(jobs) => return Ok(jobs),
                        Err(_) => continue,
                    }
                }
            }
        };
        let served = line.serve(max);
        let total = max + served.iter().map(|w| w.want).sum::<usize>();
        let mut jobs = self
            .claim_now(total.min(MAX_CLAIM_BATCH), Some(pass))
            .await?;
        // Its own batch first (the best jobs, in claim order), then each
        // waiter's in the order they came; a waiter gone meanwhile gives its
        // share back.
        let mut rest = jobs.split_off(max.min(jobs.len())).into_iter();
        let mut unwanted = Vec::new();
        for waiter in served {
            let share: Vec<_> = rest.by_ref().take(waiter.want).collect();
            if let Err(share) = waiter.share.send(share) {
                unwanted.extend(share.into_iter().map(|job| job.meta));
            }
        }
        unwanted.extend(rest.map(|job| job.meta));
        if !unwanted.is_empty() {
            for outcome in self.release_many(unwanted, ReleaseReason::Abandon).await {
                if let Err(error) = outcome {
                    tracing::warn!(%error, "handing back jobs claimed for a picker that left; their leases expire instead");
                }
            }
        }
        Ok(jobs)
    }

    /// One claim statement of up to `max` jobs, through the gate's `pass`
    /// when there is one.
    async fn claim_now(
        &self,
        max: usize,
        pass: Option<Pass<'_>>,
    ) -> Result<Vec<Job<Bytes, PgJob>>, QueueError> {
        let shared = &self.shared;
        let inner = &shared.queue.inner;
        // Prepared once per connection (one round trip per claim); the
        // connections force custom plans (see `PgQueueBuilder::connect`), so
        // the claim stays an index scan of the partial index.
        let sql = match (&self.kinds, &self.classes) {
            (KindFilter::Every, None) if self.order == ClaimOrder::Fifo => &inner.sql.claim_fifo,
            (KindFilter::Every, None) => &inner.sql.claim,
            (KindFilter::Every, Some(_)) => &inner.sql.claim_classes,
            (KindFilter::Only(_), _) => &inner.sql.claim_kinds,
            (KindFilter::Except(_), _) => &inner.sql.claim_except,
        };
        let sent = tokio::time::Instant::now();
        let mut rows: Vec<ClaimedRow> = once_more_if_gone(&inner.pool, || {
            let query = sqlx::query_as(sql)
                .bind(&self.queue)
                .bind(max as i64)
                .bind(&shared.config.id)
                .bind(shared.config.lease_ttl.as_secs_f64());
            match (&self.kinds, &self.classes) {
                (KindFilter::Every, None) => query,
                (KindFilter::Every, Some(classes)) => query.bind(classes),
                (KindFilter::Only(kinds) | KindFilter::Except(kinds), classes) => {
                    query.bind(kinds).bind(classes)
                }
            }
            .fetch_all(&inner.pool)
        })
        .await
        .map_err(|e| shared.queue.database_error(e))?;
        // Answered: its latency moves the window (a failure drops the pass
        // unanswered and moves nothing).
        shared.claim_latency.record(sent.elapsed());
        if let Some(pass) = pass {
            pass.answered();
        }
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(server) = rows.iter().map(|r| r.11).max() {
            shared
                .claim_server_latency
                .record(std::time::Duration::from_micros(
                    u64::try_from(server).unwrap_or_default(),
                ));
        }
        // Registered before anything else can fail, so the heartbeat covers
        // them from the start.
        shared.leases.hold(rows.iter().map(|r| (r.0, r.1)));
        Counters::add(&shared.counters.claimed, rows.len());
        // Handed on in claim order: kind preference, priority, age.
        let rank = |kind: &str| match &self.kinds {
            KindFilter::Only(kinds) => kinds.iter().position(|k| k == kind).unwrap_or(0),
            KindFilter::Every | KindFilter::Except(_) => 0,
        };
        let fifo = self.order == ClaimOrder::Fifo
            && matches!(self.kinds, KindFilter::Every)
            && self.classes.is_none();
        rows.sort_by_cached_key(|r| {
            let (batch, depth) = if fifo { (0, 0) } else { (r.9, r.10) };
            (rank(&r.8), std::cmp::Reverse(r.2), batch, depth, r.0)
        });
        let fetched = futures_util::future::join_all(rows.into_iter().map(|row| async move {
            let (id, token, _, attempts, lost_leases, payload, key, crc, kind, batch, _, _) = row;
            let job = PgJob {
                id,
                token,
                attempts,
                lost_leases,
                // Kinds are checked to be at most 64 bytes on enqueue.
                kind: JobKind::new(&kind).unwrap_or_default(),
                batch,
            };
            let input = match (payload, key) {
                (Some(inline), _) => Ok(Bytes::from(inline)),
                (None, Some(key)) => inner.store.get(&key, crc).await,
                (None, None) => Ok(Bytes::new()),
            };
            (job, input)
        }))
        .await;
        let mut jobs = Vec::with_capacity(fetched.len());
        let mut unusable = Vec::new();
        for (job, input) in fetched {
            match input {
                Ok(input) => jobs.push(Job::new(input, job)),
                Err(BlobError::Unusable(why)) => unusable.push(Finish {
                    job,
                    kind: Completion::Dead,
                    result: Stored::default(),
                    error: Some(why),
                }),
                Err(BlobError::Unavailable(error)) => unusable.push(Finish {
                    job,
                    kind: Completion::Retry,
                    result: Stored::default(),
                    error: Some(format!("cannot read the payload: {error}")),
                }),
            }
        }
        for (finish, outcome) in unusable
            .iter()
            .zip(write::complete(shared, &unusable).await)
        {
            let why = finish.error.as_deref().unwrap_or_default();
            match outcome {
                Ok(done) => tracing::error!(job = finish.job.id, status = done.status, "{why}"),
                // Not written: the lease expires and the job is rescued.
                Err(error) => tracing::error!(job = finish.job.id, %error, "{why}"),
            }
        }
        Ok(jobs)
    }

    async fn has_work(&self) -> Result<bool, QueueError> {
        let inner = &self.shared.queue.inner;
        once_more_if_gone(&inner.pool, || match &self.kinds {
            // Only its own kinds, and their waiting parents too.
            KindFilter::Only(kinds) => sqlx::query_scalar(&inner.sql.has_work_kinds)
                .bind(&self.queue)
                .bind(kinds)
                .fetch_one(&inner.pool),
            KindFilter::Except(kinds) => sqlx::query_scalar(&inner.sql.has_work_except)
                .bind(&self.queue)
                .bind(kinds)
                .fetch_one(&inner.pool),
            KindFilter::Every => sqlx::query_scalar(&inner.sql.has_work)
                .bind(&self.queue)
                .fetch_one(&inner.pool),
        })
        .await
        .map_err(|e| self.shared.queue.database_error(e))
    }
}

impl JobPicker for PgPicker {
    type Input = Bytes;
    type Metadata = PgJob;
    type Error = QueueError;

    /// Claims one job: [`pick_many`](JobPicker::pick_many) with a batch of one.
    ///
    /// # Cancellation safety
    ///
    /// As for `pick_many`.
    async fn pick(&self) -> Result<Picked<Job<Bytes, PgJob>>, QueueError> {
        let mut jobs = self.pick_many(1).await?;
        Ok(match &mut jobs {
            Picked::Some(batch) => match batch.pop() {
                Some(job) => {
                    // pick_many(1) claims at most one; a second would be a bug.
                    for extra in batch.drain(..) {
                        self.release(extra.meta, ReleaseReason::Abandon).await?;
                    }
                    Picked::Some(job)
                }
                None => Picked::Empty,
            },
            Picked::Empty => Picked::Empty,
            Picked::Exhausted => Picked::Exhausted,
        })
    }

    /// Claims up to `max` jobs in one statement; with none claimable, waits
    /// for a notification (at most the poll interval) and tries once more.
    /// With [`WorkerConfig::adaptive_claims`](crate::WorkerConfig::adaptive_claims),
    /// a pick waiting at the gate may be served by the statement of the
    /// picker let in before it (see the crate's README, "adaptive claims").
    ///
    /// # Cancellation safety
    ///
    /// Not cancel safe once the claim is sent: dropped after the statement
    /// committed, the jobs are leased to this worker and nobody executes
    /// them until their leases expire and a rescue hands them out again
    /// (a lost lease each, not an attempt). Dropping it while it waits for a
    /// notification claims nothing; dropped while it waits at the gate, it
    /// holds nothing (a share claimed for it meanwhile is handed back). The runner never drops a pick in flight
    /// unless its own run future is dropped.
    async fn pick_many(&self, max: usize) -> Result<Picked<Vec<Job<Bytes, PgJob>>>, QueueError> {
        let mut wakeups = self.wakeups.clone();
        wakeups.borrow_and_update();
        let jobs = self.claim(max).await?;
        if !jobs.is_empty() {
            return Ok(Picked::Some(jobs));
        }
        if self.exit_when_empty && !self.has_work().await? {
            return Ok(Picked::Exhausted);
        }
        // Nothing now: wait for a notification (or the poll interval), then
        // try once more. A notification that arrived during the claim above
        // is not missed: the receiver was marked seen before it.
        let poll = self.shared.config.poll_interval;
        Counters::add(&self.shared.counters.idle_waits, 1);
        let _ = tokio::time::timeout(poll, wakeups.changed()).await;
        let jobs = self.claim(max).await?;
        if !jobs.is_empty() {
            return Ok(Picked::Some(jobs));
        }
        if self.exit_when_empty && !self.has_work().await? {
            return Ok(Picked::Exhausted);
        }
        Ok(Picked::Empty)
    }

    async fn release(&self, meta: PgJob, reason: ReleaseReason) -> Result<(), QueueError> {
        let mut outcomes = self.release_many(vec![meta], reason).await;
        outcomes.pop().unwrap_or(Ok(()))
    }

    /// Hands jobs back in one fenced statement, using no attempt (a job
    /// whose saves gave up is delayed and keeps a note saying so).
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: dropped, the jobs were released or not; unreleased
    /// leases expire and the jobs are rescued.
    async fn release_many(
        &self,
        metas: Vec<PgJob>,
        reason: ReleaseReason,
    ) -> Vec<Result<(), QueueError>> {
        let (delay, note) = match reason {
            // Saves keep failing: leave a record and a pause before the next
            // claim, but burn no attempt (the executor did its part).
            ReleaseReason::SaveGaveUp => (
                self.shared.config.retry_base,
                Some(format!(
                    "every save of its result gave up on worker {}",
                    self.shared.config.id
                )),
            ),
            _ => (Duration::ZERO, None),
        };
        let n = metas.len();
        match write::release(&self.shared, &metas, delay, note).await {
            Ok(()) => (0..n).map(|_| Ok(())).collect(),
            Err(error) => {
                let message = error.to_string();
                let class = error.class();
                if class != ErrorClass::Transient {
                    // The runner will not retry: stop heartbeating these
                    // leases, so they expire and the jobs are rescued instead
                    // of staying leased by a live worker.
                    for meta in &metas {
                        self.shared.drop_lease(meta.id, meta.token);
                    }
                }
                (0..n)
                    .map(|_| {
                        Err(QueueError::Batch {
                            message: message.clone(),
                            class,
                        })
                    })
                    .collect()
            }
        }
    }

    fn classify(&self, error: &QueueError) -> ErrorClass {
        error.class()
    }
}
