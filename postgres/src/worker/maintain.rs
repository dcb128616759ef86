//! The maintenance task: keeps the jobs table's statistics and dead rows in
//! check, so the queue does not depend on autovacuum's settings. A task of
//! its own: a long `VACUUM` never delays a heartbeat.

use std::time::Duration;

use tokio::time::MissedTickBehavior;

use crate::db::Db;
use crate::error::QueueError;
use crate::queue::PgQueue;
use sqlx::{Connection, Executor, PgConnection};

use crate::sql::maintain::{CHURN, TRY_LOCK};

/// What one [`PgQueue::maintain`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Maintained {
    /// Work was due, but another caller of the schema holds the
    /// maintenance lock.
    Busy,
    /// Nothing needed doing.
    Nothing,
    /// The statistics were refreshed.
    Analyzed,
    /// Dead rows were reclaimed (and the statistics refreshed).
    Vacuumed,
}

/// Every `every` (never when zero), [`PgQueue::maintain`].
pub(crate) async fn run(queue: PgQueue, every: Duration) {
    if every.is_zero() {
        return;
    }
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // The rescuer keeps the hot set every rescue: a worker's periodic
        // maintenance leaves it out (a thousand workers would queue on its
        // row lock for nothing).
        match maintain_once(&queue, false).await {
            Ok(Maintained::Analyzed) => tracing::debug!("jobs table analyzed"),
            Ok(Maintained::Vacuumed) => tracing::info!("jobs table vacuumed"),
            Ok(Maintained::Busy | Maintained::Nothing) => {}
            Err(error) => {
                tracing::warn!(%error, "queue maintenance failed; retrying next interval")
            }
        }
    }
}

impl PgQueue {
    /// Looks after the jobs table: keeps the set of chunks claims read (as
    /// the rescuer does with every rescue; see the crate's README, "the hot
    /// set"), refreshes the statistics once a tenth of its rows (at least
    /// 1,000) changed since they were last gathered, and reclaims dead rows
    /// once they pass a fifth of the live ones (at least 10,000). A look that
    /// finds nothing else to do costs that one statement and one read of the
    /// statistics view; the work itself is done by one caller of a schema
    /// at a time (another gets [`Maintained::Busy`] at once). Every worker
    /// does all but the hot set every
    /// [`maintenance_interval`](crate::WorkerConfig::maintenance_interval)
    /// (its rescuer keeps that); call it yourself to maintain a queue no
    /// worker serves.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: a dropped call rolls back the transaction holding the
    /// lock (ending a running `ANALYZE`) and closes the connection running a
    /// `VACUUM`.
    pub async fn maintain(&self) -> Result<Maintained, QueueError> {
        maintain_once(self, true).await
    }
}

impl PgQueue {
    /// Keeps the set of chunks claims read (see the crate's README, "the hot
    /// set"); returns how many chunks a claim reads now. One statement.
    pub(crate) async fn keep_hot_set(&self) -> Result<i64, QueueError> {
        self.keep_hot_set_on(&self.inner.pool).await
    }

    /// The same on `db` (the rescuer's heartbeat runs it on its own
    /// connection).
    pub(crate) async fn keep_hot_set_on(&self, db: &Db) -> Result<i64, QueueError> {
        Ok(sqlx::query_scalar(&self.inner.sql.hot_set)
            .fetch_one(db)
            .await?)
    }
}

/// What the table needs, from its churn: dead rows past a fifth of the
/// live ones (at least 10,000) want a vacuum; a tenth of the rows (at least
/// 1,000) changed since the last analyze want fresh statistics.
fn needs(changed: i64, dead: i64, live: i64) -> Maintained {
    if dead > (live / 5).max(10_000) {
        Maintained::Vacuumed
    } else if changed > (live / 10).max(1_000) {
        Maintained::Analyzed
    } else {
        Maintained::Nothing
    }
}

/// The jobs table's churn: rows changed since the last analyze, dead rows,
/// live rows (zeros before the statistics collector has seen the table).
async fn churn(db: &Db, schema: &str) -> Result<(i64, i64, i64), sqlx::Error> {
    Ok(sqlx::query_as(CHURN)
        .bind(schema)
        .fetch_optional(db)
        .await?
        .unwrap_or_default())
}

/// One round of maintenance; `hot_set`: keep the hot set too (for a queue
/// no worker's rescuer keeps it for).
async fn maintain_once(queue: &PgQueue, hot_set: bool) -> Result<Maintained, QueueError> {
    let inner = &queue.inner;
    if hot_set {
        queue.keep_hot_set().await?;
    }
    // A look first: most looks find nothing to do, and cost neither a
    // transaction of their own nor the lock.
    let (changed, dead, live) = churn(&inner.pool, &inner.schema).await?;
    if needs(changed, dead, live) == Maintained::Nothing {
        return Ok(Maintained::Nothing);
    }
    // The work is done under a transaction-scoped lock, held by a
    // transaction open around it: it ends with the transaction, whatever
    // happens (a dropped call rolls it back), and it works through a
    // transaction pooler, which lends the transaction one server throughout.
    let mut tx = inner.pool.begin().await?;
    let persistent = inner.pool.persistent();
    let name = format!("pjp-postgres maintain {}", inner.schema);
    let locked: bool = sqlx::query_scalar(TRY_LOCK)
        .persistent(persistent)
        .bind(&name)
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        return Ok(Maintained::Busy);
    }
    // Read again under the lock: another worker may have just done it.
    let (changed, dead, live): (i64, i64, i64) = sqlx::query_as(CHURN)
        .persistent(persistent)
        .bind(&inner.schema)
        .fetch_optional(&mut *tx)
        .await?
        .unwrap_or_default();
    let need = needs(changed, dead, live);
    match need {
        Maintained::Vacuumed => {
            // VACUUM cannot run inside a transaction: on a connection of its
            // own, while the lock's transaction stays open. One statement
            // with no parameters, so a transaction pooler runs it whole on
            // one server.
            let mut conn = PgConnection::connect_with(&inner.connect).await?;
            let vacuumed = conn.execute(inner.sql.vacuum.as_str()).await;
            let _ = conn.close().await;
            vacuumed?;
        }
        Maintained::Analyzed => {
            tx.execute(inner.sql.analyze.as_str()).await?;
        }
        Maintained::Busy | Maintained::Nothing => {}
    }
    tx.commit().await?;
    Ok(need)
}
