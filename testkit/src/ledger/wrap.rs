//! [`Recorded`]: the wrapper that writes a picker's, saver's or executor's
//! calls into a [`Ledger`].

use std::time::Duration;

use pjp_core::{
    ErrorClass, Executor, Job, JobContext, JobPicker, JobResult, JobSaver, PickManyResult,
    PickResult, Picked, ReleaseReason, SaveBatch, SaveResults,
};

use super::Ledger;

/// A picker, saver or executor whose calls are recorded in a [`Ledger`].
///
/// Build it with `with_ledger` from [`PickerExt`](crate::PickerExt),
/// [`SaverExt`](crate::SaverExt) or [`ExecutorExt`](crate::ExecutorExt).
/// Picks and saves are recorded when the wrapped call succeeds; a release is
/// recorded before it is passed on (and undone if it fails); an execution
/// when it starts.
#[derive(Debug, Clone)]
pub struct Recorded<T> {
    inner: T,
    ledger: Ledger,
}

impl<T> Recorded<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, ledger: &Ledger) -> Self {
        Self {
            inner,
            ledger: ledger.clone(),
        }
    }

    /// The wrapped component.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }
}

impl<P: JobPicker> JobPicker for Recorded<P> {
    type Input = P::Input;
    type Metadata = P::Metadata;
    type Error = P::Error;

    /// # Cancellation safety
    ///
    /// As the wrapped picker's: a pick is recorded in the same poll in which
    /// the wrapped pick completes.
    async fn pick(&self) -> PickResult<P::Input, P::Metadata, P::Error> {
        let picked = self.inner.pick().await;
        if let Ok(Picked::Some(job)) = &picked {
            self.ledger.record_pick(&job.meta);
        }
        picked
    }

    async fn pick_many(&self, max: usize) -> PickManyResult<P::Input, P::Metadata, P::Error> {
        let picked = self.inner.pick_many(max).await;
        if let Ok(Picked::Some(jobs)) = &picked {
            for Job { meta, .. } in jobs {
                self.ledger.record_pick(meta);
            }
        }
        picked
    }

    async fn release(&self, meta: P::Metadata, reason: ReleaseReason) -> Result<(), P::Error> {
        self.ledger.record_release(&meta);
        let failed = meta.clone();
        let released = self.inner.release(meta, reason).await;
        if released.is_err() {
            self.ledger.record_release_failed(&failed);
        }
        released
    }

    async fn release_many(
        &self,
        metas: Vec<P::Metadata>,
        reason: ReleaseReason,
    ) -> Vec<Result<(), P::Error>> {
        for meta in &metas {
            self.ledger.record_release(meta);
        }
        let failed = metas.clone();
        let outcomes = self.inner.release_many(metas, reason).await;
        for (meta, outcome) in failed.iter().zip(&outcomes) {
            if outcome.is_err() {
                self.ledger.record_release_failed(meta);
            }
        }
        outcomes
    }

    async fn on_abandon(&self) {
        self.inner.on_abandon().await;
    }

    fn classify(&self, error: &P::Error) -> ErrorClass {
        self.inner.classify(error)
    }

    fn pick_is_cancel_safe(&self) -> bool {
        self.inner.pick_is_cancel_safe()
    }
}

impl<S: JobSaver> JobSaver for Recorded<S> {
    type Output = S::Output;
    type Failure = S::Failure;
    type Metadata = S::Metadata;
    type Error = S::Error;

    async fn save(
        &self,
        result: &JobResult<S::Output, S::Failure>,
        meta: &S::Metadata,
    ) -> Result<(), S::Error> {
        let saved = self.inner.save(result, meta).await;
        if saved.is_ok() {
            self.ledger.record_save(meta, result.is_ok());
        }
        saved
    }

    async fn save_many(
        &self,
        batch: &SaveBatch<'_, S::Output, S::Failure, S::Metadata>,
    ) -> SaveResults<S::Error> {
        let outcomes = self.inner.save_many(batch).await;
        for ((result, meta), outcome) in batch.iter().zip(&outcomes) {
            if outcome.is_ok() {
                self.ledger.record_save(*meta, result.is_ok());
            }
        }
        outcomes
    }

    fn classify(&self, error: &S::Error) -> ErrorClass {
        self.inner.classify(error)
    }
}

impl<E: Executor> Executor for Recorded<E> {
    type Input = E::Input;
    type Output = E::Output;
    type Error = E::Error;

    fn execute(&self, input: E::Input, job: &JobContext) -> Result<E::Output, E::Error> {
        self.ledger.record_execution(job);
        self.inner.execute(input, job)
    }

    fn cost_hint(&self, input: &E::Input) -> Duration {
        self.inner.cost_hint(input)
    }
}
