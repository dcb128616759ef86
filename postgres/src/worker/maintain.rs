//! The maintenance task: keeps the jobs table's statistics and dead rows in
//! check, so the queue does not depend on autovacuum's settings. A task of
//! its own: a long `VACUUM` never delays a heartbeat.

use std::time::Duration;

use tokio::time::MissedTickBehavior;

use crate::error::QueueError;
use crate::queue::PgQueue;
use crate::sql::maintain::{CHURN, TRY_LOCK, UNLOCK};

/// What one [`PgQueue::maintain`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Maintained {
    /// Another worker of the schema holds the maintenance lock.
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
        match queue.maintain().await {
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
    /// Looks after the jobs table: refreshes its statistics once a tenth of
    /// its rows (at least 1,000) changed since they were last gathered, and
    /// reclaims dead rows once they pass a fifth of the live ones (at least
    /// 10,000). One caller of a schema at a time: another gets
    /// [`Maintained::Busy`] at once. Every worker does this every
    /// [`maintenance_interval`](crate::WorkerConfig::maintenance_interval);
    /// call it yourself to maintain a queue no worker serves.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: a dropped call closes its connection, which ends a
    /// running `ANALYZE` or `VACUUM` and releases the lock.
    pub async fn maintain(&self) -> Result<Maintained, QueueError> {
        maintain_once(self).await
    }
}

async fn maintain_once(queue: &PgQueue) -> Result<Maintained, QueueError> {
    let inner = &queue.inner;
    // A session lock on a connection of its own, released before it goes
    // back to the pool (or with it, if the task is dropped mid-way).
    let mut conn = inner.pool.acquire().await?.detach();
    let name = format!("pjp-postgres maintain {}", inner.schema);
    let locked: bool = sqlx::query_scalar(TRY_LOCK)
        .bind(&name)
        .fetch_one(&mut conn)
        .await?;
    if !locked {
        return Ok(Maintained::Busy);
    }
    let done = async {
        let (changed, dead, live): (i64, i64, i64) = sqlx::query_as(CHURN)
            .bind(&inner.schema)
            .fetch_optional(&mut conn)
            .await?
            .unwrap_or_default();
        if dead > (live / 5).max(10_000) {
            sqlx::query(&inner.sql.vacuum).execute(&mut conn).await?;
            Ok(Maintained::Vacuumed)
        } else if changed > (live / 10).max(1_000) {
            sqlx::query(&inner.sql.analyze).execute(&mut conn).await?;
            Ok(Maintained::Analyzed)
        } else {
            Ok::<_, QueueError>(Maintained::Nothing)
        }
    }
    .await;
    let _ = sqlx::query_scalar::<_, bool>(UNLOCK)
        .bind(&name)
        .fetch_one(&mut conn)
        .await;
    let _ = sqlx::Connection::close(conn).await;
    done
}
