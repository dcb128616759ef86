//! Fenced batch writes shared by the picker and the saver: complete and
//! release many jobs in one statement, and explain the ones that were fenced.

use std::collections::HashMap;

use crate::queue::once_more_if_gone;
use crate::sql::Completion;
use crate::store::Stored;
use crate::worker::{Counters, WorkerShared};
use crate::{PgJob, QueueError};

/// One job's end, as written by [`complete`].
pub(crate) struct Finish {
    pub(crate) job: PgJob,
    pub(crate) kind: Completion,
    pub(crate) result: Stored,
    pub(crate) error: Option<String>,
}

/// Completes a batch in one statement. One outcome per job, in order: the
/// status the job ended in, or [`QueueError::Fenced`] for a job whose claim
/// was superseded, or the statement's error for every job.
pub(crate) async fn complete(
    shared: &WorkerShared,
    batch: &[Finish],
) -> Vec<Result<String, QueueError>> {
    if batch.is_empty() {
        return Vec::new();
    }
    let n = batch.len();
    let (mut ids, mut tokens, mut kinds) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut results, mut keys, mut crcs, mut errors) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for finish in batch {
        ids.push(finish.job.id);
        tokens.push(finish.job.token);
        kinds.push(finish.kind as i16);
        results.push(finish.result.inline.clone());
        keys.push(finish.result.key.clone());
        crcs.push(finish.result.crc);
        errors.push(finish.error.clone());
    }
    let queue = &shared.queue.inner;
    let config = &shared.config;
    let written: Result<Vec<(i64, String)>, sqlx::Error> = once_more_if_gone(&queue.pool, || {
        sqlx::query_as(&queue.sql.complete)
            .bind(&ids)
            .bind(&tokens)
            .bind(&kinds)
            .bind(&results)
            .bind(&keys)
            .bind(&crcs)
            .bind(&errors)
            .bind(config.retry_base.as_secs_f64())
            .bind(config.retry_max.as_secs_f64())
            .fetch_all(&queue.pool)
    })
    .await;
    let written: HashMap<i64, String> = match written {
        Ok(rows) => rows.into_iter().collect(),
        Err(error) => {
            // The statement is one transaction: nothing was written. Every job
            // gets the error (cloned by message; the class is what matters).
            let shared_error = QueueError::Database(error);
            return batch
                .iter()
                .map(|_| Err(clone_error(&shared_error)))
                .collect();
        }
    };
    let fenced: Vec<PgJob> = batch
        .iter()
        .filter(|f| !written.contains_key(&f.job.id))
        .map(|f| f.job)
        .collect();
    let mut fenced = explain_fenced(shared, &fenced).await;
    batch
        .iter()
        .map(|finish| {
            let job = finish.job;
            shared.drop_lease(job.id, job.token);
            match written.get(&job.id) {
                Some(status) => {
                    let counter = match finish.kind {
                        Completion::Succeeded => &shared.counters.succeeded,
                        Completion::Release => &shared.counters.released,
                        Completion::Retry | Completion::Failed | Completion::Dead => {
                            &shared.counters.failed
                        }
                    };
                    Counters::add(counter, 1);
                    if status == "dead" {
                        Counters::add(&shared.counters.dead, 1);
                    }
                    Ok(status.clone())
                }
                None => fenced.remove(&job.id).unwrap_or(Err(QueueError::Fenced {
                    id: job.id,
                    held: job.token,
                    current: -1,
                    status: "unknown".into(),
                })),
            }
        })
        .collect()
}

/// Releases a batch in one statement: back to `queued` after `delay`, no
/// attempt used. A job already fenced counts as released (someone else holds
/// it now, or it is finished): there is nothing left to hand back.
pub(crate) async fn release(
    shared: &WorkerShared,
    jobs: &[PgJob],
    delay: std::time::Duration,
    note: Option<String>,
) -> Result<(), QueueError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
    let tokens: Vec<i64> = jobs.iter().map(|j| j.token).collect();
    let queue = &shared.queue.inner;
    let released: Vec<i64> = once_more_if_gone(&queue.pool, || {
        sqlx::query_scalar(&queue.sql.release)
            .bind(&ids)
            .bind(&tokens)
            .bind(delay.as_secs_f64())
            .bind(note.as_deref())
            .fetch_all(&queue.pool)
    })
    .await?;
    Counters::add(&shared.counters.released, released.len());
    let fenced = jobs.len() - released.len();
    if fenced > 0 {
        Counters::add(&shared.counters.fenced, fenced);
        tracing::debug!(fenced, "released jobs another claim had superseded");
    }
    for job in jobs {
        shared.drop_lease(job.id, job.token);
    }
    Ok(())
}

/// Looks up each job whose write matched no row. A row that still carries
/// this claim's token, is no longer running and lost no lease since, was last
/// written by this claim: the write is a repeat of one that committed (its
/// reply was lost and the runner retried), so it is done. Any other row was
/// superseded: counted, logged with both tokens, and reported as fenced.
async fn explain_fenced(
    shared: &WorkerShared,
    fenced: &[PgJob],
) -> HashMap<i64, Result<String, QueueError>> {
    if fenced.is_empty() {
        return HashMap::new();
    }
    let ids: Vec<i64> = fenced.iter().map(|j| j.id).collect();
    let current: HashMap<i64, (i64, String, i32)> =
        sqlx::query_as::<_, (i64, i64, String, i32)>(&shared.queue.inner.sql.current_tokens)
            .bind(&ids)
            .fetch_all(&shared.queue.inner.pool)
            .await
            .map(|rows| {
                rows.into_iter()
                    .map(|(i, t, s, l)| (i, (t, s, l)))
                    .collect()
            })
            .unwrap_or_default();
    fenced
        .iter()
        .map(|job| {
            let (token, status, lost) =
                current
                    .get(&job.id)
                    .cloned()
                    .unwrap_or((-1, "unknown".to_owned(), -1));
            if token == job.token
                && status != "running"
                && status != "cancelled"
                && lost == job.lost_leases
            {
                return (job.id, Ok(status));
            }
            Counters::add(&shared.counters.fenced, 1);
            tracing::warn!(
                job = job.id,
                held_token = job.token,
                current_token = token,
                %status,
                "stale write rejected: the job's lease was superseded"
            );
            (
                job.id,
                Err(QueueError::Fenced {
                    id: job.id,
                    held: job.token,
                    current: token,
                    status,
                }),
            )
        })
        .collect()
}

/// A copy of a batch statement's error for each job of the batch
/// (`sqlx::Error` is not `Clone`): its message and its class.
fn clone_error(error: &QueueError) -> QueueError {
    QueueError::Batch {
        message: error.to_string(),
        class: error.class(),
    }
}
