//! [`BoxPicker`]: any picker of `I` inputs, behind one type.

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::{AnyMeta, BoxError, ForeignMeta};
use crate::{ErrorClass, Job, JobMeta, JobPicker, PickManyResult, PickResult, ReleaseReason};

/// Any [`JobPicker`] whose jobs carry an `I`, with its metadata erased to
/// [`AnyMeta`] and its errors to [`BoxError`]. See the [module](super) docs.
///
/// Every method forwards to the concrete picker, `pick_many`,
/// `release_many`, `on_abandon` and `pick_is_cancel_safe` included, so a
/// batched database picker stays batched. Clones share the picker.
pub struct BoxPicker<I> {
    inner: Arc<dyn ErasedPicker<I>>,
}

impl<I> Clone for BoxPicker<I> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<I> fmt::Debug for BoxPicker<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxPicker")
            .field("picker", &self.inner.type_name())
            .finish()
    }
}

impl<I: Send + 'static> BoxPicker<I> {
    /// Boxes `picker`.
    pub fn new<P: JobPicker<Input = I>>(picker: P) -> Self {
        Self {
            inner: Arc::new(Erased(picker)),
        }
    }
}

/// The dyn-compatible form of [`JobPicker`]: futures boxed.
trait ErasedPicker<I>: Send + Sync {
    fn pick(&self) -> BoxFuture<'_, PickResult<I, AnyMeta, BoxError>>;
    fn pick_many(&self, max: usize) -> BoxFuture<'_, PickManyResult<I, AnyMeta, BoxError>>;
    fn release(&self, meta: AnyMeta, reason: ReleaseReason) -> BoxFuture<'_, Result<(), BoxError>>;
    fn release_many(
        &self,
        metas: Vec<AnyMeta>,
        reason: ReleaseReason,
    ) -> BoxFuture<'_, Vec<Result<(), BoxError>>>;
    fn on_abandon(&self) -> BoxFuture<'_, ()>;
    fn pick_is_cancel_safe(&self) -> bool;
    fn type_name(&self) -> &'static str;
}

struct Erased<P>(P);

impl<P: JobPicker> Erased<P> {
    fn error(&self, error: P::Error) -> BoxError {
        BoxError::new(self.0.classify(&error), error)
    }

    fn erase(job: Job<P::Input, P::Metadata>) -> Job<P::Input, AnyMeta> {
        Job::new(job.input, AnyMeta::new(job.meta))
    }

    /// The concrete metadata back, or why not.
    fn concrete(meta: &AnyMeta) -> Result<P::Metadata, BoxError> {
        meta.downcast_ref::<P::Metadata>().cloned().ok_or_else(|| {
            ForeignMeta {
                job: meta.job_id(),
                expected: std::any::type_name::<P::Metadata>(),
                found: meta.type_name(),
                side: "picker",
            }
            .boxed()
        })
    }
}

impl<P: JobPicker> ErasedPicker<P::Input> for Erased<P> {
    fn pick(&self) -> BoxFuture<'_, PickResult<P::Input, AnyMeta, BoxError>> {
        Box::pin(async move {
            match self.0.pick().await {
                Ok(picked) => Ok(picked.map(Self::erase)),
                Err(error) => Err(self.error(error)),
            }
        })
    }

    fn pick_many(&self, max: usize) -> BoxFuture<'_, PickManyResult<P::Input, AnyMeta, BoxError>> {
        Box::pin(async move {
            match self.0.pick_many(max).await {
                Ok(picked) => Ok(picked.map(|jobs| jobs.into_iter().map(Self::erase).collect())),
                Err(error) => Err(self.error(error)),
            }
        })
    }

    fn release(&self, meta: AnyMeta, reason: ReleaseReason) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move {
            let meta = Self::concrete(&meta)?;
            self.0
                .release(meta, reason)
                .await
                .map_err(|e| self.error(e))
        })
    }

    fn release_many(
        &self,
        metas: Vec<AnyMeta>,
        reason: ReleaseReason,
    ) -> BoxFuture<'_, Vec<Result<(), BoxError>>> {
        Box::pin(async move {
            // Foreign metadata fails on its own; the rest go in one call.
            let concrete: Vec<Result<P::Metadata, BoxError>> =
                metas.iter().map(Self::concrete).collect();
            let batch: Vec<P::Metadata> = concrete
                .iter()
                .filter_map(|m| m.as_ref().ok().cloned())
                .collect();
            let sent = batch.len();
            let mut outcomes = self.0.release_many(batch, reason).await.into_iter();
            concrete
                .into_iter()
                .map(|m| match m {
                    Ok(meta) => match outcomes.next() {
                        Some(outcome) => outcome.map_err(|e| self.error(e)),
                        // A short answer: the runner retries this one alone.
                        None => Err(BoxError::new(
                            ErrorClass::Transient,
                            format!(
                                "release_many answered fewer than the {sent} jobs sent (none for job {})",
                                meta.job_id()
                            ),
                        )),
                    },
                    Err(foreign) => Err(foreign),
                })
                .collect()
        })
    }

    fn on_abandon(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.0.on_abandon())
    }

    fn pick_is_cancel_safe(&self) -> bool {
        self.0.pick_is_cancel_safe()
    }

    fn type_name(&self) -> &'static str {
        std::any::type_name::<P>()
    }
}

impl<I: Send + 'static> JobPicker for BoxPicker<I> {
    type Input = I;
    type Metadata = AnyMeta;
    type Error = BoxError;

    async fn pick(&self) -> PickResult<I, AnyMeta, BoxError> {
        self.inner.pick().await
    }

    async fn pick_many(&self, max: usize) -> PickManyResult<I, AnyMeta, BoxError> {
        self.inner.pick_many(max).await
    }

    async fn release(&self, meta: AnyMeta, reason: ReleaseReason) -> Result<(), BoxError> {
        self.inner.release(meta, reason).await
    }

    async fn release_many(
        &self,
        metas: Vec<AnyMeta>,
        reason: ReleaseReason,
    ) -> Vec<Result<(), BoxError>> {
        self.inner.release_many(metas, reason).await
    }

    async fn on_abandon(&self) {
        self.inner.on_abandon().await;
    }

    fn classify(&self, error: &BoxError) -> ErrorClass {
        error.class()
    }

    fn pick_is_cancel_safe(&self) -> bool {
        self.inner.pick_is_cancel_safe()
    }
}
