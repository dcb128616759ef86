//! [`StageSaver`]: runner A's saver, feeding the channel, and its error.

use crate::{ErrorClass, Job, JobMeta, JobResult, JobSaver};

use super::StageSender;
use super::error::StageError;

/// Runner A's saver: successful outputs go to the next stage, failures to `F`.
pub struct StageSaver<T, M, F> {
    pub(super) sender: StageSender<T, M>,
    pub(super) failures: F,
}

impl<T, M> StageSender<T, M> {
    /// Makes runner A's saver: outputs go down the channel, failures to `failures`.
    pub fn on_failure<F>(self, failures: F) -> StageSaver<T, M, F> {
        StageSaver {
            sender: self,
            failures,
        }
    }
}

impl<T, M, F> StageSaver<T, M, F> {
    /// Closes the channel (as dropping every sender does).
    pub fn close(&self) {
        self.sender.close();
    }
}

/// Why a [`StageSaver`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StageSaveError<E> {
    /// Sending the output down the channel failed.
    #[error(transparent)]
    Stage(#[from] StageError),
    /// The failure saver failed.
    #[error("saving a failed job: {0}")]
    Failure(#[source] E),
}

impl<T, M, F> JobSaver for StageSaver<T, M, F>
where
    T: Clone + Send + Sync + 'static,
    M: JobMeta,
    F: JobSaver<Output = T, Metadata = M>,
{
    type Output = T;
    type Failure = F::Failure;
    type Metadata = M;
    type Error = StageSaveError<F::Error>;

    async fn save(&self, result: &JobResult<T, F::Failure>, meta: &M) -> Result<(), Self::Error> {
        match result {
            Ok(output) => self
                .sender
                .send(Job::new(output.clone(), meta.clone()))
                .await
                .map_err(|refused| StageSaveError::Stage(refused.error)),
            Err(_) => self
                .failures
                .save(result, meta)
                .await
                .map_err(StageSaveError::Failure),
        }
    }

    fn classify(&self, error: &Self::Error) -> ErrorClass {
        match error {
            StageSaveError::Stage(StageError::DownstreamGone) => ErrorClass::DownstreamGone,
            StageSaveError::Stage(_) => ErrorClass::Permanent,
            StageSaveError::Failure(e) => self.failures.classify(e),
        }
    }
}
