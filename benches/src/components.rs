//! Components for benchmarks: a no-op and a spinning executor, and picker/saver
//! wrappers that sleep to model a database round trip.

use std::time::{Duration, Instant};

use pjp_core::{Executor, Job, JobPicker, JobResult, JobSaver, PickManyResult, PickResult};
use pjp_testkit::{MemoryQueue, QueueMeta, QueuePicker, QueueSaver};

/// The in-memory queue the benchmarks use: `u64` in, `u64` out.
pub type Queue = MemoryQueue<u64, u64, String>;

/// Returns its input: measures the runner, not the work.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoOp;

impl Executor for NoOp {
    type Input = u64;
    type Output = u64;
    type Metadata = QueueMeta;
    type Error = String;

    fn execute(&self, input: u64, _meta: &QueueMeta) -> Result<u64, String> {
        Ok(input)
    }
}

/// Busy-waits for a fixed time per job: CPU-bound work of known cost.
#[derive(Debug, Clone, Copy)]
pub struct Spin(pub Duration);

impl Executor for Spin {
    type Input = u64;
    type Output = u64;
    type Metadata = QueueMeta;
    type Error = String;

    fn execute(&self, input: u64, _meta: &QueueMeta) -> Result<u64, String> {
        let start = Instant::now();
        while start.elapsed() < self.0 {
            std::hint::spin_loop();
        }
        Ok(input)
    }

    fn cost_hint(&self, _input: &u64) -> Duration {
        self.0
    }
}

/// A queue picker whose every call takes `delay` (a database round trip).
#[derive(Clone)]
pub struct SlowPicker {
    /// The wrapped picker.
    pub inner: QueuePicker<u64, u64, String>,
    /// Time per call.
    pub delay: Duration,
}

impl JobPicker for SlowPicker {
    type Input = u64;
    type Metadata = QueueMeta;
    type Error = pjp_testkit::QueueError;

    async fn pick(&self) -> PickResult<u64, QueueMeta, Self::Error> {
        tokio::time::sleep(self.delay).await;
        self.inner.pick().await
    }

    async fn pick_many(&self, max: usize) -> PickManyResult<u64, QueueMeta, Self::Error> {
        tokio::time::sleep(self.delay).await;
        self.inner.pick_many(max).await
    }

    async fn release(&self, meta: QueueMeta) -> Result<(), Self::Error> {
        tokio::time::sleep(self.delay).await;
        self.inner.release(meta).await
    }
}

/// A queue saver whose every call takes `delay`.
#[derive(Clone)]
pub struct SlowSaver {
    /// The wrapped saver.
    pub inner: QueueSaver<u64, u64, String>,
    /// Time per call.
    pub delay: Duration,
}

impl JobSaver for SlowSaver {
    type Output = u64;
    type Failure = String;
    type Metadata = QueueMeta;
    type Error = pjp_testkit::QueueError;

    async fn save(
        &self,
        result: &JobResult<u64, String>,
        meta: &QueueMeta,
    ) -> Result<(), Self::Error> {
        tokio::time::sleep(self.delay).await;
        self.inner.save(result, meta).await
    }
}

/// Picks one job from `picker`, or `None` when it has none.
pub async fn pick_one<P: JobPicker>(picker: &P) -> Option<Job<P::Input, P::Metadata>> {
    match picker.pick().await {
        Ok(pjp_core::Picked::Some(job)) => Some(job),
        _ => None,
    }
}
