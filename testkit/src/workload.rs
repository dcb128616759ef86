//! [`Workload`]: an executor of known cost, for tests, benches and simulations.

use std::time::Duration;

use pjp_core::{Executor, JobContext};

/// An executor that returns its input after a known cost.
///
/// * [`modeled`](Self::modeled): the cost is only reported as
///   [`cost_hint`](Executor::cost_hint), so a simulated runtime advances
///   virtual time by it and a real runtime finishes at once;
/// * [`sleeping`](Self::sleeping): the worker also sleeps for real (for tests
///   on a real runtime that need jobs to take time).
///
/// ```
/// use std::time::Duration;
/// use pjp_core::{Executor, JobContext, JobId};
/// use pjp_testkit::Workload;
///
/// let work = Workload::modeled(Duration::from_millis(20));
/// assert_eq!(work.cost_hint(&7), Duration::from_millis(20));
/// assert_eq!(work.execute(7, &JobContext::new(JobId::new(7), 1)), Ok(7));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    cost: Duration,
    sleep: bool,
}

impl Workload {
    /// No cost at all.
    pub fn noop() -> Self {
        Self::modeled(Duration::ZERO)
    }

    /// A job costs `cost` of modeled time.
    pub fn modeled(cost: Duration) -> Self {
        Self { cost, sleep: false }
    }

    /// A job costs `cost`, and the worker sleeps that long for real.
    pub fn sleeping(cost: Duration) -> Self {
        Self {
            sleep: true,
            ..Self::modeled(cost)
        }
    }

    /// The cost of one job.
    pub fn cost(&self) -> Duration {
        self.cost
    }
}

impl Executor for Workload {
    type Input = u64;
    type Output = u64;
    type Error = String;

    fn execute(&self, input: u64, _job: &JobContext) -> Result<u64, String> {
        if self.sleep && !self.cost.is_zero() {
            std::thread::sleep(self.cost);
        }
        Ok(input)
    }

    fn cost_hint(&self, _input: &u64) -> Duration {
        self.cost
    }
}
