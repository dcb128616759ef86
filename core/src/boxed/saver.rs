//! [`BoxSaver`]: any saver of `O` outputs and `F` failures, behind one type.

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::{AnyMeta, BoxError, ForeignMeta};
use crate::{ErrorClass, JobMeta, JobResult, JobSaver, SaveBatch, SaveResults};

/// Any [`JobSaver`] of `O` outputs and `F` failures, taking [`AnyMeta`] and
/// failing with [`BoxError`]. See the [module](super) docs.
///
/// `save_many` forwards to the concrete saver's, so a batched database saver
/// stays one statement per batch. Clones share the saver.
pub struct BoxSaver<O, F> {
    inner: Arc<dyn ErasedSaver<O, F>>,
}

impl<O, F> Clone for BoxSaver<O, F> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<O, F> fmt::Debug for BoxSaver<O, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxSaver")
            .field("saver", &self.inner.type_name())
            .finish()
    }
}

impl<O, F> BoxSaver<O, F>
where
    O: Send + Sync + 'static,
    F: Send + Sync + 'static,
{
    /// Boxes `saver`.
    pub fn new<S: JobSaver<Output = O, Failure = F>>(saver: S) -> Self {
        Self {
            inner: Arc::new(Erased(saver)),
        }
    }
}

/// The dyn-compatible form of [`JobSaver`]: futures boxed.
trait ErasedSaver<O, F>: Send + Sync {
    fn save<'a>(
        &'a self,
        result: &'a JobResult<O, F>,
        meta: &'a AnyMeta,
    ) -> BoxFuture<'a, Result<(), BoxError>>;
    fn save_many<'a, 'b: 'a>(
        &'a self,
        batch: &'a [(&'b JobResult<O, F>, &'b AnyMeta)],
    ) -> BoxFuture<'a, SaveResults<BoxError>>;
    fn type_name(&self) -> &'static str;
}

struct Erased<S>(S);

impl<S: JobSaver> Erased<S> {
    fn error(&self, error: S::Error) -> BoxError {
        BoxError::new(self.0.classify(&error), error)
    }

    fn concrete(meta: &AnyMeta) -> Result<&S::Metadata, BoxError> {
        meta.downcast_ref::<S::Metadata>().ok_or_else(|| {
            ForeignMeta {
                job: meta.job_id(),
                expected: std::any::type_name::<S::Metadata>(),
                found: meta.type_name(),
                side: "saver",
            }
            .boxed()
        })
    }
}

impl<S: JobSaver> ErasedSaver<S::Output, S::Failure> for Erased<S> {
    fn save<'a>(
        &'a self,
        result: &'a JobResult<S::Output, S::Failure>,
        meta: &'a AnyMeta,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let meta = Self::concrete(meta)?;
            self.0.save(result, meta).await.map_err(|e| self.error(e))
        })
    }

    fn save_many<'a, 'b: 'a>(
        &'a self,
        batch: &'a [(&'b JobResult<S::Output, S::Failure>, &'b AnyMeta)],
    ) -> BoxFuture<'a, SaveResults<BoxError>> {
        Box::pin(async move {
            // Foreign metadata fails on its own; the rest go in one call.
            let concrete: Vec<Result<&S::Metadata, BoxError>> =
                batch.iter().map(|(_, meta)| Self::concrete(meta)).collect();
            let sendable: Vec<_> = batch
                .iter()
                .zip(&concrete)
                .filter_map(|((result, _), meta)| Some((*result, *meta.as_ref().ok()?)))
                .collect();
            let sent = sendable.len();
            let mut outcomes = self.0.save_many(&sendable).await.into_iter();
            concrete
                .into_iter()
                .map(|meta| match meta {
                    Ok(meta) => match outcomes.next() {
                        Some(outcome) => outcome.map_err(|e| self.error(e)),
                        // A short answer: the runner retries this job.
                        None => Err(BoxError::new(
                            ErrorClass::Transient,
                            format!(
                                "save_many answered fewer than the {sent} jobs sent (none for job {})",
                                meta.job_id()
                            ),
                        )),
                    },
                    Err(foreign) => Err(foreign),
                })
                .collect()
        })
    }

    fn type_name(&self) -> &'static str {
        std::any::type_name::<S>()
    }
}

impl<O, F> JobSaver for BoxSaver<O, F>
where
    O: Send + Sync + 'static,
    F: Send + Sync + 'static,
{
    type Output = O;
    type Failure = F;
    type Metadata = AnyMeta;
    type Error = BoxError;

    async fn save(&self, result: &JobResult<O, F>, meta: &AnyMeta) -> Result<(), BoxError> {
        self.inner.save(result, meta).await
    }

    async fn save_many(&self, batch: &SaveBatch<'_, O, F, AnyMeta>) -> SaveResults<BoxError> {
        self.inner.save_many(batch).await
    }

    fn classify(&self, error: &BoxError) -> ErrorClass {
        error.class()
    }
}
