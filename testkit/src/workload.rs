//! [`Workload`]: an executor of known cost, for tests, benches and simulations.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use pjp_core::{Executor, JobMeta};

use crate::QueueMeta;

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
/// use pjp_core::Executor;
/// use pjp_testkit::{QueueMeta, Workload};
///
/// let work: Workload = Workload::modeled(Duration::from_millis(20));
/// assert_eq!(work.cost_hint(&7), Duration::from_millis(20));
/// let meta = QueueMeta { id: 7.into(), attempt: 1 };
/// assert_eq!(work.execute(7, &meta), Ok(7));
/// ```
pub struct Workload<M = QueueMeta> {
    cost: Duration,
    sleep: bool,
    _meta: PhantomData<fn() -> M>,
}

impl<M> Workload<M> {
    /// No cost at all.
    pub fn noop() -> Self {
        Self::modeled(Duration::ZERO)
    }

    /// A job costs `cost` of modeled time.
    pub fn modeled(cost: Duration) -> Self {
        Self {
            cost,
            sleep: false,
            _meta: PhantomData,
        }
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

impl<M> Clone for Workload<M> {
    fn clone(&self) -> Self {
        Self {
            cost: self.cost,
            sleep: self.sleep,
            _meta: PhantomData,
        }
    }
}

impl<M> fmt::Debug for Workload<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workload")
            .field("cost", &self.cost)
            .field("sleep", &self.sleep)
            .finish()
    }
}

impl<M: JobMeta> Executor for Workload<M> {
    type Input = u64;
    type Output = u64;
    type Metadata = M;
    type Error = String;

    fn execute(&self, input: u64, _meta: &M) -> Result<u64, String> {
        if self.sleep && !self.cost.is_zero() {
            std::thread::sleep(self.cost);
        }
        Ok(input)
    }

    fn cost_hint(&self, _input: &u64) -> Duration {
        self.cost
    }
}
