//! The result store: the circuit prover's saver. Records a digest of every
//! result, verifies a sample with the inverse NTT, and records failures from
//! either stage. A verification mismatch is recorded as a failed job.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use pjp_core::{ExecError, JobId, JobMeta, JobResult, JobSaver};
use pjp_gpu::{CpuNtt, Direction, NttOutput};
use pjp_testkit::QueueMeta;

use crate::circuit::ProveError;
use crate::witness::WitnessShape;

/// What happened to one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JobRecord {
    /// Proved; `verified` if the sample check ran (and passed).
    Proved { digest: u64, verified: bool },
    /// Failed in `stage`.
    Failed {
        stage: &'static str,
        reason: String,
        panicked: bool,
    },
}

/// Counts over the records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StoreCounts {
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    pub(crate) panicked: u64,
    pub(crate) verified: u64,
    pub(crate) mismatches: u64,
}

/// Why a save failed. Saves to memory cannot fail, but verification runs on the
/// blocking pool, which can refuse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum StoreError {
    /// The verification task died.
    #[error("verification task failed: {0}")]
    Verification(String),
}

/// The in-memory result store, indexed by job id.
#[derive(Debug)]
pub(crate) struct ResultStore {
    records: Mutex<Vec<Option<JobRecord>>>,
    mismatches: Mutex<Vec<JobId>>,
    shape: WitnessShape,
    verify_every: u64,
    cpu: Arc<CpuNtt>,
}

/// FNV-1a over the coefficients' bytes: a checksum to compare runs, not a
/// cryptographic commitment.
pub(crate) fn digest(coeffs: &[u64]) -> u64 {
    use std::hash::Hasher;
    let mut hasher = fnv::FnvHasher::default();
    for c in coeffs {
        hasher.write(&c.to_le_bytes());
    }
    hasher.finish()
}

impl ResultStore {
    pub(crate) fn new(jobs: u64, shape: WitnessShape, verify_every: u64) -> Self {
        Self {
            records: Mutex::new(vec![None; usize::try_from(jobs).unwrap_or(0)]),
            mismatches: Mutex::new(Vec::new()),
            shape,
            verify_every,
            cpu: Arc::new(CpuNtt::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Option<JobRecord>>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, job: JobId, record: JobRecord) {
        let mut records = self.lock();
        let index = usize::try_from(job.get()).unwrap_or(usize::MAX);
        if index >= records.len() {
            records.resize(index.saturating_add(1), None);
        }
        // Saves are idempotent: a retried save overwrites its own record.
        records[index] = Some(record);
    }

    /// The record of each job, by id (`None`: never finished).
    #[cfg(test)]
    pub(crate) fn records(&self) -> Vec<Option<JobRecord>> {
        self.lock().clone()
    }

    /// Jobs whose sampled check failed.
    pub(crate) fn mismatches(&self) -> Vec<JobId> {
        self.mismatches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Counts over the records.
    pub(crate) fn counts(&self) -> StoreCounts {
        let mut counts = StoreCounts::default();
        for record in self.lock().iter().flatten() {
            match record {
                JobRecord::Proved { verified, .. } => {
                    counts.succeeded += 1;
                    counts.verified += u64::from(*verified);
                }
                JobRecord::Failed { panicked, .. } => {
                    counts.failed += 1;
                    counts.panicked += u64::from(*panicked);
                }
            }
        }
        counts.mismatches = self.mismatches().len() as u64;
        counts
    }

    fn sampled(&self, job: JobId) -> bool {
        self.verify_every > 0 && job.get().is_multiple_of(self.verify_every)
    }

    /// A saver for the failures of an earlier stage (a stage channel's failure side).
    pub(crate) fn failures_of<O, F>(self: &Arc<Self>, stage: &'static str) -> StageFailures<O, F> {
        StageFailures {
            store: Arc::clone(self),
            stage,
            _types: PhantomData,
        }
    }

    fn record_failure<F: std::fmt::Display>(
        &self,
        stage: &'static str,
        job: JobId,
        error: &ExecError<F>,
    ) {
        self.record(
            job,
            JobRecord::Failed {
                stage,
                reason: error.to_string(),
                panicked: error.is_panic(),
            },
        );
    }
}

/// Inverts the NTT of `output` and compares it with the job's witness.
fn verify(
    cpu: &CpuNtt,
    shape: WitnessShape,
    job: JobId,
    output: &NttOutput,
) -> Result<bool, String> {
    let mut coeffs = output.coeffs.clone();
    cpu.transform(&mut coeffs, output.log_n, Direction::Inverse)
        .map_err(|e| e.to_string())?;
    Ok(coeffs == shape.witness(job))
}

impl JobSaver for ResultStore {
    type Output = NttOutput;
    type Failure = ProveError;
    type Metadata = QueueMeta;
    type Error = StoreError;

    async fn save(
        &self,
        result: &JobResult<NttOutput, ProveError>,
        meta: &QueueMeta,
    ) -> Result<(), StoreError> {
        let job = meta.job_id();
        let output = match result {
            Ok(output) => output,
            Err(error) => {
                self.record_failure("prove", job, error);
                return Ok(());
            }
        };
        let digest = digest(&output.coeffs);
        if !self.sampled(job) {
            self.record(
                job,
                JobRecord::Proved {
                    digest,
                    verified: false,
                },
            );
            return Ok(());
        }
        // The check is CPU work: keep it off the async threads.
        let (cpu, shape, owned) = (Arc::clone(&self.cpu), self.shape, output.clone());
        let checked = tokio::task::spawn_blocking(move || verify(&cpu, shape, job, &owned))
            .await
            .map_err(|e| StoreError::Verification(e.to_string()))?;
        match checked {
            Ok(true) => self.record(
                job,
                JobRecord::Proved {
                    digest,
                    verified: true,
                },
            ),
            Ok(false) | Err(_) => {
                let reason = match checked {
                    Err(e) => format!("verification could not run: {e}"),
                    _ => "verification failed: the inverse NTT does not give back the witness"
                        .to_owned(),
                };
                tracing::error!(%job, %reason, "result rejected");
                self.mismatches
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(job);
                self.record(
                    job,
                    JobRecord::Failed {
                        stage: "verify",
                        reason,
                        panicked: false,
                    },
                );
            }
        }
        Ok(())
    }
}

/// Records an earlier stage's failed jobs in the store.
pub(crate) struct StageFailures<O, F> {
    store: Arc<ResultStore>,
    stage: &'static str,
    _types: PhantomData<fn() -> (O, F)>,
}

impl<O, F> JobSaver for StageFailures<O, F>
where
    O: Send + Sync + 'static,
    F: std::fmt::Display + Send + Sync + 'static,
{
    type Output = O;
    type Failure = F;
    type Metadata = QueueMeta;
    type Error = StoreError;

    async fn save(&self, result: &JobResult<O, F>, meta: &QueueMeta) -> Result<(), StoreError> {
        match result {
            Err(error) => self.store.record_failure(self.stage, meta.job_id(), error),
            // A stage saver only forwards failures here; an output would be a
            // wiring bug, so record it rather than drop it.
            Ok(_) => self.store.record(
                meta.job_id(),
                JobRecord::Failed {
                    stage: self.stage,
                    reason: "internal: an output reached the failure store".to_owned(),
                    panicked: false,
                },
            ),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pjp_core::Executor;

    #[tokio::test]
    async fn a_wrong_result_is_a_failed_job() -> anyhow::Result<()> {
        let shape = WitnessShape {
            log_n: 3,
            batch: 2,
            seed: 1,
        };
        let store = ResultStore::new(2, shape, 1);
        let ntt = pjp_gpu::NttExecutor::<QueueMeta>::cpu();
        let meta = |id| QueueMeta {
            id: JobId::new(id),
            attempt: 1,
        };
        let job = pjp_gpu::NttJob::new(3, Direction::Forward, 2, shape.witness(JobId::new(0)));
        let good = ntt.execute(job, &meta(0))?;
        let mut bad = good.clone();
        bad.coeffs[3] = pjp_gpu::field::add(bad.coeffs[3], 1);
        store.save(&Ok(good), &meta(0)).await?;
        store.save(&Ok(bad), &meta(1)).await?;
        let counts = store.counts();
        assert_eq!(
            (
                counts.succeeded,
                counts.verified,
                counts.failed,
                counts.mismatches
            ),
            (1, 1, 1, 1)
        );
        assert!(matches!(
            &store.records()[1],
            Some(JobRecord::Failed {
                stage: "verify",
                ..
            })
        ));
        Ok(())
    }

    #[test]
    fn digest_depends_on_every_coefficient() {
        assert_ne!(digest(&[1, 2, 3]), digest(&[1, 2, 4]));
        assert_ne!(digest(&[1, 2]), digest(&[2, 1]));
        assert_eq!(digest(&[7; 5]), digest(&[7; 5]));
    }
}
