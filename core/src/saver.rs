//! The [`JobSaver`] trait: where results go.

use std::future::Future;

use crate::{ErrorClass, JobMeta, JobResult};

/// What [`JobSaver::save_many`] resolves to: one outcome per job, in batch order.
pub type SaveResults<E> = Vec<Result<(), E>>;

/// What [`JobSaver::save_many`] receives: each job's result with its metadata.
pub type SaveBatch<'a, O, F, M> = [(&'a JobResult<O, F>, &'a M)];

/// Stores each job's result: an output, or the reason it failed.
///
/// The saver receives references, so that the runner can retry a failed save
/// with the same result. A saver that forwards outputs by value (a stage
/// channel) clones them; use an `Arc` for large outputs.
///
/// ```
/// use std::sync::Mutex;
/// use pjp_core::{JobId, JobResult, JobSaver};
///
/// #[derive(Default)]
/// struct Collect(Mutex<Vec<(JobId, Result<u64, String>)>>);
///
/// impl JobSaver for Collect {
///     type Output = u64;
///     type Failure = std::convert::Infallible;
///     type Metadata = JobId;
///     type Error = std::io::Error;
///
///     async fn save(
///         &self,
///         result: &JobResult<u64, std::convert::Infallible>,
///         meta: &JobId,
///     ) -> Result<(), Self::Error> {
///         let row = result.as_ref().map(|v| *v).map_err(|e| e.to_string());
///         self.0.lock().unwrap().push((*meta, row));
///         Ok(())
///     }
/// }
/// ```
pub trait JobSaver: Send + Sync + 'static {
    /// The executor's output.
    type Output: Send + Sync + 'static;
    /// The executor's error type (inside [`ExecError::Failed`](crate::ExecError::Failed)).
    type Failure: Send + Sync + 'static;
    /// The job's metadata.
    type Metadata: JobMeta;
    /// Why a save failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Stores one job's result.
    ///
    /// The runner retries a failed save with back-off, up to its retry policy, so
    /// a save should be idempotent (an upsert keyed by the job id).
    fn save(
        &self,
        result: &JobResult<Self::Output, Self::Failure>,
        meta: &Self::Metadata,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Stores a batch of results, in one round trip where the backend allows
    /// (one statement completing every job). Resolves to one outcome per job,
    /// in the order of `batch`; the runner retries only the jobs that failed
    /// (by their [class](Self::classify)), so per-job semantics stay exact.
    /// A vector of the wrong length counts as a transient failure of the jobs
    /// without an outcome.
    ///
    /// The default saves one job after another with [`save`](Self::save). The
    /// runner calls it when [`save_batch`](crate::RunnerBuilder::save_batch)
    /// is above 1.
    fn save_many(
        &self,
        batch: &SaveBatch<'_, Self::Output, Self::Failure, Self::Metadata>,
    ) -> impl Future<Output = SaveResults<Self::Error>> + Send {
        async move {
            let mut outcomes = Vec::with_capacity(batch.len());
            for (result, meta) in batch {
                outcomes.push(self.save(result, meta).await);
            }
            outcomes
        }
    }

    /// What a save error means: retry it ([`ErrorClass::Transient`], up to the
    /// runner's [`RetryPolicy`](crate::RetryPolicy)), give up on this job
    /// ([`ErrorClass::Permanent`]), drop a result nobody will accept
    /// ([`ErrorClass::LostClaim`]), or stop because the next stage is gone
    /// ([`ErrorClass::DownstreamGone`]). The one way a saver says what its
    /// errors mean; a wrapper forwards it. Defaults to transient.
    fn classify(&self, error: &Self::Error) -> ErrorClass {
        let _ = error;
        ErrorClass::Transient
    }
}

impl<S: JobSaver + ?Sized> JobSaver for std::sync::Arc<S> {
    type Output = S::Output;
    type Failure = S::Failure;
    type Metadata = S::Metadata;
    type Error = S::Error;

    fn save(
        &self,
        result: &JobResult<Self::Output, Self::Failure>,
        meta: &Self::Metadata,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        (**self).save(result, meta)
    }

    fn save_many(
        &self,
        batch: &SaveBatch<'_, Self::Output, Self::Failure, Self::Metadata>,
    ) -> impl Future<Output = SaveResults<Self::Error>> + Send {
        (**self).save_many(batch)
    }

    fn classify(&self, error: &Self::Error) -> ErrorClass {
        (**self).classify(error)
    }
}
