//! A picker wrapper that times each claim that returned jobs (the paced and
//! storm benches' claim latency as a picker sees it).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pjp_core::{ErrorClass, JobPicker, PickManyResult, PickResult, Picked, ReleaseReason};
use pjp_postgres::{PgJob, PgPicker, QueueError};

/// A picker that times each claim that returned jobs.
pub(crate) struct Timed {
    inner: PgPicker,
    claims: Arc<Mutex<Vec<Duration>>>,
}

impl Timed {
    /// Times `inner`'s claims into `claims`.
    pub(crate) fn new(inner: PgPicker, claims: Arc<Mutex<Vec<Duration>>>) -> Self {
        Self { inner, claims }
    }

    fn record(&self, started: Instant) {
        self.claims
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(started.elapsed());
    }
}

impl JobPicker for Timed {
    type Input = Bytes;
    type Metadata = PgJob;
    type Error = QueueError;

    async fn pick(&self) -> PickResult<Bytes, PgJob, QueueError> {
        let started = Instant::now();
        let picked = self.inner.pick().await;
        if matches!(picked, Ok(Picked::Some(_))) {
            self.record(started);
        }
        picked
    }

    async fn pick_many(&self, max: usize) -> PickManyResult<Bytes, PgJob, QueueError> {
        let started = Instant::now();
        let picked = self.inner.pick_many(max).await;
        if matches!(&picked, Ok(Picked::Some(jobs)) if !jobs.is_empty()) {
            self.record(started);
        }
        picked
    }

    async fn release(&self, meta: PgJob, reason: ReleaseReason) -> Result<(), QueueError> {
        self.inner.release(meta, reason).await
    }

    async fn release_many(
        &self,
        metas: Vec<PgJob>,
        reason: ReleaseReason,
    ) -> Vec<Result<(), QueueError>> {
        self.inner.release_many(metas, reason).await
    }

    fn classify(&self, error: &QueueError) -> ErrorClass {
        self.inner.classify(error)
    }

    fn pick_is_cancel_safe(&self) -> bool {
        self.inner.pick_is_cancel_safe()
    }
}
