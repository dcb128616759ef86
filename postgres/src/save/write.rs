//! Fenced batch writes shared by the picker and the saver: complete and
//! release many jobs in one statement, and explain the ones that were fenced.

use std::collections::HashMap;

use pjp_core::JobMeta;

use crate::config::WorkerConfig;
use crate::error::QueueError;
use crate::job::PgJob;
use crate::queue::LatePolicy;
use crate::queue::once_more_if_gone;
use crate::sql::Completion;
use crate::sql::notify::NOTIFY;
use crate::state::{Counters, WorkerShared};
use crate::store::Stored;

/// One job's end, as written by [`complete`].
pub(crate) struct Finish {
    pub(crate) job: PgJob,
    pub(crate) kind: Completion,
    pub(crate) result: Stored,
    pub(crate) error: Option<String>,
}

/// A row of a completion: a job, its new status and whether its success was
/// accepted late, or a parent it made claimable (`parent-queued`) and that
/// parent's queue.
type Written = (i64, String, Option<String>, bool);

/// The columns of a batch completion, one vector per bind parameter.
struct Columns {
    ids: Vec<i64>,
    tokens: Vec<i64>,
    kinds: Vec<i16>,
    results: Vec<Option<Vec<u8>>>,
    keys: Vec<Option<String>>,
    crcs: Vec<Option<i64>>,
    errors: Vec<Option<String>>,
}

impl Columns {
    fn of(batch: &[Finish]) -> Self {
        Self {
            ids: batch.iter().map(|f| f.job.id).collect(),
            tokens: batch.iter().map(|f| f.job.token).collect(),
            kinds: batch.iter().map(|f| f.kind as i16).collect(),
            results: batch.iter().map(|f| f.result.inline.clone()).collect(),
            keys: batch.iter().map(|f| f.result.key.clone()).collect(),
            crcs: batch.iter().map(|f| f.result.crc).collect(),
            errors: batch.iter().map(|f| f.error.clone()).collect(),
        }
    }

    /// The completion statement with every parameter bound (the queue's
    /// policy for late results last).
    fn bind<'q>(
        &'q self,
        sql: &'q str,
        config: &WorkerConfig,
        late: &'q LatePolicy,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, Written, sqlx::postgres::PgArguments> {
        sqlx::query_as(sql)
            .bind(&self.ids)
            .bind(&self.tokens)
            .bind(&self.kinds)
            .bind(&self.results)
            .bind(&self.keys)
            .bind(&self.crcs)
            .bind(&self.errors)
            .bind(config.retry_base.as_secs_f64())
            .bind(config.retry_max.as_secs_f64())
            .bind(late.accept)
            .bind(&late.except)
    }
}

/// What a completion did to one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Done {
    /// The status the job ended in.
    pub(crate) status: String,
    /// The write matched no row because this claim's own earlier write had
    /// committed (its reply was lost): nothing was written this time.
    pub(crate) repeat: bool,
    /// A success accepted although this claim had lost the job's lease
    /// (the queue accepts late results; see
    /// [`PgQueueBuilder::late_results`](crate::PgQueueBuilder::late_results)).
    pub(crate) late: bool,
}

/// Completes a batch in one statement. One outcome per job, in order: what
/// it did, or [`QueueError::Fenced`] for a job whose claim was superseded,
/// or the statement's error for every job.
pub(crate) async fn complete(
    shared: &WorkerShared,
    batch: &[Finish],
) -> Vec<Result<Done, QueueError>> {
    if batch.is_empty() {
        return Vec::new();
    }
    let columns = Columns::of(batch);
    let queue = &shared.queue.inner;
    let written = once_more_if_gone(&queue.pool, || {
        columns
            .bind(&queue.sql.complete, &shared.config, &queue.late)
            .fetch_all(&queue.pool)
    })
    .await;
    let (outcomes, woken) = settle(shared, batch, written).await;
    account(shared, batch, &outcomes);
    wake_parents(shared, woken).await;
    outcomes
}

/// Completes a batch in one statement on `conn`, inside the caller's
/// transaction: outcomes as [`complete`], and the queues of the parents it
/// made claimable, for the caller to [wake](wake_parents) once the
/// transaction has committed (before, a woken worker would find nothing).
/// Nothing is counted and no lease let go: the caller [accounts](account)
/// for the outcomes once they are final (committed, or fenced).
pub(crate) async fn complete_on(
    conn: &mut sqlx::PgConnection,
    shared: &WorkerShared,
    batch: &[Finish],
) -> (Vec<Result<Done, QueueError>>, Vec<String>) {
    if batch.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let columns = Columns::of(batch);
    let queue = &shared.queue.inner;
    let written = columns
        .bind(&queue.sql.complete, &shared.config, &queue.late)
        .fetch_all(conn)
        .await;
    settle(shared, batch, written).await
}

/// Turns the rows a completion wrote into one outcome per job, explaining
/// the fenced ones; also returns the queues of the parents it made
/// claimable.
async fn settle(
    shared: &WorkerShared,
    batch: &[Finish],
    written: Result<Vec<Written>, sqlx::Error>,
) -> (Vec<Result<Done, QueueError>>, Vec<String>) {
    let mut woken = Vec::new();
    let written: HashMap<i64, (String, bool)> = match written {
        Ok(rows) => {
            let (parents, jobs): (Vec<Written>, Vec<Written>) =
                rows.into_iter().partition(|(_, _, woke, _)| woke.is_some());
            woken.extend(parents.into_iter().filter_map(|(_, _, q, _)| q));
            jobs.into_iter()
                .map(|(id, status, _, late)| (id, (status, late)))
                .collect()
        }
        Err(error) => {
            // The statement is one transaction: nothing was written. Every job
            // gets the error (cloned by message; the class is what matters).
            let shared_error = QueueError::Database(error);
            let failed = batch
                .iter()
                .map(|_| Err(clone_error(&shared_error)))
                .collect();
            return (failed, woken);
        }
    };
    let fenced: Vec<PgJob> = batch
        .iter()
        .filter(|f| !written.contains_key(&f.job.id))
        .map(|f| f.job)
        .collect();
    let mut fenced = explain_fenced(shared, &fenced).await;
    let outcomes = batch
        .iter()
        .map(|finish| {
            let job = finish.job;
            match written.get(&job.id) {
                Some((status, late)) => Ok(Done {
                    status: status.clone(),
                    repeat: false,
                    late: *late,
                }),
                None => fenced.remove(&job.id).unwrap_or(Err(QueueError::Fenced {
                    id: job.id,
                    held: job.token,
                    current: -1,
                    status: "unknown".into(),
                })),
            }
        })
        .collect();
    (outcomes, woken)
}

/// Counts a completion's final outcomes and lets go of the leases it ended:
/// every job written or fenced; a job whose statement failed is still this
/// claim's (the runner retries its save, and the heartbeat keeps extending
/// the lease meanwhile).
pub(crate) fn account(
    shared: &WorkerShared,
    batch: &[Finish],
    outcomes: &[Result<Done, QueueError>],
) {
    let counters = &shared.counters;
    for (finish, outcome) in batch.iter().zip(outcomes) {
        let job = finish.job;
        let done = match outcome {
            Err(QueueError::Fenced { .. }) => {
                shared.drop_lease(job.id, job.token);
                continue;
            }
            Err(_) => continue,
            Ok(done) => done,
        };
        shared.drop_lease(job.id, job.token);
        if done.repeat {
            continue; // counted when it committed
        }
        let counter = match finish.kind {
            Completion::Release | Completion::Infrastructure => {
                counters.handed_back([job.id]);
                &counters.released
            }
            Completion::Succeeded => {
                counters.finished(job.id);
                &counters.succeeded
            }
            Completion::Retry | Completion::Failed | Completion::Dead => {
                counters.finished(job.id);
                &counters.failed
            }
        };
        Counters::add(counter, 1);
        if done.status == "dead" {
            Counters::add(&counters.dead, 1);
        }
        if done.late {
            accepted_late(shared, &job);
        }
    }
}

/// A success of `job` was accepted although its claim had lost the lease:
/// counted, logged, and told to the runner saving it (which counts it in
/// `report.counts.late_accepted`).
fn accepted_late(shared: &WorkerShared, job: &PgJob) {
    Counters::add(&shared.counters.late_accepted, 1);
    tracing::info!(
        job = job.id,
        held_token = job.token,
        "late result accepted: the claim had lost its lease, but the job had not finished; the claim holding it now is fenced"
    );
    pjp_core::runner::accepted_late(job.job_id());
}

/// A completion made parents claimable: wake this worker's idle pickers of
/// their queues at once, and tell the other workers (one notification per
/// queue; only when a round of a tree ends, never per job).
pub(crate) async fn wake_parents(shared: &WorkerShared, queues: Vec<String>) {
    let queues: std::collections::BTreeSet<String> = queues.into_iter().collect();
    for queue in &queues {
        shared.wakeups.wake(queue);
        let notified = sqlx::query(NOTIFY)
            .bind(&shared.queue.inner.channel)
            .bind(queue)
            .execute(&shared.queue.inner.pool)
            .await;
        if let Err(error) = notified {
            // Other workers still find the parent by polling.
            tracing::debug!(%error, queue, "could not notify that a parent is claimable");
        }
    }
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
    shared.counters.handed_back(released.iter().copied());
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
/// reply was lost and the runner retried), so it is done; so is a
/// `succeeded` row whose late success was this claim's (`late_token`). Any
/// other row was superseded: counted, logged with both tokens, and reported
/// as fenced.
async fn explain_fenced(
    shared: &WorkerShared,
    fenced: &[PgJob],
) -> HashMap<i64, Result<Done, QueueError>> {
    if fenced.is_empty() {
        return HashMap::new();
    }
    let ids: Vec<i64> = fenced.iter().map(|j| j.id).collect();
    type Current = (i64, String, i32, Option<i64>);
    let current: HashMap<i64, Current> = sqlx::query_as::<_, (i64, i64, String, i32, Option<i64>)>(
        &shared.queue.inner.sql.fenced_claims,
    )
    .bind(&ids)
    .fetch_all(&shared.queue.inner.pool)
    .await
    .map(|rows| {
        rows.into_iter()
            .map(|(i, t, s, l, late)| (i, (t, s, l, late)))
            .collect()
    })
    .unwrap_or_default();
    fenced
        .iter()
        .map(|job| {
            let (token, status, lost, late_token) =
                current
                    .get(&job.id)
                    .cloned()
                    .unwrap_or((-1, "unknown".to_owned(), -1, None));
            if token == job.token
                && status != "running"
                && status != "cancelled"
                && lost == job.lost_leases
            {
                return (
                    job.id,
                    Ok(Done {
                        status,
                        repeat: true,
                        late: false,
                    }),
                );
            }
            if late_token == Some(job.token) && status == "succeeded" {
                // This claim's late success committed; its reply was lost.
                pjp_core::runner::accepted_late(job.job_id());
                return (
                    job.id,
                    Ok(Done {
                        status,
                        repeat: true,
                        late: true,
                    }),
                );
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
