//! The heartbeat task: extends every lease this worker holds in one statement
//! per interval, notices leases it lost, and, while this worker holds the
//! schema's rescuer role, returns other workers' expired leases to the
//! queue. It runs on a thread of its own, with its own runtime and
//! connection: executors that keep the caller's runtime busy (CPU work in an
//! async executor, a blocking call) cannot delay it past a lease.
//!
//! Statements per worker: one heartbeat per heartbeat interval, whatever it
//! holds (it also takes the rescuer role when the role has lapsed). Per
//! schema, whatever the number of workers: one rescue per rescue interval,
//! by the role's holder, which renews the role with it. A holder that dies
//! stops renewing; the role lapses after [`rescuer_ttl`] and the next
//! heartbeat of any live worker takes it (and rescues at once).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pjp_core::JobId;
use pjp_core::runner::LateResults;
use sqlx::postgres::PgPoolOptions;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::WorkerConfig;
use crate::db::Db;
use crate::error::QueueError;
use crate::queue::PgQueue;
use crate::state::{Counters, Leases};

/// Rows one rescue statement returns to the queue at most.
const RESCUE_BATCH: i64 = 1_000;

/// How long the rescuer role lasts past its holder's latest rescue or
/// heartbeat: the lease time less one heartbeat interval, so that when the
/// holder dies the role has lapsed, and been taken by another worker's
/// heartbeat, by the time the holder's own leases expire; at least two
/// rescue intervals, so that a holder keeps it through one late rescue.
pub(crate) fn rescuer_ttl(config: &WorkerConfig) -> Duration {
    config
        .lease_ttl
        .saturating_sub(config.heartbeat_interval)
        .max(config.rescue_interval * 2)
}

pub(crate) struct Heartbeat {
    pub(crate) queue: PgQueue,
    /// One connection, in the queue's [`Pooler`](crate::Pooler) mode.
    pub(crate) pool: Db,
    pub(crate) config: WorkerConfig,
    pub(crate) leases: Arc<Leases>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) contact: Contact,
    /// Whether this worker held the rescuer role at its latest heartbeat or
    /// rescue.
    pub(crate) rescuer: AtomicBool,
    /// Who holds the rescuer role when this worker does: its id and a
    /// random tag, so that workers given the same id (a fleet started from
    /// one configuration) do not all rescue as one.
    pub(crate) role_owner: String,
}

/// When this worker could last reach the database, and whether it was cut
/// off from it lately.
///
/// A rescuer that could not reach the database cannot tell a dead worker
/// from a live one that was cut off as it was (a database restart, a network
/// outage): every lease that expired while it was blind, and until one lease
/// time after it got back, is left for its holder to renew. Leases that
/// expired before it lost contact are rescued at once.
#[derive(Debug, Default)]
pub(crate) struct Contact(Mutex<ContactState>);

#[derive(Debug, Default)]
struct ContactState {
    /// When the latest statement that succeeded was sent.
    last_ok: Option<Instant>,
    /// Set while statements fail: since when the database is out of reach
    /// (the last success before the first failure).
    lost_since: Option<Instant>,
    /// After an outage: since when it was out of reach, and when it came back.
    outage: Option<(Instant, Instant)>,
}

impl Contact {
    fn state(&self) -> std::sync::MutexGuard<'_, ContactState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A statement sent at `sent` succeeded.
    fn reached(&self, sent: Instant) {
        let mut state = self.state();
        if let Some(since) = state.lost_since.take() {
            let now = Instant::now();
            tracing::info!(
                blind = ?now - since,
                "database reached again; leases that expired while it was out of reach get one lease time to be renewed before this worker rescues them"
            );
            state.outage = Some((since, now));
        }
        state.last_ok = Some(state.last_ok.map_or(sent, |t| t.max(sent)));
    }

    /// A statement failed (the database may be out of reach).
    fn failed(&self, started: Instant) {
        let mut state = self.state();
        if state.lost_since.is_none() {
            state.lost_since = Some(state.last_ok.unwrap_or(started));
        }
    }

    /// How far back from now a lease's expiry must lie for this worker to
    /// rescue it: zero, or, during or up to `ttl` after an outage, the time
    /// since it lost contact.
    fn blind_for(&self, ttl: Duration) -> Duration {
        let mut state = self.state();
        let now = Instant::now();
        if let Some(since) = state.lost_since {
            return now - since;
        }
        match state.outage {
            Some((since, back)) if now < back + ttl => now - since,
            Some(_) => {
                state.outage = None;
                Duration::ZERO
            }
            None => Duration::ZERO,
        }
    }
}

/// What the heartbeat thread needs to build its [`Heartbeat`].
pub(crate) struct HeartbeatParts {
    pub(crate) queue: PgQueue,
    pub(crate) config: WorkerConfig,
    pub(crate) leases: Arc<Leases>,
    pub(crate) counters: Arc<Counters>,
}

/// Starts the heartbeat on a thread of its own; it stops when the returned
/// guard is dropped. Its connection is opened (lazily) on that thread's
/// runtime.
pub(crate) async fn spawn(
    parts: HeartbeatParts,
) -> Result<(Arc<Heartbeat>, tokio_util::sync::DropGuard), QueueError> {
    let stop = tokio_util::sync::CancellationToken::new();
    let (started, heartbeat) = tokio::sync::oneshot::channel();
    let name = format!("pjp-heartbeat {}", parts.config.id);
    let stopped = stop.clone();
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    tracing::error!(%error, "cannot start the heartbeat's runtime");
                    return;
                }
            };
            runtime.block_on(async move {
                let pool = parts.queue.inner.pool.alike(
                    PgPoolOptions::new()
                        .max_connections(1)
                        .acquire_timeout(parts.config.heartbeat_interval)
                        .connect_lazy_with(parts.queue.inner.connect.clone()),
                );
                let heartbeat = Arc::new(Heartbeat {
                    queue: parts.queue,
                    pool,
                    leases: parts.leases,
                    counters: parts.counters,
                    contact: Contact::default(),
                    rescuer: AtomicBool::new(false),
                    role_owner: format!("{}#{:016x}", parts.config.id, fastrand::u64(..)),
                    config: parts.config,
                });
                if started.send(Arc::clone(&heartbeat)).is_err() {
                    return;
                }
                tokio::select! {
                    () = stopped.cancelled() => {}
                    () = heartbeat.run() => {}
                }
            });
        })
        .map_err(|e| QueueError::Database(sqlx::Error::Io(e)))?;
    let heartbeat = heartbeat.await.map_err(|_| {
        QueueError::Database(sqlx::Error::Io(std::io::Error::other(
            "the heartbeat thread could not start its runtime",
        )))
    })?;
    Ok((heartbeat, stop.drop_guard()))
}

impl Heartbeat {
    pub(crate) async fn run(self: Arc<Self>) {
        // The first beat at once: it holds no lease yet, but may take the
        // rescuer role.
        let mut beat = tokio::time::interval(self.config.heartbeat_interval);
        let mut rescue = tokio::time::interval(self.config.rescue_interval);
        beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        rescue.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                // Failures are logged and counted; the next tick retries.
                _ = beat.tick() => {
                    let was = self.is_rescuer();
                    let _ = self.beat().await;
                    if !was && self.is_rescuer() {
                        tracing::info!(worker = %self.config.id, "this worker now rescues the schema's expired leases");
                        let _ = self.rescue().await;
                    }
                }
                _ = rescue.tick() => {
                    if self.is_rescuer() {
                        let _ = self.rescue().await;
                    }
                }
            }
        }
    }

    /// Whether this worker held the rescuer role at its latest heartbeat or
    /// rescue.
    pub(crate) fn is_rescuer(&self) -> bool {
        self.rescuer.load(Ordering::Relaxed)
    }

    /// Extends every lease held, and takes the rescuer role if it lapsed;
    /// returns how many leases were extended. One statement, also when no
    /// lease is held.
    pub(crate) async fn beat(&self) -> Result<usize, QueueError> {
        let (ids, tokens) = self.leases.snapshot();
        let (late, late_tokens) = self.leases.late();
        let sql = &self.queue.inner.sql;
        let sent = Instant::now();
        let extended: Result<(Vec<i64>, bool, Vec<i64>), _> = sqlx::query_as(&sql.heartbeat)
            .bind(&ids)
            .bind(&tokens)
            .bind(self.config.lease_ttl.as_secs_f64())
            .bind(&self.role_owner)
            .bind(rescuer_ttl(&self.config).as_secs_f64())
            .bind(&late)
            .fetch_one(&self.pool)
            .await;
        Counters::add(&self.counters.heartbeats, 1);
        let extended: HashSet<i64> = match extended {
            Ok((rows, rescuer, open)) => {
                self.contact.reached(sent);
                self.rescuer.store(rescuer, Ordering::Relaxed);
                self.settle_late(late.into_iter().zip(late_tokens), &open);
                rows.into_iter().collect()
            }
            Err(error) => {
                self.contact.failed(sent);
                Counters::add(&self.counters.heartbeat_errors, 1);
                tracing::warn!(%error, leases = ids.len(), "heartbeat failed; retrying next interval");
                return Err(QueueError::Database(error));
            }
        };
        let count = extended.len();
        let missing: Vec<(i64, i64)> = ids
            .into_iter()
            .zip(tokens)
            .filter(|(id, _)| !extended.contains(id))
            .collect();
        if !missing.is_empty() {
            self.lost(missing).await;
        }
        Ok(count)
    }

    /// Cancels this worker's execution of job `id`, if it runs one; returns
    /// whether it did.
    fn cancel_execution(&self, id: i64) -> bool {
        self.config
            .cancels
            .cancel(JobId::new(u64::try_from(id).unwrap_or_default()))
    }

    /// Executions running late whose jobs finished (under another claim) or
    /// are gone: nothing they compute can be accepted now, so they are
    /// cancelled.
    fn settle_late(&self, late: impl Iterator<Item = (i64, i64)>, open: &[i64]) {
        for (id, token) in late {
            if open.contains(&id) || !self.leases.drop_late(id, token) {
                continue;
            }
            let cancelled = self.cancel_execution(id);
            tracing::info!(
                job = id,
                held_token = token,
                cancelled,
                "the job finished under another claim: its late execution stops"
            );
        }
    }

    /// Leases the heartbeat could not extend. Most were completed by this
    /// worker's saver between the snapshot and the statement (the saver drops
    /// them from the registry right after); the rest were lost. A lost job
    /// whose queue accepts late results and that has not finished keeps its
    /// execution (its success may still complete the job, once), watched by
    /// the next heartbeats; any other is forgotten and its execution
    /// cancelled, so nobody computes a result that will be fenced.
    async fn lost(&self, missing: Vec<(i64, i64)>) {
        let ids: Vec<i64> = missing.iter().map(|(id, _)| *id).collect();
        let current: Vec<(i64, i64, String, String)> =
            match sqlx::query_as(&self.queue.inner.sql.current_tokens)
                .bind(&ids)
                .fetch_all(&self.pool)
                .await
            {
                Ok(rows) => rows,
                Err(error) => {
                    tracing::warn!(%error, "could not look up leases the heartbeat missed");
                    return;
                }
            };
        for (id, held) in missing {
            if !self.leases.holds(id, held) {
                continue; // completed or released meanwhile
            }
            let now = current.iter().find(|(i, ..)| *i == id);
            let (token, status, queue) = now.map_or((-1, "gone", ""), |(_, t, s, q)| {
                (*t, s.as_str(), q.as_str())
            });
            // Still ours (the statement raced a concurrent write), or this
            // worker's own success or final failure committed between the
            // statement and the look-up (its saver lets go of the lease right
            // after). A rescue keeps the token too but leaves `queued` or
            // `dead`, which this worker's own retry, release or last attempt
            // can also leave: those cannot be told apart here and still
            // count as lost (a `queued` one then keeps its execution, if
            // any, running late; a `dead` one's cancel finds no execution,
            // or one this worker claimed again, released without an attempt).
            if token == held && matches!(status, "running" | "succeeded" | "failed") {
                continue;
            }
            Counters::add(&self.counters.lost_leases, 1);
            if matches!(status, "queued" | "running")
                && token >= held
                && self.queue.late_results(queue) == LateResults::Accept
            {
                self.leases.run_late(id, held);
                tracing::warn!(
                    job = id,
                    held_token = held,
                    current_token = token,
                    status,
                    "lease lost: the execution goes on, its success may still be accepted late"
                );
                continue;
            }
            self.leases.drop_lease(id, held);
            let cancelled = self.cancel_execution(id);
            tracing::warn!(
                job = id,
                held_token = held,
                current_token = token,
                status,
                cancelled,
                "lease lost: the job was rescued or claimed by another worker"
            );
        }
    }

    /// Returns every expired lease to the queue (or to `dead`), and renews
    /// the rescuer role if this worker holds it; returns how many.
    pub(crate) async fn rescue(&self) -> Result<u64, QueueError> {
        let mut total = 0;
        loop {
            let blind = self.contact.blind_for(self.config.lease_ttl);
            let sent = Instant::now();
            let rescued: Result<Vec<(Option<i64>, String)>, _> =
                sqlx::query_as(&self.queue.inner.sql.rescue)
                    .bind(RESCUE_BATCH)
                    .bind(blind.as_secs_f64())
                    .bind(&self.role_owner)
                    .bind(rescuer_ttl(&self.config).as_secs_f64())
                    .fetch_all(&self.pool)
                    .await;
            Counters::add(&self.counters.rescues, 1);
            match rescued {
                Ok(rows) => {
                    self.contact.reached(sent);
                    let rescuer = rows
                        .iter()
                        .any(|(id, status)| id.is_none() && status == "rescuer");
                    if self.rescuer.swap(rescuer, Ordering::Relaxed) && !rescuer {
                        tracing::info!(worker = %self.config.id, "another worker took over the rescuer role");
                    }
                    let rows: Vec<(i64, String)> = rows
                        .into_iter()
                        .filter_map(|(id, status)| Some((id?, status)))
                        .collect();
                    Counters::add(&self.counters.rescued, rows.len());
                    for (id, status) in &rows {
                        if status == "dead" {
                            Counters::add(&self.counters.dead, 1);
                            tracing::warn!(job = id, "job dead: it lost its lease too many times");
                        } else {
                            tracing::info!(job = id, "expired lease rescued; job queued again");
                        }
                    }
                    total += rows.len() as u64;
                    if (rows.len() as i64) < RESCUE_BATCH {
                        if rescuer {
                            self.keep_hot_set().await;
                        }
                        return Ok(total);
                    }
                }
                Err(error) => {
                    self.contact.failed(sent);
                    Counters::add(&self.counters.heartbeat_errors, 1);
                    tracing::warn!(%error, "rescue of expired leases failed; retrying next interval");
                    return Err(QueueError::Database(error));
                }
            }
        }
    }

    /// The rescuer's second duty: keeps the set of chunks claims read
    /// small (`PgQueue::maintain` does the same for a queue no worker
    /// serves). A failure only leaves the set larger until the next rescue.
    async fn keep_hot_set(&self) {
        match self.queue.keep_hot_set_on(&self.pool).await {
            Ok(chunks) => tracing::trace!(chunks, "hot chunks"),
            Err(error) => {
                tracing::warn!(%error, "keeping the claims' chunks failed; retrying next rescue")
            }
        }
    }
}
