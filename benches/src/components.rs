//! Components for benchmarks: a no-op and a spinning executor over the testkit's
//! in-memory queue. Modeled round trips come from the testkit's `with_latency`.

use std::time::{Duration, Instant};

use pjp_core::{Executor, Job, JobContext, JobPicker};
use pjp_testkit::MemoryQueue;

/// The in-memory queue the benchmarks use: `u64` in, `u64` out.
pub type Queue = MemoryQueue<u64, u64, String>;

/// Returns its input: measures the runner, not the work.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoOp;

impl Executor for NoOp {
    type Input = u64;
    type Output = u64;
    type Error = String;

    fn execute(&self, input: u64, _job: &JobContext) -> Result<u64, String> {
        Ok(input)
    }
}

/// Busy-waits for a fixed time per job: CPU-bound work of known cost.
#[derive(Debug, Clone, Copy)]
pub struct Spin(pub Duration);

impl Executor for Spin {
    type Input = u64;
    type Output = u64;
    type Error = String;

    fn execute(&self, input: u64, _job: &JobContext) -> Result<u64, String> {
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

/// Picks one job from `picker`, or `None` when it has none.
pub async fn pick_one<P: JobPicker>(picker: &P) -> Option<Job<P::Input, P::Metadata>> {
    match picker.pick().await {
        Ok(pjp_core::Picked::Some(job)) => Some(job),
        _ => None,
    }
}
