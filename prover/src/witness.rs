//! The witness-vector generator: stage one, on the CPU. Expands a job's seed into
//! a batch of Goldilocks polynomials.

use std::sync::Arc;

use pjp_core::{Executor, JobId, JobMeta};
use pjp_gpu::{Direction, NttJob, field};
use pjp_testkit::QueueMeta;

/// Shapes the witness of every job.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WitnessShape {
    pub(crate) log_n: u32,
    pub(crate) batch: usize,
    /// Mixed into every job's seed.
    pub(crate) seed: u64,
}

/// The seed of one job's witness.
pub(crate) fn job_seed(run_seed: u64, job: JobId) -> u64 {
    splitmix64(run_seed ^ splitmix64(job.get()))
}

/// SplitMix64: a tiny, well-mixed, deterministic generator step.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl WitnessShape {
    /// The job's witness: `batch` polynomials of `2^log_n` canonical field
    /// elements, from the job's seed.
    pub(crate) fn witness(&self, job: JobId) -> Vec<u64> {
        field::sample(self.batch << self.log_n, job_seed(self.seed, job))
    }
}

/// Stage one's executor: job → the NTT job over its witness.
#[derive(Debug, Clone)]
pub(crate) struct WitnessGenerator {
    pub(crate) shape: WitnessShape,
}

impl Executor for WitnessGenerator {
    type Input = u64;
    type Output = Arc<NttJob>;
    type Metadata = QueueMeta;
    type Error = std::convert::Infallible;

    fn execute(&self, _input: u64, meta: &QueueMeta) -> Result<Arc<NttJob>, Self::Error> {
        let coeffs = self.shape.witness(meta.job_id());
        Ok(Arc::new(NttJob::new(
            self.shape.log_n,
            Direction::Forward,
            self.shape.batch,
            coeffs,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn witnesses_are_canonical_deterministic_and_distinct() {
        let shape = WitnessShape {
            log_n: 4,
            batch: 3,
            seed: 9,
        };
        let a = shape.witness(JobId::new(1));
        assert_eq!(a.len(), 48);
        assert!(a.iter().all(|&x| field::is_canonical(x)));
        assert_eq!(a, shape.witness(JobId::new(1)));
        assert_ne!(a, shape.witness(JobId::new(2)));
        assert_ne!(a, WitnessShape { seed: 10, ..shape }.witness(JobId::new(1)));
    }
}
