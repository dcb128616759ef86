//! The circuit prover: stage two. Runs the NTT over a witness (GPU when present)
//! and, for the demo, injects failures and panics at configured rates.

use std::sync::Arc;

use pjp_core::{Executor, JobContext};
use pjp_gpu::{NttError, NttExecutor};

use crate::job::{PayloadError, Proof, Witness, splitmix64};

/// Why proving a job failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProveError {
    /// The NTT backend failed.
    #[error(transparent)]
    Ntt(#[from] NttError),
    /// A failure injected by `--fail-rate`.
    #[error("injected failure (--fail-rate)")]
    Injected,
    /// Stage one could not build the witness (its failure, saved through
    /// the same sink).
    #[error("witness: {0}")]
    Witness(#[from] PayloadError),
    /// A wiring bug, saved as the job's failure rather than dropped.
    #[error("internal: {0}")]
    Internal(&'static str),
}

impl ProveError {
    /// The stage the failure happened in.
    pub fn stage(&self) -> &'static str {
        match self {
            Self::Witness(_) => "witness",
            Self::Ntt(_) | Self::Injected | Self::Internal(_) => "prove",
        }
    }
}

/// Which jobs fail or panic on purpose, decided from the job id and seed so a
/// run is reproducible.
#[derive(Debug, Clone, Copy, Default)]
pub struct FaultRates {
    /// Fraction of jobs whose proving fails with [`ProveError::Injected`].
    pub fail: f64,
    /// Fraction of jobs whose proving panics.
    pub panic: f64,
    /// Seed of the draw.
    pub seed: u64,
}

#[derive(Debug, PartialEq, Eq)]
enum Fault {
    None,
    Fail,
    Panic,
}

impl FaultRates {
    /// No injected faults.
    pub fn none(seed: u64) -> Self {
        Self {
            fail: 0.0,
            panic: 0.0,
            seed,
        }
    }

    fn decide(&self, job: u64) -> Fault {
        if self.fail <= 0.0 && self.panic <= 0.0 {
            return Fault::None;
        }
        let draw = splitmix64(self.seed.rotate_left(17) ^ job);
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
pub struct CircuitProver {
    /// The NTT backend the proofs run on.
    pub ntt: NttExecutor,
    /// The injected failures and panics.
    pub faults: FaultRates,
}

impl Executor for CircuitProver {
    type Input = Arc<Witness>;
    type Output = Proof;
    type Error = ProveError;

    fn execute(&self, witness: Arc<Witness>, context: &JobContext) -> Result<Proof, ProveError> {
        let job = witness.job;
        match self.faults.decide(job.job) {
            Fault::Panic => panic!("injected panic (--panic-rate) in job {}", job.job),
            Fault::Fail => return Err(ProveError::Injected),
            Fault::None => {}
        }
        // The stage channel has usually dropped its reference by now: no copy.
        let witness = Arc::try_unwrap(witness).unwrap_or_else(|shared| (*shared).clone());
        let output = self.ntt.execute(witness.ntt, context)?;
        Ok(Proof { job, output })
    }

    fn cost_hint(&self, witness: &Arc<Witness>) -> std::time::Duration {
        self.ntt.cost_hint(&witness.ntt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_rates_are_respected_and_reproducible() {
        let rates = FaultRates {
            fail: 0.2,
            panic: 0.1,
            seed: 5,
        };
        let decide = |id| rates.decide(id);
        let faults: Vec<Fault> = (0..10_000).map(decide).collect();
        let fails = faults.iter().filter(|f| **f == Fault::Fail).count();
        let panics = faults.iter().filter(|f| **f == Fault::Panic).count();
        assert!((1_800..2_200).contains(&fails), "{fails}");
        assert!((800..1_200).contains(&panics), "{panics}");
        assert_eq!(decide(42), decide(42));
        assert_eq!(FaultRates::default().decide(1), Fault::None);
    }
}
