//! The circuit prover: stage two. Runs the NTT over a witness (GPU when present)
//! and, for the demo, injects failures and panics at configured rates.

use std::sync::Arc;

use pjp_core::{Executor, JobMeta};
use pjp_gpu::{NttError, NttExecutor, NttJob, NttOutput};
use pjp_testkit::QueueMeta;

use crate::witness::splitmix64;

/// Why proving a job failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ProveError {
    /// The NTT backend failed.
    #[error(transparent)]
    Ntt(#[from] NttError),
    /// A failure injected by `--fail-rate`.
    #[error("injected failure (--fail-rate)")]
    Injected,
}

/// Which jobs fail or panic on purpose, decided from the job id and seed so a
/// run is reproducible.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FaultRates {
    pub(crate) fail: f64,
    pub(crate) panic: f64,
    pub(crate) seed: u64,
}

#[derive(Debug, PartialEq, Eq)]
enum Fault {
    None,
    Fail,
    Panic,
}

impl FaultRates {
    fn decide(&self, meta: &QueueMeta) -> Fault {
        if self.fail <= 0.0 && self.panic <= 0.0 {
            return Fault::None;
        }
        let draw = splitmix64(self.seed.rotate_left(17) ^ meta.job_id().get());
        let unit = pjp_core::random_fraction(draw);
        if unit < self.panic {
            Fault::Panic
        } else if unit < self.panic + self.fail {
            Fault::Fail
        } else {
            Fault::None
        }
    }
}

/// Stage two's executor.
#[derive(Debug, Clone)]
pub(crate) struct CircuitProver {
    pub(crate) ntt: NttExecutor<QueueMeta>,
    pub(crate) faults: FaultRates,
}

impl Executor for CircuitProver {
    type Input = Arc<NttJob>;
    type Output = NttOutput;
    type Metadata = QueueMeta;
    type Error = ProveError;

    fn execute(&self, job: Arc<NttJob>, meta: &QueueMeta) -> Result<NttOutput, ProveError> {
        match self.faults.decide(meta) {
            Fault::Panic => panic!("injected panic (--panic-rate) in job {}", meta.job_id()),
            Fault::Fail => return Err(ProveError::Injected),
            Fault::None => {}
        }
        // The stage channel has usually dropped its reference by now: no copy.
        let job = Arc::try_unwrap(job).unwrap_or_else(|shared| (*shared).clone());
        Ok(self.ntt.execute(job, meta)?)
    }

    fn cost_hint(&self, job: &Arc<NttJob>) -> std::time::Duration {
        self.ntt.cost_hint(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pjp_core::JobId;

    #[test]
    fn fault_rates_are_respected_and_reproducible() {
        let rates = FaultRates {
            fail: 0.2,
            panic: 0.1,
            seed: 5,
        };
        let decide = |id| {
            rates.decide(&QueueMeta {
                id: JobId::new(id),
                attempt: 1,
            })
        };
        let faults: Vec<Fault> = (0..10_000).map(decide).collect();
        let fails = faults.iter().filter(|f| **f == Fault::Fail).count();
        let panics = faults.iter().filter(|f| **f == Fault::Panic).count();
        assert!((1_800..2_200).contains(&fails), "{fails}");
        assert!((800..1_200).contains(&panics), "{panics}");
        assert_eq!(decide(42), decide(42));
        assert_eq!(
            FaultRates::default().decide(&QueueMeta {
                id: JobId::new(1),
                attempt: 1
            }),
            Fault::None
        );
    }
}
