//! Operator calls on a [`PgQueue`]: what is queued and who holds what, dead
//! letters, requeue, cancel, purge.

use std::collections::BTreeMap;
use std::time::Duration;

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
        let ids: Vec<i64> = sqlx::query_scalar(&sql.requeue_targets)
            .bind(id)
            .bind(queue)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| self.database_error(e))?;
        let revived: Vec<(i64, String, String)> = sqlx::query_as(&sql.requeue)
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| self.database_error(e))?;
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
        Ok(revived.into_iter().map(|(id, ..)| id).collect())
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
            .bind(&self.inner.channel)
            .bind(queue)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}
