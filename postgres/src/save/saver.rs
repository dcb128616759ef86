//! [`PgSaver`]: completes jobs, fenced, a batch per statement.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use pjp_core::{ErrorClass, ExecError, JobResult, JobSaver, SaveBatch, SaveResults};

use crate::error::QueueError;
use crate::job::PgJob;
use crate::sql::Completion;
use crate::state::WorkerShared;
use crate::store::Stored;
use crate::write::{self, Finish};

type Classifier<F> = Arc<dyn Fn(&ExecError<F>) -> bool + Send + Sync>;

/// Completes jobs claimed by the same [`PgWorker`](crate::PgWorker).
///
/// With the runner's [`save_batch`](pjp_core::RunnerBuilder::save_batch) above
/// 1, a batch of results is one statement. Each write commits only if the
/// job's fencing token still matches this worker's claim; a stale one is
/// rejected as [`QueueError::Fenced`] (the runner counts it in its report's
/// `fenced` and goes on), logged with both tokens. The exception is a late
/// success ([`PgQueueBuilder::late_results`](crate::PgQueueBuilder::late_results),
/// on by default): an output whose claim lost its lease completes the job,
/// once, if the job has not finished yet; the runner counts it in
/// `late_accepted` too.
///
/// What a result does to its job:
///
/// | result | job |
/// |---|---|
/// | `Ok(output)` | `succeeded`, the output stored (inline, or in the object store above its limit, written before the row commits) |
/// | `Err` (failed, panicked, timed out) | one attempt used; `queued` again after a back-off, or `dead` with the error once `max_attempts` are used |
/// | `Err` that [`permanent_if`](Self::permanent_if) accepts | `failed` with the error, no retry |
/// | `Err` that [`infrastructure_if`](Self::infrastructure_if) accepts | `queued` again after a back-off, no attempt used (counted in `infra_retries`) |
/// | `Err(Cancelled)` | `queued` again at once, no attempt used (the worker lost the job, not the job its run) |
pub struct PgSaver<O, F> {
    shared: Arc<WorkerShared>,
    permanent_if: Option<Classifier<F>>,
    infrastructure_if: Option<Classifier<F>>,
    _output: PhantomData<fn(&O)>,
}

impl<O, F> Clone for PgSaver<O, F> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            permanent_if: self.permanent_if.clone(),
            infrastructure_if: self.infrastructure_if.clone(),
            _output: PhantomData,
        }
    }
}

impl<O, F> fmt::Debug for PgSaver<O, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSaver")
            .field("worker", &self.shared.config.id)
            .finish_non_exhaustive()
    }
}

impl<O, F> PgSaver<O, F> {
    pub(crate) fn new(shared: Arc<WorkerShared>) -> Self {
        Self {
            shared,
            permanent_if: None,
            infrastructure_if: None,
            _output: PhantomData,
        }
    }

    /// Failures that retrying cannot fix (an invalid input, say): such a job
    /// ends `failed` at once instead of using its attempts.
    ///
    /// Start from [`PgWorker::saver_for`](crate::PgWorker::saver_for) (or
    /// name the types, `worker.saver::<Vec<u8>, String>()`) so that the
    /// closure's argument has a known type:
    ///
    /// ```no_run
    /// # fn demo(worker: pjp_postgres::PgWorker) {
    /// use pjp_core::{ExecError, executor_fn};
    ///
    /// let prove = executor_fn(|input: bytes::Bytes| Ok::<_, String>(input.to_vec()));
    /// let saver = worker
    ///     .saver_for(&prove)
    ///     .permanent_if(|e| matches!(e, ExecError::Failed(msg) if msg.starts_with("invalid")));
    /// # let _ = pjp_core::JobRunner::builder(worker.picker("proofs").unwrap(), prove, saver);
    /// # }
    /// ```
    pub fn permanent_if(
        mut self,
        permanent: impl Fn(&ExecError<F>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.permanent_if = Some(Arc::new(permanent));
        self
    }

    /// Failures of the infrastructure around the execution, not of the job:
    /// an executor that reads from the queue or a store itself (an
    /// aggregation reading its children) and lost its connection. Such a job
    /// is queued again after a back-off (`retry_backoff` on its count of
    /// infrastructure retries) without using an attempt: a database restart
    /// or a killed backend never uses up a job's attempts.
    ///
    /// ```no_run
    /// # fn demo(worker: pjp_postgres::PgWorker) {
    /// use pjp_core::{ErrorClass, ExecError};
    /// use pjp_postgres::QueueError;
    ///
    /// let saver = worker
    ///     .saver::<Vec<u8>, QueueError>()
    ///     .infrastructure_if(|e| matches!(e, ExecError::Failed(q) if q.class() == ErrorClass::Transient));
    /// # }
    /// ```
    pub fn infrastructure_if(
        mut self,
        infrastructure: impl Fn(&ExecError<F>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.infrastructure_if = Some(Arc::new(infrastructure));
        self
    }
}

impl<O, F> PgSaver<O, F>
where
    O: AsRef<[u8]>,
    F: fmt::Display,
{
    async fn finish(&self, result: &JobResult<O, F>, job: PgJob) -> Result<Finish, QueueError> {
        self.finish_parts(result.as_ref(), job).await
    }

    /// The completion of `job` for its result (an output's blob is written
    /// first, under a key with this claim's token).
    pub(crate) async fn finish_parts(
        &self,
        result: Result<&O, &ExecError<F>>,
        job: PgJob,
    ) -> Result<Finish, QueueError> {
        Ok(match result {
            Ok(output) => {
                let store = &self.shared.queue.inner.store;
                let bytes = output.as_ref();
                let stored = if store.keeps_inline(bytes.len()) {
                    store.inline(bytes)
                } else {
                    // A stale worker's blob has its own token in the key: it
                    // can never overwrite the current holder's.
                    let key = crate::store::result_key(self.shared.queue.blob_root().await?, &job);
                    store.put(key, bytes).await?
                };
                Finish {
                    job,
                    kind: Completion::Succeeded,
                    result: stored,
                    error: None,
                }
            }
            Err(ExecError::Cancelled) => Finish {
                job,
                kind: Completion::Release,
                result: Stored::default(),
                error: Some("cancelled on its worker".to_owned()),
            },
            Err(error) => {
                let permanent = self.permanent_if.as_ref().is_some_and(|p| p(error));
                let infrastructure = self.infrastructure_if.as_ref().is_some_and(|p| p(error));
                Finish {
                    job,
                    kind: if infrastructure {
                        Completion::Infrastructure
                    } else if permanent {
                        Completion::Failed
                    } else {
                        Completion::Retry
                    },
                    result: Stored::default(),
                    error: Some(error.to_string()),
                }
            }
        })
    }
}

impl<O, F> JobSaver for PgSaver<O, F>
where
    O: AsRef<[u8]> + Send + Sync + 'static,
    F: fmt::Display + Send + Sync + 'static,
{
    type Output = O;
    type Failure = F;
    type Metadata = PgJob;
    type Error = QueueError;

    /// [`save_many`](JobSaver::save_many) with a batch of one.
    ///
    /// # Cancellation safety
    ///
    /// As for `save_many`.
    async fn save(&self, result: &JobResult<O, F>, meta: &PgJob) -> Result<(), QueueError> {
        let mut outcomes = self.save_many(&[(result, meta)]).await;
        outcomes.pop().unwrap_or(Ok(()))
    }

    /// Writes large results to the store, then completes every job of the
    /// batch in one fenced statement.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: dropped before the statement commits, nothing is
    /// completed (uploaded results are orphans for
    /// [`PgQueue::collect_orphans`](crate::PgQueue::collect_orphans)); dropped
    /// after, the jobs are completed, and a repeat of the same save by the
    /// same claim is recognised and succeeds without writing again.
    async fn save_many(&self, batch: &SaveBatch<'_, O, F, PgJob>) -> SaveResults<QueueError> {
        // Blobs first (concurrently), then one statement for every job whose
        // blob is written.
        let prepared = futures_util::future::join_all(
            batch
                .iter()
                .map(|(result, meta)| self.finish(result, **meta)),
        )
        .await;
        let ready: Vec<Finish> = prepared
            .iter()
            .filter_map(|p| p.as_ref().ok())
            .map(|f| Finish {
                job: f.job,
                kind: f.kind,
                result: f.result.clone(),
                error: f.error.clone(),
            })
            .collect();
        let mut written = write::complete(&self.shared, &ready).await.into_iter();
        prepared
            .into_iter()
            .map(|p| match p {
                Ok(_) => written.next().map_or(Ok(()), |done| done.map(drop)),
                Err(error) => Err(error),
            })
            .collect()
    }

    fn classify(&self, error: &QueueError) -> ErrorClass {
        error.class()
    }
}
