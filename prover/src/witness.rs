//! The witness-vector generator: stage one, on the CPU. Decodes a job's
//! payload and expands its seed into a batch of Goldilocks polynomials.

use std::sync::Arc;

use bytes::Bytes;
use pjp_core::{Executor, JobContext};

use crate::job::{PayloadError, ProofJob, Witness};

/// Stage one's executor: payload → the NTT job over its witness. The same
/// bytes come from the embedded queue and from PostgreSQL; a payload that
/// does not decode is the job's failure, saved like any other.
#[derive(Debug, Clone, Copy, Default)]
pub struct WitnessGenerator;

impl Executor for WitnessGenerator {
    type Input = Bytes;
    type Output = Arc<Witness>;
    type Error = PayloadError;

    fn execute(&self, payload: Bytes, _job: &JobContext) -> Result<Arc<Witness>, PayloadError> {
        let job = ProofJob::decode(&payload)?;
        Ok(Arc::new(Witness {
            job,
            ntt: job.ntt_job(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pjp_core::JobId;

    #[test]
    fn a_payload_becomes_its_witness_and_garbage_is_a_failure() {
        let meta = JobContext::new(JobId::new(1), 1);
        let job = ProofJob {
            job: 1,
            log_n: 3,
            batch: 2,
            seed: 5,
        };
        let witness = WitnessGenerator.execute(job.encode(), &meta).ok();
        let witness = witness.as_deref();
        assert_eq!(witness.map(|w| w.job), Some(job));
        assert_eq!(witness.map(|w| w.ntt.coeffs.clone()), Some(job.witness()));
        assert!(matches!(
            WitnessGenerator.execute(Bytes::from_static(b"\xff"), &meta),
            Err(PayloadError::Malformed(_))
        ));
    }
}
