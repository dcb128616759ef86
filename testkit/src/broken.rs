//! Deliberately broken components, to show that the [`Ledger`](crate::Ledger)
//! and the [conformance suite](crate::conformance) catch real bugs.
//!
//! Each wraps a correct component and breaks one promise:
//!
//! * [`SwallowReleases`]: a picker whose `release` reports success and does
//!   nothing — what a runner that abandons without releasing looks like from
//!   the source: the released jobs stay claimed forever;
//! * [`DuplicatingPicker`]: hands every `n`-th job out twice;
//! * [`DroppingSaver`]: reports every `n`-th save as stored, and stores nothing.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use pjp_core::{
    ErrorClass, Job, JobPicker, JobResult, JobSaver, PickManyResult, PickResult, Picked,
    ReleaseReason,
};

fn every(n: u64, counter: &AtomicU64) -> bool {
    let count = counter.fetch_add(1, Ordering::Relaxed) + 1;
    n > 0 && count.is_multiple_of(n)
}

/// A picker whose `release` silently does nothing.
#[derive(Debug, Clone)]
pub struct SwallowReleases<P>(pub P);

impl<P: JobPicker> JobPicker for SwallowReleases<P> {
    type Input = P::Input;
    type Metadata = P::Metadata;
    type Error = P::Error;

    fn pick(&self) -> impl Future<Output = PickResult<P::Input, P::Metadata, P::Error>> + Send {
        self.0.pick()
    }

    fn pick_many(
        &self,
        max: usize,
    ) -> impl Future<Output = PickManyResult<P::Input, P::Metadata, P::Error>> + Send {
        self.0.pick_many(max)
    }

    async fn release(&self, _meta: P::Metadata, _reason: ReleaseReason) -> Result<(), P::Error> {
        Ok(())
    }

    fn classify(&self, error: &P::Error) -> ErrorClass {
        self.0.classify(error)
    }
}

/// A picker that hands every `n`-th job out twice (the copy comes with the
/// next pick).
#[derive(Debug)]
pub struct DuplicatingPicker<P: JobPicker> {
    inner: P,
    every: u64,
    count: AtomicU64,
    copy: Mutex<Option<Job<P::Input, P::Metadata>>>,
}

impl<P: JobPicker> DuplicatingPicker<P> {
    /// Duplicates every `n`-th job `inner` hands out.
    pub fn new(inner: P, every: u64) -> Self {
        Self {
            inner,
            every,
            count: AtomicU64::new(0),
            copy: Mutex::new(None),
        }
    }
}

impl<P> JobPicker for DuplicatingPicker<P>
where
    P: JobPicker,
    P::Input: Clone + Send + Sync,
{
    type Input = P::Input;
    type Metadata = P::Metadata;
    type Error = P::Error;

    async fn pick(&self) -> PickResult<P::Input, P::Metadata, P::Error> {
        let copy = self
            .copy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(job) = copy {
            return Ok(Picked::Some(job));
        }
        let picked = self.inner.pick().await?;
        if let Picked::Some(job) = &picked
            && every(self.every, &self.count)
        {
            *self
                .copy
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(job.clone());
        }
        Ok(picked)
    }

    async fn release(&self, meta: P::Metadata, reason: ReleaseReason) -> Result<(), P::Error> {
        self.inner.release(meta, reason).await
    }

    fn classify(&self, error: &P::Error) -> ErrorClass {
        self.inner.classify(error)
    }
}

/// A saver that drops every `n`-th result while reporting success.
#[derive(Debug)]
pub struct DroppingSaver<S> {
    inner: S,
    every: u64,
    count: AtomicU64,
}

impl<S> DroppingSaver<S> {
    /// Drops every `n`-th result saved through `inner`.
    pub fn new(inner: S, every: u64) -> Self {
        Self {
            inner,
            every,
            count: AtomicU64::new(0),
        }
    }
}

impl<S: JobSaver> JobSaver for DroppingSaver<S> {
    type Output = S::Output;
    type Failure = S::Failure;
    type Metadata = S::Metadata;
    type Error = S::Error;

    async fn save(
        &self,
        result: &JobResult<S::Output, S::Failure>,
        meta: &S::Metadata,
    ) -> Result<(), S::Error> {
        if every(self.every, &self.count) {
            return Ok(());
        }
        self.inner.save(result, meta).await
    }

    fn classify(&self, error: &S::Error) -> ErrorClass {
        self.inner.classify(error)
    }
}
