//! The reference prover as a tree: per batch, basic NTT proofs and one
//! aggregation over them. The aggregation job (kind `aggregate`) becomes
//! claimable when its last basic proof is saved; it reads every child's
//! stored proof, checks it with the inverse NTT, and commits to all of them
//! in a Merkle root (SHA-256) that `pjp-prover verify` recomputes.

use pjp_core::AsyncExecutor;
use pjp_gpu::CpuNtt;
use pjp_postgres::{PgJob, PgQueue};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::job::StoredProof;

/// The kind of the basic proofs of a tree.
pub(crate) const BASIC: &str = "basic";
/// The kind of a batch's aggregation job.
pub(crate) const AGGREGATE: &str = "aggregate";

/// An aggregation job's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AggregateJob {
    /// The batch it closes.
    pub(crate) aggregate: u64,
    /// Basic proofs it waits for.
    pub(crate) circuits: u64,
}

/// An aggregation's result: the Merkle root over its children's proofs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AggregateProof {
    /// The batch.
    pub(crate) aggregate: u64,
    /// The children's job ids, in the order of the leaves.
    pub(crate) children: Vec<i64>,
    /// SHA-256 Merkle root over the children's stored proofs, hex.
    pub(crate) root: String,
}

impl AggregateJob {
    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl AggregateProof {
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// The Merkle root (SHA-256, the last node paired with itself on an odd
/// level) over `leaves`, hex.
pub(crate) fn merkle_root(leaves: &[Vec<u8>]) -> String {
    let mut level: Vec<[u8; 32]> = leaves.iter().map(|l| Sha256::digest(l).into()).collect();
    if level.is_empty() {
        return String::new();
    }
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| {
                let mut hasher = Sha256::new();
                hasher.update(pair[0]);
                hasher.update(pair.get(1).unwrap_or(&pair[0]));
                hasher.finalize().into()
            })
            .collect();
    }
    level[0].iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks every child's proof and commits to them: the root of the proofs
/// it read, or why it could not.
pub(crate) async fn aggregate(queue: &PgQueue, parent: i64) -> Result<AggregateProof, String> {
    let children = queue.children(parent).await.map_err(|e| e.to_string())?;
    let mut leaves = Vec::with_capacity(children.len());
    for child in &children {
        if child.status != "succeeded" {
            return Err(format!("child {} is {}", child.id, child.status));
        }
        let bytes = queue.child_result(child).await.map_err(|e| e.to_string())?;
        leaves.push(bytes.to_vec());
    }
    let proofs = leaves.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let cpu = CpuNtt::new();
        proofs.iter().all(|bytes| {
            StoredProof::from_bytes(bytes).is_ok_and(|p| p.verify(&cpu).unwrap_or(false))
        })
    })
    .await
    .map_err(|e| e.to_string())?;
    if !checked {
        return Err(format!("a child proof of job {parent} does not verify"));
    }
    Ok(AggregateProof {
        aggregate: 0,
        children: children.iter().map(|c| c.id).collect(),
        root: merkle_root(&leaves),
    })
}

/// The aggregation executor of a fleet worker.
pub(crate) struct Aggregator {
    pub(crate) queue: PgQueue,
}

impl AsyncExecutor for Aggregator {
    type Input = bytes::Bytes;
    type Output = Vec<u8>;
    type Metadata = PgJob;
    type Error = String;

    async fn execute(&self, input: bytes::Bytes, meta: &PgJob) -> Result<Vec<u8>, String> {
        let job: AggregateJob = serde_json::from_slice(&input)
            .map_err(|e| format!("malformed aggregation job: {e}"))?;
        let mut proof = aggregate(&self.queue, meta.id).await?;
        if proof.children.len() as u64 != job.circuits {
            return Err(format!(
                "batch {}: {} children, expected {}",
                job.aggregate,
                proof.children.len(),
                job.circuits
            ));
        }
        proof.aggregate = job.aggregate;
        serde_json::to_vec(&proof).map_err(|e| e.to_string())
    }
}

/// The runner that closes batches.
pub(crate) type AggregationRunner = pjp_core::JobRunner<
    pjp_postgres::PgPicker,
    pjp_core::Async<Aggregator>,
    pjp_postgres::PgSaver<Vec<u8>, String>,
>;

/// The aggregation runner of a fleet worker: claims only `aggregate` jobs,
/// beside the proving pipeline (which claims the other kinds).
pub(crate) fn runner(
    worker: &pjp_postgres::PgWorker,
    queue: &str,
    exit_when_empty: bool,
) -> anyhow::Result<AggregationRunner> {
    let picker = worker
        .picker(queue)?
        .kinds([AGGREGATE])
        .exit_when_empty(exit_when_empty);
    let aggregator = Aggregator {
        queue: worker.queue().clone(),
    };
    Ok(
        pjp_core::JobRunner::builder_async(picker, aggregator, worker.saver())
            .stage("aggregate")
            .workers(2)
            .job_cancels(worker.job_cancels())
            .empty_backoff(pjp_core::BackoffPolicy::new(
                std::time::Duration::from_millis(1),
                std::time::Duration::from_millis(10),
            ))
            .build()?,
    )
}

#[cfg(test)]
mod tests {
    use super::merkle_root;

    #[test]
    fn the_root_depends_on_every_leaf_and_their_order() {
        let leaves: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 4]).collect();
        let root = merkle_root(&leaves);
        assert_eq!(root.len(), 64);
        assert_eq!(root, merkle_root(&leaves), "deterministic");
        let mut swapped = leaves.clone();
        swapped.swap(0, 1);
        assert_ne!(root, merkle_root(&swapped));
        let mut changed = leaves.clone();
        changed[4][0] ^= 1;
        assert_ne!(root, merkle_root(&changed));
        assert_eq!(merkle_root(&[]), "");
    }
}
