//! Where results go, and what the run counts of them.
//!
//! * [`ResultStore`]: the embedded run's sink, in memory: a digest of every
//!   result, a sample verified with the inverse NTT.
//! * [`crate::sink::FleetSink`]: the fleet run's sink: the same check, then the
//!   proof to the PostgreSQL queue and its object store.
//!
//! Both count into a [`Tally`], which the progress display and the summary
//! read. A verification mismatch is a failed job, never silent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use pjp_core::boxed::AnyMeta;
use pjp_core::memory::{MemoryQueue, QueueError, QueueMeta};
use pjp_core::{ExecError, JobId, JobMeta, JobResult, JobSaver};
use pjp_gpu::CpuNtt;

use crate::circuit::ProveError;
use crate::job::Proof;

/// The embedded run's queue: payload bytes in, results settled as `()` or
/// a failure's reason.
pub type EmbeddedQueue = MemoryQueue<bytes::Bytes, (), String>;

/// What happened to one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobRecord {
    /// Proved; `verified` if the sample check ran (and passed).
    Proved {
        /// A digest of the proof's coefficients.
        digest: u64,
        /// Whether the sample check ran and passed.
        verified: bool,
    },
    /// Failed in `stage`.
    Failed {
        /// The stage it failed in.
        stage: &'static str,
        /// Why.
        reason: String,
        /// Whether it was a panic.
        panicked: bool,
    },
}

/// Counts over the saved results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreCounts {
    /// Jobs proved.
    pub succeeded: u64,
    /// Jobs failed (panics and check mismatches included).
    pub failed: u64,
    /// Of the failed, those that panicked.
    pub panicked: u64,
    /// Proofs checked with the inverse NTT, and found right.
    pub verified: u64,
    /// Proofs checked and found wrong.
    pub mismatches: u64,
}

/// Running counts of what a sink saved, and the jobs whose check failed.
#[derive(Debug, Default)]
pub struct Tally {
    counts: Mutex<StoreCounts>,
    mismatches: Mutex<Vec<JobId>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Tally {
    /// Counts one saved record.
    pub fn count(&self, record: &JobRecord) {
        let mut counts = lock(&self.counts);
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

    /// Notes a job whose result failed its check.
    pub fn mismatch(&self, job: JobId) {
        lock(&self.mismatches).push(job);
    }

    /// The counts so far.
    pub fn counts(&self) -> StoreCounts {
        let mut counts = *lock(&self.counts);
        counts.mismatches = lock(&self.mismatches).len() as u64;
        counts
    }

    /// Jobs whose sampled check failed.
    pub fn mismatches(&self) -> Vec<JobId> {
        lock(&self.mismatches).clone()
    }
}

/// FNV-1a over the coefficients' bytes: a checksum to compare runs, not a
/// cryptographic commitment.
pub fn digest(coeffs: &[u64]) -> u64 {
    use std::hash::Hasher;
    let mut hasher = fnv::FnvHasher::default();
    for c in coeffs {
        hasher.write(&c.to_le_bytes());
    }
    hasher.finish()
}

/// Checks every k-th job's proof (by job number) with the inverse NTT.
#[derive(Debug, Clone)]
pub struct Verifier {
    every: u64,
    cpu: Arc<CpuNtt>,
}

/// What the check of one proof found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Not in the sample.
    Skipped,
    /// Right.
    Verified,
    /// Wrong, or the check could not run: the job fails with this reason.
    Rejected(String),
}

impl Verifier {
    /// Checks every `every`-th proof (0: none).
    pub fn new(every: u64) -> Self {
        Self {
            every,
            cpu: Arc::new(CpuNtt::new()),
        }
    }

    /// Checks `proof` if it is in the sample, off the async threads (it is
    /// CPU work).
    pub async fn check(&self, proof: &Proof) -> Checked {
        if self.every == 0 || !proof.job.job.is_multiple_of(self.every) {
            return Checked::Skipped;
        }
        let (cpu, owned) = (Arc::clone(&self.cpu), proof.clone());
        match tokio::task::spawn_blocking(move || owned.verify(&cpu)).await {
            Ok(Ok(true)) => Checked::Verified,
            Ok(Ok(false)) => Checked::Rejected(
                "verification failed: the inverse NTT does not give back the witness".to_owned(),
            ),
            Ok(Err(e)) => Checked::Rejected(format!("verification could not run: {e}")),
            Err(e) => Checked::Rejected(format!("verification task failed: {e}")),
        }
    }
}

/// The record of a failed job.
pub fn failure_record(error: &ExecError<ProveError>) -> JobRecord {
    JobRecord::Failed {
        stage: match error {
            ExecError::Failed(e) => e.stage(),
            _ => "prove",
        },
        reason: error.to_string(),
        panicked: error.is_panic(),
    }
}

/// The embedded run's in-memory result store, indexed by job id. In a tree
/// run it also settles each job in the embedded queue (a batch's last proof
/// makes its aggregation claimable) and keeps each proof's leaf for it.
#[derive(Debug)]
pub struct ResultStore {
    records: Mutex<Vec<Option<JobRecord>>>,
    tally: Arc<Tally>,
    verifier: Verifier,
    tree: Option<Tree>,
}

/// A tree run's link to its queue.
#[derive(Debug)]
struct Tree {
    queue: EmbeddedQueue,
    /// Each proved job's leaf (SHA-256 of its stored form), until its
    /// batch's aggregation takes it.
    leaves: Mutex<HashMap<JobId, [u8; 32]>>,
}

impl ResultStore {
    /// A store for `jobs` results, checking every `verify_every`-th.
    pub fn new(jobs: u64, verify_every: u64) -> Self {
        Self {
            records: Mutex::new(vec![None; usize::try_from(jobs).unwrap_or(0)]),
            tally: Arc::new(Tally::default()),
            verifier: Verifier::new(verify_every),
            tree: None,
        }
    }

    /// A store that settles every job in `queue` after recording it, and
    /// keeps the leaves of its proofs for their aggregations.
    pub fn settling(mut self, queue: EmbeddedQueue) -> Self {
        self.tree = Some(Tree {
            queue,
            leaves: Mutex::new(HashMap::new()),
        });
        self
    }

    /// The leaves of `children`, in order, taken out of the store; or which
    /// child has none (it failed, or was never proved).
    pub fn take_leaves(&self, children: &[JobId]) -> Result<Vec<[u8; 32]>, String> {
        let Some(tree) = &self.tree else {
            return Err("not a tree run: no leaves are kept".to_owned());
        };
        let mut leaves = lock(&tree.leaves);
        let found = children
            .iter()
            .map(|child| {
                leaves
                    .get(child)
                    .copied()
                    .ok_or_else(|| format!("child {child} has no proof"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        for child in children {
            leaves.remove(child);
        }
        Ok(found)
    }

    /// What the store counted.
    pub fn tally(&self) -> &Arc<Tally> {
        &self.tally
    }

    fn record(&self, job: JobId, record: JobRecord) {
        let mut records = lock(&self.records);
        let index = usize::try_from(job.get()).unwrap_or(usize::MAX);
        if index >= records.len() {
            records.resize(index.saturating_add(1), None);
        }
        // Saves are idempotent: a retried save overwrites its own record and
        // is counted once.
        if records[index].is_none() {
            self.tally.count(&record);
        }
        records[index] = Some(record);
    }

    /// The record of each job, by id (`None`: never finished).
    #[cfg(test)]
    pub fn records(&self) -> Vec<Option<JobRecord>> {
        lock(&self.records).clone()
    }
}

impl JobSaver for ResultStore {
    type Output = Proof;
    type Failure = ProveError;
    type Metadata = AnyMeta;
    type Error = QueueError;

    async fn save(
        &self,
        result: &JobResult<Proof, ProveError>,
        meta: &AnyMeta,
    ) -> Result<(), QueueError> {
        let job = meta.job_id();
        let outcome = self.store(job, result).await;
        let Some(tree) = &self.tree else {
            return Ok(());
        };
        // Recorded first: the save that makes an aggregation claimable finds
        // its leaf in place.
        let settled = match outcome {
            Ok(leaf) => {
                lock(&tree.leaves).insert(job, leaf);
                Ok(())
            }
            Err(reason) => Err(ExecError::Failed(reason)),
        };
        match meta.downcast_ref::<QueueMeta>() {
            Some(meta) => tree.queue.saver().save(&settled, meta).await,
            None => Err(QueueError::UnknownJob(job)),
        }
    }
}

impl ResultStore {
    /// Records `result`; returns the proof's leaf if it is a good proof (a
    /// tree run only computes it), or why the job failed.
    async fn store(
        &self,
        job: JobId,
        result: &JobResult<Proof, ProveError>,
    ) -> Result<[u8; 32], String> {
        let proof = match result {
            Ok(proof) => proof,
            Err(error) => {
                self.record(job, failure_record(error));
                return Err(error.to_string());
            }
        };
        let digest = digest(&proof.output.coeffs);
        let verified = match self.verifier.check(proof).await {
            Checked::Skipped => false,
            Checked::Verified => true,
            Checked::Rejected(reason) => {
                tracing::error!(%job, %reason, "result rejected");
                self.tally.mismatch(job);
                self.record(
                    job,
                    JobRecord::Failed {
                        stage: "verify",
                        reason: reason.clone(),
                        panicked: false,
                    },
                );
                return Err(reason);
            }
        };
        self.record(job, JobRecord::Proved { digest, verified });
        if self.tree.is_none() {
            return Ok([0; 32]);
        }
        // 8 bytes per coefficient through SHA-256: CPU work, off the async
        // threads.
        let owned = proof.clone();
        tokio::task::spawn_blocking(move || owned.leaf())
            .await
            .map_err(|e| format!("hashing the proof: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::ProofJob;
    use pjp_core::{Executor, JobContext};

    #[tokio::test]
    async fn a_wrong_result_is_a_failed_job() -> anyhow::Result<()> {
        let store = ResultStore::new(2, 1);
        let ntt = pjp_gpu::NttExecutor::cpu();
        let meta = |id| AnyMeta::new(JobId::new(id));
        let job = |n| ProofJob {
            job: n,
            log_n: 3,
            batch: 2,
            seed: 1,
        };
        let good = Proof {
            job: job(0),
            output: ntt.execute(job(0).ntt_job(), &JobContext::of(&meta(0)))?,
        };
        let mut bad = Proof {
            job: job(1),
            output: ntt.execute(job(1).ntt_job(), &JobContext::of(&meta(1)))?,
        };
        bad.output.coeffs[3] = pjp_gpu::field::add(bad.output.coeffs[3], 1);
        store.save(&Ok(good.clone()), &meta(0)).await?;
        store.save(&Ok(bad), &meta(1)).await?;
        // A retried save is counted once.
        store.save(&Ok(good), &meta(0)).await?;
        let counts = store.tally().counts();
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
