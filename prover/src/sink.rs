//! Savers that adapt the prover's results to a sink: [`FleetSink`] stores
//! proofs as bytes on a durable queue; [`FailuresOf`] sends stage one's
//! failures to the same sink as stage two's.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use pjp_core::{ExecError, JobMeta, JobResult, JobSaver, SaveBatch, SaveResults};

use crate::circuit::ProveError;
use crate::job::{PayloadError, Proof};
use crate::store::{Checked, JobRecord, Tally, Verifier, digest, failure_record};

/// A failure as a durable queue stores it: its message, and whether retrying
/// could help (a payload that does not decode never will).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedFailure {
    /// What went wrong.
    pub message: String,
    /// Whether retrying cannot help (a malformed job).
    pub permanent: bool,
}

impl fmt::Display for SavedFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<&ProveError> for SavedFailure {
    fn from(error: &ProveError) -> Self {
        Self {
            message: error.to_string(),
            permanent: matches!(error, ProveError::Witness(_)),
        }
    }
}

/// The fleet run's sink: checks a sample of proofs, then hands each result to
/// `S` (the PostgreSQL queue's fenced saver) as bytes
/// ([`Proof::to_bytes`]), or as a [`SavedFailure`]. A proof that fails its
/// check is saved as a failure. Counts what `S` accepted in a [`Tally`].
pub struct FleetSink<S> {
    inner: S,
    verifier: Verifier,
    tally: Arc<Tally>,
}

impl<S> FleetSink<S> {
    /// Saves through `inner`, verifying every `verify_every`-th proof first.
    pub fn new(inner: S, verify_every: u64) -> Self {
        Self {
            inner,
            verifier: Verifier::new(verify_every),
            tally: Arc::new(Tally::default()),
        }
    }

    /// What it has saved so far.
    pub fn tally(&self) -> &Arc<Tally> {
        &self.tally
    }
}

impl<S> FleetSink<S>
where
    S: JobSaver<Output = Vec<u8>, Failure = SavedFailure>,
{
    /// The stored form of one result, and the record to count once saved.
    async fn prepare(
        &self,
        result: &JobResult<Proof, ProveError>,
        meta: &S::Metadata,
    ) -> (JobResult<Vec<u8>, SavedFailure>, JobRecord) {
        let proof = match result {
            Ok(proof) => proof,
            Err(error) => {
                return (
                    Err(error.as_ref().map(SavedFailure::from)),
                    failure_record(error),
                );
            }
        };
        let verified = match self.verifier.check(proof).await {
            Checked::Skipped => false,
            Checked::Verified => true,
            Checked::Rejected(reason) => {
                tracing::error!(job = proof.job.job, %reason, "result rejected");
                self.tally.mismatch(meta.job_id());
                let record = JobRecord::Failed {
                    stage: "verify",
                    reason: reason.clone(),
                    panicked: false,
                };
                let failure = SavedFailure {
                    message: reason,
                    permanent: false,
                };
                return (Err(ExecError::Failed(failure)), record);
            }
        };
        let record = JobRecord::Proved {
            digest: digest(&proof.output.coeffs),
            verified,
        };
        (Ok(proof.to_bytes()), record)
    }
}

impl<S> JobSaver for FleetSink<S>
where
    S: JobSaver<Output = Vec<u8>, Failure = SavedFailure>,
{
    type Output = Proof;
    type Failure = ProveError;
    type Metadata = S::Metadata;
    type Error = S::Error;

    async fn save(
        &self,
        result: &JobResult<Proof, ProveError>,
        meta: &S::Metadata,
    ) -> Result<(), S::Error> {
        let mut outcomes = self.save_many(&[(result, meta)]).await;
        outcomes.pop().unwrap_or(Ok(()))
    }

    async fn save_many(
        &self,
        batch: &SaveBatch<'_, Proof, ProveError, S::Metadata>,
    ) -> SaveResults<S::Error> {
        let prepared = futures_util::future::join_all(
            batch
                .iter()
                .map(|(result, meta)| self.prepare(result, meta)),
        )
        .await;
        let stored: Vec<_> = prepared
            .iter()
            .zip(batch)
            .map(|((result, _), (_, meta))| (result, *meta))
            .collect();
        let outcomes = self.inner.save_many(&stored).await;
        for ((_, record), outcome) in prepared.iter().zip(&outcomes) {
            if outcome.is_ok() {
                self.tally.count(record);
            }
        }
        outcomes
    }

    fn classify(&self, error: &S::Error) -> pjp_core::ErrorClass {
        self.inner.classify(error)
    }
}

/// Stage one's failure side: a witness that could not be built is saved
/// through stage two's sink, as a [`ProveError::Witness`]. Only failures reach
/// it (a stage channel sends outputs on); an output that did is a wiring bug,
/// saved as a failure rather than dropped.
pub struct FailuresOf<S, T> {
    sink: S,
    _output: PhantomData<fn(&T)>,
}

impl<S, T> FailuresOf<S, T> {
    /// Saves the failures of stage one through `sink`.
    pub fn new(sink: S) -> Self {
        Self {
            sink,
            _output: PhantomData,
        }
    }
}

impl<S, T> JobSaver for FailuresOf<S, T>
where
    S: JobSaver<Output = Proof, Failure = ProveError>,
    T: Send + Sync + 'static,
{
    type Output = T;
    type Failure = PayloadError;
    type Metadata = S::Metadata;
    type Error = S::Error;

    async fn save(
        &self,
        result: &JobResult<T, PayloadError>,
        meta: &S::Metadata,
    ) -> Result<(), S::Error> {
        let failure = match result {
            Err(error) => error.as_ref().map(|e| ProveError::Witness(e.clone())),
            Ok(_) => ExecError::Failed(ProveError::Internal(
                "an output reached stage one's failure saver",
            )),
        };
        self.sink.save(&Err(failure), meta).await
    }

    fn classify(&self, error: &S::Error) -> pjp_core::ErrorClass {
        self.sink.classify(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{ProofJob, StoredProof};
    use bytes::Bytes;
    use pjp_core::memory::{MemoryQueue, QueueMeta};
    use pjp_core::{Executor, JobContext, JobPicker, Picked};

    type Queue = MemoryQueue<Bytes, Vec<u8>, SavedFailure>;

    async fn claim(queue: &Queue) -> QueueMeta {
        match queue.picker().pick().await {
            Ok(Picked::Some(job)) => job.meta,
            _ => panic!("a job is queued"),
        }
    }

    #[tokio::test]
    async fn proofs_are_stored_as_bytes_and_failures_keep_their_class() -> anyhow::Result<()> {
        let queue: Queue = MemoryQueue::closed_with((0..4).map(|_| Bytes::new()));
        let sink = FleetSink::new(queue.saver(), 1);
        let ntt = pjp_gpu::NttExecutor::cpu();
        let job = ProofJob {
            job: 0,
            log_n: 3,
            batch: 1,
            seed: 2,
        };
        let meta = claim(&queue).await;
        let proof = Proof {
            job,
            output: ntt.execute(job.ntt_job(), &JobContext::of(&meta))?,
        };
        let mut wrong = proof.clone();
        wrong.output.coeffs[0] = pjp_gpu::field::add(wrong.output.coeffs[0], 1);
        let metas = [meta, claim(&queue).await, claim(&queue).await];
        let results = [
            Ok(proof),
            Err(ExecError::Failed(ProveError::Witness(
                PayloadError::Malformed("x".into()),
            ))),
            Ok(wrong),
        ];
        let batch: Vec<_> = results.iter().zip(&metas).collect();
        let outcomes = sink.save_many(&batch).await;
        assert!(outcomes.iter().all(Result::is_ok));

        let saved = queue.saved();
        let stored = saved[0]
            .result
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let stored = StoredProof::from_bytes(stored)?;
        assert_eq!(stored.job, job);
        assert_eq!(stored.verify(&pjp_gpu::CpuNtt::new()), Ok(true));
        assert!(matches!(
            &saved[1].result,
            Err(ExecError::Failed(SavedFailure {
                permanent: true,
                ..
            }))
        ));
        assert!(matches!(
            &saved[2].result,
            Err(ExecError::Failed(SavedFailure { permanent: false, message })) if message.contains("verification failed")
        ));
        let counts = sink.tally().counts();
        assert_eq!(
            (
                counts.succeeded,
                counts.verified,
                counts.failed,
                counts.mismatches
            ),
            (1, 1, 2, 1)
        );
        Ok(())
    }

    #[tokio::test]
    async fn stage_one_failures_reach_the_sink_as_witness_failures() -> anyhow::Result<()> {
        let store = std::sync::Arc::new(crate::store::ResultStore::new(1, 0));
        let failures: FailuresOf<_, u8> = FailuresOf::new(std::sync::Arc::clone(&store));
        let meta = pjp_core::boxed::AnyMeta::new(pjp_core::JobId::new(0));
        let error = ExecError::Failed(PayloadError::Malformed("bad".into()));
        failures.save(&Err(error), &meta).await?;
        assert!(matches!(
            &store.records()[0],
            Some(JobRecord::Failed { stage: "witness", reason, .. }) if reason.contains("bad")
        ));
        Ok(())
    }
}
