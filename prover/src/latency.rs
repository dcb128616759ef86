//! `--pick-latency`/`--save-latency`: wrappers that delay a picker's or saver's
//! calls, modeling a database round trip, without changing the component.

use std::time::Duration;

use pjp_core::{JobPicker, JobResult, JobSaver, PickManyResult, PickResult};

/// Delays every call of the wrapped picker or saver by `latency`, plus a random
/// extra of up to `jitter × latency`.
#[derive(Debug, Clone)]
pub(crate) struct Delayed<T> {
    inner: T,
    latency: Duration,
    jitter: f64,
}

impl<T> Delayed<T> {
    pub(crate) fn new(inner: T, latency: Duration, jitter: f64) -> Self {
        Self {
            inner,
            latency,
            jitter,
        }
    }

    async fn wait(&self) {
        if self.latency.is_zero() {
            return;
        }
        let extra = self.latency.mul_f64(self.jitter * fastrand::f64());
        tokio::time::sleep(self.latency + extra).await;
    }
}

impl<P: JobPicker> JobPicker for Delayed<P> {
    type Input = P::Input;
    type Metadata = P::Metadata;
    type Error = P::Error;

    async fn pick(&self) -> PickResult<P::Input, P::Metadata, P::Error> {
        self.wait().await;
        self.inner.pick().await
    }

    async fn pick_many(&self, max: usize) -> PickManyResult<P::Input, P::Metadata, P::Error> {
        self.wait().await;
        self.inner.pick_many(max).await
    }

    async fn release(&self, meta: P::Metadata) -> Result<(), P::Error> {
        self.wait().await;
        self.inner.release(meta).await
    }

    fn is_retryable(&self, error: &P::Error) -> bool {
        self.inner.is_retryable(error)
    }
}

impl<S: JobSaver> JobSaver for Delayed<S> {
    type Output = S::Output;
    type Failure = S::Failure;
    type Metadata = S::Metadata;
    type Error = S::Error;

    async fn save(
        &self,
        result: &JobResult<S::Output, S::Failure>,
        meta: &S::Metadata,
    ) -> Result<(), S::Error> {
        self.wait().await;
        self.inner.save(result, meta).await
    }

    fn is_retryable(&self, error: &S::Error) -> bool {
        self.inner.is_retryable(error)
    }
}
