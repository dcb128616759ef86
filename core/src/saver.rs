//! The [`JobSaver`] trait: where results go.

use std::future::Future;

use crate::{JobMeta, JobResult};

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

    /// Whether a save error is worth retrying. A non-retryable error gives up on
    /// the job at once. Defaults to retryable.
    fn is_retryable(&self, error: &Self::Error) -> bool {
        let _ = error;
        true
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

    fn is_retryable(&self, error: &Self::Error) -> bool {
        (**self).is_retryable(error)
    }
}
