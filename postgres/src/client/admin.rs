//! Operator calls on a [`PgQueue`]: what is queued and who holds what, dead
//! letters, requeue, cancel, purge.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::QueueError;
use crate::queue::PgQueue;
use crate::sql::notify::NOTIFY;
use crate::store::BlobError;

/// Rows a purge deletes per statement: small enough that it never holds many
/// locks or a long transaction, large enough to be quick.
const PURGE_BATCH: i64 = 5_000;

/// One queue's numbers ([`PgQueue::stats`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueStats {
    /// The queue's name.
    pub queue: String,
    /// Jobs per status (`waiting`, `queued`, `running`, `succeeded`,
    /// `failed`, `dead`, `cancelled`: see [`JobRow::status`]); statuses with
    /// no job are absent.
    pub counts: BTreeMap<String, i64>,
    /// How long the oldest queued job has waited since it was enqueued.
    pub oldest_queued: Option<Duration>,
    /// Live lease owners (worker ids) and how many jobs each holds.
    pub lease_owners: BTreeMap<String, i64>,
    /// Jobs that finished (succeeded, failed, dead or cancelled) in the last
    /// minute: the queue's recent throughput.
    pub finished_last_minute: i64,
}

/// Every status a job row can have, in the order a job goes through them
/// (see [`JobRow::status`] for what each means).
pub const JOB_STATUSES: [&str; 7] = [
    "waiting",
    "queued",
    "running",
    "succeeded",
    "failed",
    "dead",
    "cancelled",
];

impl QueueStats {
    /// The count for one status (0 if none).
    pub fn count(&self, status: &str) -> i64 {
        self.counts.get(status).copied().unwrap_or(0)
    }
}

/// The load of one (queue, kind, resource class) ([`PgQueue::load`]): what
/// an autoscaler scales a worker pool on.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct KindLoad {
    /// The queue.
    pub queue: String,
    /// The kind (`""` for none).
    pub kind: String,
    /// The resource class (`""` for none).
    pub resource_class: String,
    /// Jobs waiting to be claimed.
    pub queued: i64,
    /// Jobs claimed and not finished.
    pub running: i64,
    /// How long the oldest queued job has waited since it was enqueued.
    pub oldest_queued: Option<Duration>,
    /// Jobs that finished in the last minute.
    pub finished_last_minute: i64,
    /// The 95th percentile of how long the jobs that succeeded in the last
    /// minute ran (their last claim to their completion); `None` when none
    /// did. What [`autoscale`](crate::autoscale) plans with.
    pub p95_duration: Option<Duration>,
}

impl KindLoad {
    /// Jobs finished per second over the last minute.
    pub fn rate(&self) -> f64 {
        self.finished_last_minute as f64 / 60.0
    }

    /// How long the queued and running jobs would take at the last minute's
    /// rate (`None` when nothing finished in the last minute: no rate to
    /// extrapolate; scale up if anything is queued).
    pub fn drain_estimate(&self) -> Option<Duration> {
        let rate = self.rate();
        (rate > 0.0).then(|| Duration::from_secs_f64((self.queued + self.running) as f64 / rate))
    }
}

/// A dead-lettered job ([`PgQueue::dead_jobs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadJob {
    /// The job's id.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// Executor failures it used.
    pub attempts: i32,
    /// Leases it lost.
    pub lost_leases: i32,
    /// Why it died.
    pub last_error: String,
}

/// One job's row, as an operator or a test sees it ([`PgQueue::job`]).
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    /// The job's id.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// One of:
    ///
    /// * `waiting`: a parent waiting for its children (a tree's
    ///   aggregation), queued by the completion of its last child;
    /// * `queued`: claimable (at or after its `run_after`);
    /// * `running`: claimed under a lease by a worker;
    /// * `succeeded`: completed with a result;
    /// * `failed`: a failure the saver's `permanent_if` marked permanent,
    ///   ended without retries;
    /// * `dead`: out of attempts or lost leases, or settled by a dead child;
    ///   `requeue` brings it back;
    /// * `cancelled`: cancelled by an operator, or with its tree.
    pub status: String,
    /// Higher runs first.
    pub priority: i16,
    /// Executor failures used.
    pub attempts: i32,
    /// Executor failures allowed.
    pub max_attempts: i32,
    /// Leases lost.
    pub lost_leases: i32,
    /// Leases allowed to be lost.
    pub max_lost_leases: i32,
    /// The fencing token of the latest claim.
    pub token: i64,
    /// The worker holding the lease, if any.
    pub lease_owner: Option<String>,
    /// The latest error.
    pub last_error: Option<String>,
    /// Time until the job is claimable (negative once it is).
    pub run_after_in: f64,
    pub(crate) result: Option<Vec<u8>>,
    pub(crate) result_key: Option<String>,
    pub(crate) result_crc: Option<i64>,
}

type ChildRow = (
    i64,
    String,
    String,
    Option<String>,
    Option<Vec<u8>>,
    Option<String>,
    Option<i64>,
);

/// Where a child's result is ([`PgQueue::children`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultRef {
    /// Small results live in the row.
    Inline(bytes::Bytes),
    /// Large ones in the object store, under this key, with their CRC.
    Stored {
        /// The object key.
        key: String,
        /// Its CRC-32C, checked on read.
        crc: Option<i64>,
    },
}

/// A child of a parent job and its result ([`PgQueue::children`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChildResult {
    /// The child's id.
    pub id: i64,
    /// Its kind.
    pub kind: String,
    /// Its status (`succeeded` for every child of a parent that was queued).
    pub status: String,
    /// Its unique key, if it has one.
    pub unique_key: Option<String>,
    /// Its result, if it has one.
    pub result: Option<ResultRef>,
}

/// What a purge removed ([`PgQueue::purge`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Rows deleted.
    pub rows: u64,
    /// Blobs (payloads, results) deleted with them.
    pub blobs: u64,
    /// Blobs that could not be deleted (left for a collector; logged).
    pub blobs_failed: u64,
}

type JobRowTuple = (
    i64,
    String,
    String,
    i16,
    i32,
    i32,
    i32,
    i32,
    i64,
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
    Option<String>,
    Option<i64>,
    f64,
);

impl PgQueue {
    /// Counts per queue and status, the age of each queue's oldest queued
    /// job, the jobs finished in the last minute, and the live lease owners.
    ///
    /// The counts scan the table: call it for dashboards, not per job.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: it only reads; dropping it changes nothing.
    pub async fn stats(&self) -> Result<Vec<QueueStats>, QueueError> {
        let pool = &self.inner.pool;
        let sql = &self.inner.sql;
        let counts: Vec<(String, String, i64)> = sqlx::query_as(&sql.counts)
            .fetch_all(pool)
            .await
            .map_err(|e| self.database_error(e))?;
        let oldest: Vec<(String, f64)> = sqlx::query_as(&sql.oldest_queued).fetch_all(pool).await?;
        let owners: Vec<(String, Option<String>, i64)> =
            sqlx::query_as(&sql.lease_owners).fetch_all(pool).await?;
        let recent: Vec<(String, i64)> = sqlx::query_as(&sql.finished_recently)
            .bind(60.0_f64)
            .fetch_all(pool)
            .await?;
        let mut stats: BTreeMap<String, QueueStats> = BTreeMap::new();
        let mut of = |queue: String| {
            stats.entry(queue.clone()).or_insert_with(|| QueueStats {
                queue,
                ..QueueStats::default()
            });
        };
        for queue in counts
            .iter()
            .map(|c| &c.0)
            .chain(owners.iter().map(|o| &o.0))
        {
            of(queue.clone());
        }
        for (queue, status, count) in counts {
            if let Some(s) = stats.get_mut(&queue) {
                s.counts.insert(status, count);
            }
        }
        for (queue, age) in oldest {
            if let Some(s) = stats.get_mut(&queue) {
                s.oldest_queued = Some(Duration::from_secs_f64(age.max(0.0)));
            }
        }
        for (queue, count) in recent {
            if let Some(s) = stats.get_mut(&queue) {
                s.finished_last_minute = count;
            }
        }
        for (queue, owner, count) in owners {
            if let Some(s) = stats.get_mut(&queue) {
                s.lease_owners
                    .insert(owner.unwrap_or_else(|| "?".into()), count);
            }
        }
        Ok(stats.into_values().collect())
    }

    /// Up to `limit` dead jobs, oldest id first, of one queue or all.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: it only reads; dropping it changes nothing.
    pub async fn dead_jobs(
        &self,
        queue: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeadJob>, QueueError> {
        let rows: Vec<(i64, String, i32, i32, String)> = sqlx::query_as(&self.inner.sql.dead)
            .bind(queue)
            .bind(limit.max(0))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.database_error(e))?;
        Ok(rows
            .into_iter()
            .map(|(id, queue, attempts, lost_leases, last_error)| DeadJob {
                id,
                queue,
                attempts,
                lost_leases,
                last_error,
            })
            .collect())
    }

    /// Puts a dead job back on its queue with fresh budgets; returns whether
    /// it was dead (and could be requeued).
    ///
    /// Trees stay consistent: the job's dead ancestors (a dead child settles
    /// its parent dead) come back too, each `waiting` for its children that
    /// have not succeeded, so a parent never runs before the child it was
    /// requeued for. A job with a child that can never succeed (failed,
    /// cancelled, or dead and not requeued) stays dead.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: one transaction; dropped, the job was requeued or not, and requeueing again
    /// is harmless (a job no longer dead is left alone).
    pub async fn requeue(&self, id: i64) -> Result<bool, QueueError> {
        let revived = self.requeue_where(Some(id), None).await?;
        Ok(revived.contains(&id))
    }

    /// Puts every dead job (of one queue, or all) back, as
    /// [`requeue`](Self::requeue) does; returns how many jobs it revived
    /// (their dead ancestors included).
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: one transaction; dropped, the dead jobs were requeued or not, and running
    /// it again requeues what is still dead.
    pub async fn requeue_dead(&self, queue: Option<&str>) -> Result<u64, QueueError> {
        Ok(self.requeue_where(None, queue).await?.len() as u64)
    }

    /// Requeues the dead jobs matching `id` / `queue` and their dead
    /// ancestors in one transaction; returns the ids revived.
    async fn requeue_where(
        &self,
        id: Option<i64>,
        queue: Option<&str>,
    ) -> Result<Vec<i64>, QueueError> {
        let sql = &self.inner.sql;
        let mut tx = self.inner.pool.begin().await?;
        // Locked first, in id order; the next statement's snapshot then sees
        // every child completion that committed before the locks were taken,
        // and later ones wait for this transaction (they lock the parent).
        let persistent = self.inner.pool.persistent();
        let ids: Vec<i64> = sqlx::query_scalar(&sql.requeue_targets)
            .persistent(persistent)
            .bind(id)
            .bind(queue)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| self.database_error(e))?;
        let revived: Vec<(i64, String, String)> = sqlx::query_as(&sql.requeue)
            .persistent(persistent)
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| self.database_error(e))?;
        let revived_ids: Vec<i64> = revived.iter().map(|(id, ..)| *id).collect();
        if !revived_ids.is_empty() {
            sqlx::query(&sql.revive_chunks)
                .persistent(persistent)
                .bind(&revived_ids)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.database_error(e))?;
        }
        // Only queued jobs are claimable: wake their queues.
        let claimable: std::collections::BTreeSet<&String> = revived
            .iter()
            .filter(|(_, _, status)| status == "queued")
            .map(|(_, queue, _)| queue)
            .collect();
        for queue in claimable {
            self.notify(&mut tx, queue).await?;
        }
        tx.commit().await?;
        Ok(revived_ids)
    }

    /// Cancels a queued or running job; returns whether it was either. A
    /// worker running it is fenced: its result is rejected, and its heartbeat
    /// cancels the execution.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: one transaction; dropped, the job was cancelled or not, and cancelling
    /// again is harmless.
    pub async fn cancel(&self, id: i64) -> Result<bool, QueueError> {
        let done: Option<i64> = sqlx::query_scalar(&self.inner.sql.cancel)
            .bind(id)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(|e| self.database_error(e))?;
        Ok(done.is_some())
    }

    /// Deletes finished jobs (succeeded, failed, cancelled; and dead ones if
    /// `include_dead`) that finished more than `older_than` ago, with their
    /// blobs, a few thousand rows per statement so that it never holds a long
    /// transaction. Run it on a schedule so the table does not bloat.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: rows are deleted in batches, each batch's blobs
    /// after it; dropped between the two, those blobs are left for
    /// [`PgQueue::collect_orphans`], and a second run carries on.
    pub async fn purge(
        &self,
        older_than: Duration,
        include_dead: bool,
    ) -> Result<Purged, QueueError> {
        let mut purged = Purged::default();
        loop {
            let rows: Vec<(Option<String>, Option<String>)> = sqlx::query_as(&self.inner.sql.purge)
                .bind(older_than.as_secs_f64())
                .bind(PURGE_BATCH)
                .bind(include_dead)
                .fetch_all(&self.inner.pool)
                .await
                .map_err(|e| self.database_error(e))?;
            purged.rows += rows.len() as u64;
            let keys: Vec<String> = rows
                .iter()
                .flat_map(|(p, r)| [p.clone(), r.clone()])
                .flatten()
                .collect();
            let failed = self.inner.store.delete(keys.iter().cloned()).await as u64;
            purged.blobs += keys.len() as u64 - failed;
            purged.blobs_failed += failed;
            if (rows.len() as i64) < PURGE_BATCH {
                return Ok(purged);
            }
        }
    }

    /// One job's row, or `None` if there is no such job.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: it only reads; dropping it changes nothing.
    pub async fn job(&self, id: i64) -> Result<Option<JobRow>, QueueError> {
        let row: Option<JobRowTuple> = sqlx::query_as(&self.inner.sql.job)
            .bind(id)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(|e| self.database_error(e))?;
        Ok(row.map(|r| JobRow {
            id: r.0,
            queue: r.1,
            status: r.2,
            priority: r.3,
            attempts: r.4,
            max_attempts: r.5,
            lost_leases: r.6,
            max_lost_leases: r.7,
            token: r.8,
            lease_owner: r.9,
            last_error: r.10,
            result: r.11,
            result_key: r.12,
            result_crc: r.13,
            run_after_in: r.14,
        }))
    }

    /// The ids of `queue`'s jobs in `status`, above `after`, in id order, at
    /// most `limit`: page through them by passing the last id back.
    ///
    /// ```no_run
    /// # async fn demo(queue: pjp_postgres::PgQueue) -> Result<(), pjp_postgres::QueueError> {
    /// let mut after = 0;
    /// loop {
    ///     let ids = queue.job_ids("proofs", "succeeded", after, 1_000).await?;
    ///     let Some(&last) = ids.last() else { break };
    ///     for id in ids {
    ///         let _result = queue.result(id).await?;
    ///     }
    ///     after = last;
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: it only reads; dropping it changes nothing.
    pub async fn job_ids(
        &self,
        queue: &str,
        status: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<i64>, QueueError> {
        if !JOB_STATUSES.contains(&status) {
            return Err(QueueError::invalid(
                "status",
                format!("`{status}` is not one of {}", JOB_STATUSES.join(", ")),
            ));
        }
        sqlx::query_scalar(&self.inner.sql.ids)
            .bind(queue)
            .bind(status)
            .bind(after)
            .bind(limit.clamp(0, 100_000))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.database_error(e))
    }

    /// A finished job's result bytes (read from the store when large), or
    /// `None` if it has none.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: it only reads; dropping it changes nothing.
    pub async fn result(&self, id: i64) -> Result<Option<bytes::Bytes>, QueueError> {
        let Some(row) = self.job(id).await? else {
            return Ok(None);
        };
        if let Some(inline) = row.result {
            return Ok(Some(inline.into()));
        }
        let Some(key) = row.result_key else {
            return Ok(None);
        };
        self.read_blob(&key, row.result_crc, "result")
            .await
            .map(Some)
    }

    /// Reads a blob a row names, checked against its CRC; `what` names it in
    /// the error.
    async fn read_blob(
        &self,
        key: &str,
        crc: Option<i64>,
        what: &'static str,
    ) -> Result<bytes::Bytes, QueueError> {
        match self.inner.store.get(key, crc).await {
            Ok(bytes) => Ok(bytes),
            Err(BlobError::Unavailable(e)) => Err(e),
            Err(BlobError::Unusable(why)) => Err(QueueError::invalid(what, why)),
        }
    }

    /// Queued, running, oldest queued and finished in the last minute, per
    /// queue, kind and resource class: the signal an autoscaler scales each
    /// worker pool on (see the README's "Autoscaling" section). Reads only
    /// live and recently finished rows.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: it only reads; dropping it changes nothing.
    pub async fn load(&self) -> Result<Vec<KindLoad>, QueueError> {
        type Row = (
            String,
            String,
            String,
            i64,
            i64,
            Option<f64>,
            i64,
            Option<f64>,
        );
        let rows: Vec<Row> = sqlx::query_as(&self.inner.sql.load)
            .bind(60.0_f64)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.database_error(e))?;
        Ok(rows
            .into_iter()
            .map(
                |(queue, kind, resource_class, queued, running, oldest, finished, p95)| KindLoad {
                    queue,
                    kind,
                    resource_class,
                    queued,
                    running,
                    oldest_queued: oldest
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .map(Duration::from_secs_f64),
                    finished_last_minute: finished,
                    p95_duration: p95
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .map(Duration::from_secs_f64),
                },
            )
            .collect())
    }

    /// The children of `parent` with references to their results, oldest
    /// first: what a parent's executor (an aggregation) consumes. A result is
    /// inline bytes or an object-store key; [`child_result`](Self::child_result)
    /// reads either.
    ///
    /// ```no_run
    /// # async fn demo(queue: pjp_postgres::PgQueue, parent: i64) -> Result<(), pjp_postgres::QueueError> {
    /// for child in queue.children(parent).await? {
    ///     let proof = queue.child_result(&child).await?;
    ///     println!("child {} ({}): {} bytes", child.id, child.kind, proof.len());
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: it only reads; dropping it changes nothing.
    pub async fn children(&self, parent: i64) -> Result<Vec<ChildResult>, QueueError> {
        let rows: Vec<ChildRow> = sqlx::query_as(&self.inner.sql.children)
            .bind(parent)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.database_error(e))?;
        Ok(rows
            .into_iter()
            .map(
                |(id, kind, status, unique_key, inline, key, crc)| ChildResult {
                    id,
                    kind,
                    status,
                    unique_key,
                    result: match (inline, key) {
                        (Some(bytes), _) => Some(ResultRef::Inline(bytes.into())),
                        (None, Some(key)) => Some(ResultRef::Stored { key, crc }),
                        (None, None) => None,
                    },
                },
            )
            .collect())
    }

    /// A child's result bytes: inline, or read (and checked) from the store.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: it only reads; dropping it changes nothing.
    pub async fn child_result(&self, child: &ChildResult) -> Result<bytes::Bytes, QueueError> {
        match &child.result {
            Some(ResultRef::Inline(bytes)) => Ok(bytes.clone()),
            Some(ResultRef::Stored { key, crc }) => self.read_blob(key, *crc, "child result").await,
            None => Err(QueueError::invalid(
                "child result",
                format!("child {} ({}) has no result", child.id, child.status),
            )),
        }
    }

    async fn notify(&self, conn: &mut sqlx::PgConnection, queue: &str) -> Result<(), QueueError> {
        sqlx::query(NOTIFY)
            .persistent(self.inner.pool.persistent())
            .bind(&self.inner.channel)
            .bind(queue)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

/// Jobs per status of one (queue, kind, resource class)
/// ([`PgQueue::kind_counts`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KindCounts {
    /// The queue.
    pub queue: String,
    /// The kind (`""` for none).
    pub kind: String,
    /// The resource class (`""` for none).
    pub resource_class: String,
    /// Jobs per status ([`JOB_STATUSES`]); statuses with no job are absent.
    pub counts: BTreeMap<String, i64>,
}

impl KindCounts {
    /// The count for one status (0 if none).
    pub fn count(&self, status: &str) -> i64 {
        self.counts.get(status).copied().unwrap_or(0)
    }
}

/// A worker holding leases on one queue ([`PgQueue::lease_holders`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LeaseHolder {
    /// The worker id (the lease owner).
    pub owner: String,
    /// The queue.
    pub queue: String,
    /// Running jobs it holds there.
    pub jobs: i64,
    /// Their kinds, sorted (`""` for none).
    pub kinds: Vec<String>,
    /// How long ago it claimed the oldest of them (its latest claim).
    pub oldest_claim: Option<Duration>,
    /// Seconds until the first of its leases expires (negative: expired,
    /// waiting for a rescuer).
    pub first_expiry_in: f64,
    /// Seconds until the last of its leases expires: a heartbeat renews
    /// every lease to the TTL, so the last heartbeat was about `TTL -
    /// last_expiry_in` seconds ago.
    pub last_expiry_in: f64,
    /// The ids of the first 20 jobs it holds.
    pub job_ids: Vec<i64>,
}

/// Where a payload or a result is ([`JobDetail`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataRef {
    /// In the row, this many bytes.
    Inline {
        /// Its size in bytes.
        bytes: i64,
    },
    /// In the object store under this key.
    Stored {
        /// The object key.
        key: String,
        /// Its CRC-32C, checked on read.
        crc: Option<i64>,
    },
}

impl DataRef {
    fn of(inline: Option<i64>, key: Option<String>, crc: Option<i64>) -> Option<Self> {
        match (inline, key) {
            (Some(bytes), _) => Some(Self::Inline { bytes }),
            (None, Some(key)) => Some(Self::Stored { key, crc }),
            (None, None) => None,
        }
    }
}

/// Every column of one job an operator looks at ([`PgQueue::job_detail`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct JobDetail {
    /// The job's id.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// Its kind (`""` for none).
    pub kind: String,
    /// Its resource class (`""` for none).
    pub resource_class: String,
    /// Its status (see [`JobRow::status`]).
    pub status: String,
    /// Higher runs first.
    pub priority: i16,
    /// Its batch (or deadline).
    pub batch: i64,
    /// Its round: 0 is the final proof.
    pub depth: i16,
    /// Executor failures used.
    pub attempts: i32,
    /// Executor failures allowed.
    pub max_attempts: i32,
    /// Leases lost.
    pub lost_leases: i32,
    /// Leases allowed to be lost.
    pub max_lost_leases: i32,
    /// Infrastructure failures retried (no attempt used).
    pub infra_retries: i32,
    /// The fencing token of the latest claim.
    pub token: i64,
    /// The worker holding the lease, if any.
    pub lease_owner: Option<String>,
    /// Seconds until the lease expires (negative: expired), if running.
    pub lease_expires_in: Option<f64>,
    /// The latest error.
    pub last_error: Option<String>,
    /// Its unique key, if any.
    pub unique_key: Option<String>,
    /// Its parent, if it is a child of a tree.
    pub parent_id: Option<i64>,
    /// Children it still waits for (a waiting parent).
    pub waiting_on: i32,
    /// Whether a failed child cancels its tree (else it ends the parent dead).
    pub cancel_tree: bool,
    /// When it was enqueued.
    pub created_at: SystemTime,
    /// When its latest claim started.
    pub started_at: Option<SystemTime>,
    /// When it finished.
    pub finished_at: Option<SystemTime>,
    /// Seconds until it is claimable (negative once it is).
    pub run_after_in: f64,
    /// Its payload.
    pub payload: Option<DataRef>,
    /// Its result.
    pub result: Option<DataRef>,
}

/// Which jobs a [`PgQueue::job_page`] lists: every field `None` matches any.
///
/// ```
/// use pjp_postgres::JobFilter;
///
/// let dead_basic = JobFilter::default().status("dead").kind("basic").batch(7);
/// assert_eq!(dead_basic.status.as_deref(), Some("dead"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobFilter {
    /// Only this queue's jobs.
    pub queue: Option<String>,
    /// Only jobs in this status (one of [`JOB_STATUSES`]).
    pub status: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this batch.
    pub batch: Option<i64>,
    /// Only this job's children.
    pub parent: Option<i64>,
}

impl JobFilter {
    /// Only `queue`'s jobs.
    #[must_use]
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Only jobs in `status`.
    #[must_use]
    pub fn status(mut self, status: impl Into<String>) -> Self {
        self.status = Some(status.into());
        self
    }

    /// Only jobs of `kind`.
    #[must_use]
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// Only jobs of `batch`.
    #[must_use]
    pub fn batch(mut self, batch: i64) -> Self {
        self.batch = Some(batch);
        self
    }

    /// Only the children of `parent`.
    #[must_use]
    pub fn parent(mut self, parent: i64) -> Self {
        self.parent = Some(parent);
        self
    }
}

/// One job in a list ([`JobPage`], [`PgQueue::job_page`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct JobSummary {
    /// The job's id.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// Its kind.
    pub kind: String,
    /// Its resource class.
    pub resource_class: String,
    /// Its status.
    pub status: String,
    /// Its batch.
    pub batch: i64,
    /// Its round.
    pub depth: i16,
    /// Executor failures used.
    pub attempts: i32,
    /// Leases lost.
    pub lost_leases: i32,
    /// The worker holding its lease, if running.
    pub lease_owner: Option<String>,
    /// Its parent, if any.
    pub parent_id: Option<i64>,
    /// When it was enqueued.
    pub created_at: SystemTime,
    /// When it finished.
    pub finished_at: Option<SystemTime>,
    /// The start of its latest error (300 characters at most).
    pub last_error: Option<String>,
}

/// A page of jobs, newest first ([`PgQueue::job_page`]).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct JobPage {
    /// The jobs found, newest first.
    pub jobs: Vec<JobSummary>,
    /// The ids this page looked through: from `scanned.0` up to
    /// `scanned.1`, both included (empty when the table is).
    pub scanned: (i64, i64),
    /// Where the next page starts (its `before`), or `None` when no job is
    /// older than `scanned.0`. A page shorter than asked for with a next
    /// page is a window with few matches, not the end.
    pub next_before: Option<i64>,
}

/// The most ids one [`PgQueue::job_page`] looks through: a page costs at
/// most this many rows of the primary key, however large the table and
/// however rare the match.
pub const JOB_PAGE_WINDOW: i64 = 100_000;

/// One job of a tree ([`JobTree`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TreeNode {
    /// The job's id.
    pub id: i64,
    /// Its parent (`None` for the top).
    pub parent_id: Option<i64>,
    /// Its level below the top (0 for the top).
    pub level: i32,
    /// Its queue.
    pub queue: String,
    /// Its kind.
    pub kind: String,
    /// Its status.
    pub status: String,
    /// Its round as enqueued (`NewJob::depth`).
    pub depth: i16,
    /// Its batch.
    pub batch: i64,
    /// Executor failures used.
    pub attempts: i32,
    /// Leases lost.
    pub lost_leases: i32,
    /// When it was enqueued.
    pub created_at: SystemTime,
    /// When its latest claim started.
    pub started_at: Option<SystemTime>,
    /// When it finished.
    pub finished_at: Option<SystemTime>,
}

/// A tree of jobs from its top ([`PgQueue::tree`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct JobTree {
    /// The top's id.
    pub top: i64,
    /// Its jobs, level by level, then by id.
    pub nodes: Vec<TreeNode>,
    /// Whether the tree has more jobs than were read.
    pub truncated: bool,
}

/// The top of a tree, in a list of trees ([`PgQueue::recent_trees`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TreeTop {
    /// The top's id.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// Its kind.
    pub kind: String,
    /// Its status.
    pub status: String,
    /// Its batch.
    pub batch: i64,
    /// When it was enqueued.
    pub created_at: SystemTime,
    /// When it finished.
    pub finished_at: Option<SystemTime>,
    /// Its children.
    pub children: i64,
    /// Its children that succeeded.
    pub children_succeeded: i64,
}

/// A job's latest claim, for a timeline ([`PgQueue::recent_spans`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct JobSpan {
    /// The job's id.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// Its kind.
    pub kind: String,
    /// Its status.
    pub status: String,
    /// The worker holding it, while it runs (a finished row keeps no owner).
    pub lease_owner: Option<String>,
    /// When its latest claim started.
    pub started_at: SystemTime,
    /// When it finished (`None` while it runs).
    pub finished_at: Option<SystemTime>,
}

/// Unix seconds (as the statements return times) as a [`SystemTime`].
fn unix(seconds: f64) -> SystemTime {
    if seconds.is_finite() && seconds >= 0.0 {
        UNIX_EPOCH + Duration::from_secs_f64(seconds)
    } else {
        UNIX_EPOCH
    }
}

type SummaryRow = (
    i64,
    String,
    String,
    String,
    String,
    i64,
    i16,
    i32,
    i32,
    Option<String>,
    Option<i64>,
    f64,
    Option<f64>,
    Option<String>,
);

fn summary_of(r: SummaryRow) -> JobSummary {
    JobSummary {
        id: r.0,
        queue: r.1,
        kind: r.2,
        resource_class: r.3,
        status: r.4,
        batch: r.5,
        depth: r.6,
        attempts: r.7,
        lost_leases: r.8,
        lease_owner: r.9,
        parent_id: r.10,
        created_at: unix(r.11),
        finished_at: r.12.map(unix),
        last_error: r.13,
    }
}

type TreeRow = (
    i64,
    Option<i64>,
    i32,
    String,
    String,
    String,
    i16,
    i64,
    i32,
    i32,
    f64,
    Option<f64>,
    Option<f64>,
);

type TopRow = (i64, String, String, String, i64, f64, Option<f64>, i64, i64);

fn top_of(r: TopRow) -> TreeTop {
    TreeTop {
        id: r.0,
        queue: r.1,
        kind: r.2,
        status: r.3,
        batch: r.4,
        created_at: unix(r.5),
        finished_at: r.6.map(unix),
        children: r.7,
        children_succeeded: r.8,
    }
}

/// The most jobs [`PgQueue::tree`] reads of one tree.
pub const MAX_TREE_NODES: i64 = 50_000;

impl PgQueue {
    /// Jobs per queue, kind, resource class and status (every status,
    /// history included). It scans the table: a dashboard's refresh, not a
    /// per-job call.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: it only reads; dropping it changes nothing.
    pub async fn kind_counts(&self) -> Result<Vec<KindCounts>, QueueError> {
        let rows: Vec<(String, String, String, String, i64)> =
            sqlx::query_as(&self.inner.sql.console.kind_counts)
                .fetch_all(&self.inner.pool)
                .await
                .map_err(|e| self.database_error(e))?;
        let mut out: Vec<KindCounts> = Vec::new();
        for (queue, kind, resource_class, status, count) in rows {
            let same = out.last().is_some_and(|k: &KindCounts| {
                k.queue == queue && k.kind == kind && k.resource_class == resource_class
            });
            if !same {
                out.push(KindCounts {
                    queue,
                    kind,
                    resource_class,
                    counts: BTreeMap::new(),
                });
            }
            if let Some(last) = out.last_mut() {
                last.counts.insert(status, count);
            }
        }
        Ok(out)
    }

    /// The workers holding leases now, per queue: how many jobs, which
    /// kinds, their oldest claim and their leases' expiries. Reads only
    /// running rows.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: it only reads; dropping it changes nothing.
    pub async fn lease_holders(&self) -> Result<Vec<LeaseHolder>, QueueError> {
        type Row = (
            String,
            String,
            i64,
            Vec<String>,
            Option<f64>,
            Option<f64>,
            Option<f64>,
            Vec<i64>,
        );
        let rows: Vec<Row> = sqlx::query_as(&self.inner.sql.console.lease_holders)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.database_error(e))?;
        Ok(rows
            .into_iter()
            .map(
                |(owner, queue, jobs, kinds, oldest, first, last, job_ids)| LeaseHolder {
                    owner,
                    queue,
                    jobs,
                    kinds,
                    oldest_claim: oldest
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .map(Duration::from_secs_f64),
                    first_expiry_in: first.unwrap_or(0.0),
                    last_expiry_in: last.unwrap_or(0.0),
                    job_ids,
                },
            )
            .collect())
    }

    /// Every column of job `id` an operator looks at, or `None` if there is
    /// no such job.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: it only reads; dropping it changes nothing.
    pub async fn job_detail(&self, id: i64) -> Result<Option<JobDetail>, QueueError> {
        use sqlx::Row as _;
        let row = sqlx::query(&self.inner.sql.console.job_detail)
            .bind(id)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(|e| self.database_error(e))?;
        let Some(r) = row else { return Ok(None) };
        let detail = JobDetail {
            id: r.try_get(0)?,
            queue: r.try_get(1)?,
            kind: r.try_get(2)?,
            resource_class: r.try_get(3)?,
            status: r.try_get(4)?,
            priority: r.try_get(5)?,
            batch: r.try_get(6)?,
            depth: r.try_get(7)?,
            attempts: r.try_get(8)?,
            max_attempts: r.try_get(9)?,
            lost_leases: r.try_get(10)?,
            max_lost_leases: r.try_get(11)?,
            infra_retries: r.try_get(12)?,
            token: r.try_get(13)?,
            lease_owner: r.try_get(14)?,
            lease_expires_in: r.try_get(15)?,
            last_error: r.try_get(16)?,
            unique_key: r.try_get(17)?,
            parent_id: r.try_get(18)?,
            waiting_on: r.try_get(19)?,
            cancel_tree: r.try_get(20)?,
            created_at: unix(r.try_get(21)?),
            started_at: r.try_get::<Option<f64>, _>(22)?.map(unix),
            finished_at: r.try_get::<Option<f64>, _>(23)?.map(unix),
            run_after_in: r.try_get(24)?,
            payload: DataRef::of(r.try_get(25)?, r.try_get(26)?, r.try_get(27)?),
            result: DataRef::of(r.try_get(28)?, r.try_get(29)?, r.try_get(30)?),
        };
        Ok(Some(detail))
    }

    /// A page of at most `limit` (1..=1,000) jobs matching `filter`, newest
    /// first, with ids below `before` (`None`: from the newest); pass the
    /// page's [`next_before`](JobPage::next_before) back for the next one.
    ///
    /// Keyset pagination on the primary key: a page reads the ids below
    /// `before` backwards and stops when it has `limit` jobs or has looked
    /// through [`JOB_PAGE_WINDOW`] ids, so it never scans the table, however
    /// many rows it holds; a rare filter can give a short page that still
    /// has a next one.
    ///
    /// # Errors
    ///
    /// [`QueueError::Invalid`] for a status that is not one of
    /// [`JOB_STATUSES`].
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: it only reads; dropping it changes nothing.
    pub async fn job_page(
        &self,
        filter: &JobFilter,
        before: Option<i64>,
        limit: i64,
    ) -> Result<JobPage, QueueError> {
        if let Some(status) = &filter.status
            && !JOB_STATUSES.contains(&status.as_str())
        {
            return Err(QueueError::invalid(
                "status",
                format!("`{status}` is not one of {}", JOB_STATUSES.join(", ")),
            ));
        }
        let sql = &self.inner.sql.console;
        let (max, min): (i64, i64) = sqlx::query_as(&sql.id_bounds)
            .fetch_one(&self.inner.pool)
            .await
            .map_err(|e| self.database_error(e))?;
        let top = before.unwrap_or(i64::MAX).min(max.saturating_add(1));
        if max == 0 || top <= min {
            return Ok(JobPage::default());
        }
        let floor = top.saturating_sub(JOB_PAGE_WINDOW).max(min);
        let limit = limit.clamp(1, 1_000);
        let rows: Vec<SummaryRow> = sqlx::query_as(&sql.job_page)
            .bind(top)
            .bind(floor)
            .bind(filter.queue.as_deref())
            .bind(filter.status.as_deref())
            .bind(filter.kind.as_deref())
            .bind(filter.batch)
            .bind(filter.parent)
            .bind(limit)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.database_error(e))?;
        let full = rows.len() as i64 == limit;
        let jobs: Vec<JobSummary> = rows.into_iter().map(summary_of).collect();
        let (scanned, next_before) = match (full, jobs.last()) {
            (true, Some(last)) => ((last.id, top - 1), (last.id > min).then_some(last.id)),
            _ => ((floor, top - 1), (floor > min).then_some(floor)),
        };
        Ok(JobPage {
            jobs,
            scanned,
            next_before,
        })
    }

    /// The first `limit` (1..=1,000) children of parent `id`, oldest first
    /// (empty for a job with none).
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: it only reads; dropping it changes nothing.
    pub async fn child_page(&self, id: i64, limit: i64) -> Result<Vec<JobSummary>, QueueError> {
        let rows: Vec<SummaryRow> = sqlx::query_as(&self.inner.sql.console.child_page)
            .bind(id)
            .bind(limit.clamp(1, 1_000))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.database_error(e))?;
        Ok(rows.into_iter().map(summary_of).collect())
    }

    /// Parent `id`'s children per status (empty for a job with none).
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: it only reads; dropping it changes nothing.
    pub async fn child_counts(&self, id: i64) -> Result<BTreeMap<String, i64>, QueueError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(&self.inner.sql.console.child_counts)
            .bind(id)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.database_error(e))?;
        Ok(rows.into_iter().collect())
    }

    /// The tree job `id` belongs to, from its top (found by walking up from
    /// `id`), level by level, at most `limit` jobs (up to
    /// [`MAX_TREE_NODES`]); `None` if there is no job `id`. A job with no
    /// parent and no children is a tree of one.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: it only reads; dropping it changes nothing.
    pub async fn tree(&self, id: i64, limit: i64) -> Result<Option<JobTree>, QueueError> {
        let limit = limit.clamp(1, MAX_TREE_NODES);
        let rows: Vec<TreeRow> = sqlx::query_as(&self.inner.sql.console.tree)
            .bind(id)
            .bind(limit + 1)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.database_error(e))?;
        let truncated = rows.len() as i64 > limit;
        let mut nodes: Vec<TreeNode> = rows
            .into_iter()
            .map(|r| TreeNode {
                id: r.0,
                parent_id: r.1,
                level: r.2,
                queue: r.3,
                kind: r.4,
                status: r.5,
                depth: r.6,
                batch: r.7,
                attempts: r.8,
                lost_leases: r.9,
                created_at: unix(r.10),
                started_at: r.11.map(unix),
                finished_at: r.12.map(unix),
            })
            .collect();
        if truncated {
            nodes.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        }
        let Some(top) = nodes.iter().find(|n| n.level == 0).map(|n| n.id) else {
            return Ok(None);
        };
        Ok(Some(JobTree {
            top,
            nodes,
            truncated,
        }))
    }

    /// The tops of the newest trees (jobs with children and no parent),
    /// newest first, at most `limit`; with `batch`, the tops of that batch's
    /// trees instead.
    ///
    /// Without `batch` it reads the 200 newest parents from the
    /// `jobs_children` index, one look-up each, so its cost does not grow
    /// with the table; with `batch` it scans the table (no index has the
    /// batch of finished rows).
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: it only reads; dropping it changes nothing.
    pub async fn recent_trees(
        &self,
        batch: Option<i64>,
        limit: i64,
    ) -> Result<Vec<TreeTop>, QueueError> {
        let sql = &self.inner.sql.console;
        let limit = limit.clamp(1, 200);
        let rows: Vec<TopRow> = match batch {
            Some(batch) => sqlx::query_as(&sql.batch_trees).bind(batch).bind(limit),
            None => sqlx::query_as(&sql.recent_trees).bind(200_i64).bind(limit),
        }
        .fetch_all(&self.inner.pool)
        .await
        .map_err(|e| self.database_error(e))?;
        Ok(rows.into_iter().map(top_of).collect())
    }

    /// Cancels every job still queued, running or waiting in the tree job
    /// `id` belongs to (the whole tree, from its top); returns how many it
    /// cancelled (0 for no such job, or a tree already finished). Workers
    /// running them are fenced, as by [`cancel`](Self::cancel).
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: one statement; dropped, the tree was cancelled or not,
    /// and cancelling again is harmless.
    pub async fn cancel_tree(&self, id: i64) -> Result<u64, QueueError> {
        let ids: Vec<i64> = sqlx::query_scalar(&self.inner.sql.console.cancel_tree)
            .bind(id)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.database_error(e))?;
        Ok(ids.len() as u64)
    }

    /// The jobs running now or finished within `window`, newest first, at
    /// most `limit`, and the database's clock: what a timeline of the fleet
    /// draws. Reads only running and recently finished rows.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: it only reads; dropping it changes nothing.
    pub async fn recent_spans(
        &self,
        window: Duration,
        limit: i64,
    ) -> Result<(SystemTime, Vec<JobSpan>), QueueError> {
        type Row = (
            i64,
            String,
            String,
            String,
            Option<String>,
            f64,
            Option<f64>,
            f64,
        );
        let rows: Vec<Row> = sqlx::query_as(&self.inner.sql.console.recent_spans)
            .bind(window.as_secs_f64())
            .bind(limit.clamp(0, 1_000_000))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.database_error(e))?;
        let now = rows.first().map_or_else(SystemTime::now, |r| unix(r.7));
        Ok((
            now,
            rows.into_iter()
                .map(|r| JobSpan {
                    id: r.0,
                    queue: r.1,
                    kind: r.2,
                    status: r.3,
                    lease_owner: r.4,
                    started_at: unix(r.5),
                    finished_at: r.6.map(unix),
                })
                .collect(),
        ))
    }
}
