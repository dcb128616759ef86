//! The reference prover as a tree: per batch, basic NTT proofs and one
//! aggregation over them. The aggregation job (kind `aggregate`) becomes
//! claimable when its last basic proof is saved, in the embedded queue as on
//! PostgreSQL; it commits to every child's stored proof in a Merkle root
//! (SHA-256). On a fleet it reads each proof back and checks it with the
//! inverse NTT, and `pjp-prover verify` recomputes the root; in the embedded
//! run the sink hashed (and sample-checked) each proof as it saved it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use pjp_core::boxed::{AnyMeta, BoxPicker, BoxSaver};
use pjp_core::memory::{QueueError, QueueMeta};
use pjp_core::{
    Async, AsyncExecutor, BackoffPolicy, ErrorClass, ExecError, JobCancels, JobContext, JobId,
    JobKind, JobMeta, JobResult, JobRunner, JobSaver,
};
use pjp_gpu::CpuNtt;
use pjp_postgres::{PgQueue, PgWorker};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::job::StoredProof;
use crate::store::{EmbeddedQueue, ResultStore};

/// The kind of the basic proofs of a tree.
pub const BASIC: &str = "basic";
/// The kind of a batch's aggregation job.
pub const AGGREGATE: &str = "aggregate";

/// Why an aggregation did not close its batch.
#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    /// The job or its children are wrong (a child not succeeded, a proof
    /// that does not verify): a failure of the job, which uses an attempt.
    #[error("{0}")]
    Invalid(String),
    /// Reading the children from the queue or its store failed.
    #[error("reading the children: {0}")]
    Unavailable(#[from] pjp_postgres::QueueError),
}

impl AggregateError {
    /// A failure of the infrastructure (a dropped connection, a killed
    /// backend, a store outage), not of the job: retried without an attempt.
    pub fn is_infrastructure(&self) -> bool {
        matches!(self, Self::Unavailable(e) if e.class() == ErrorClass::Transient)
    }
}

/// An aggregation job's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregateJob {
    /// The batch it closes.
    pub aggregate: u64,
    /// Basic proofs it waits for.
    pub circuits: u64,
}

/// An aggregation's result: the Merkle root over its children's proofs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregateProof {
    /// The batch.
    pub aggregate: u64,
    /// The children's job ids, in the order of the leaves.
    pub children: Vec<i64>,
    /// SHA-256 Merkle root over the children's stored proofs, hex.
    pub root: String,
}

impl AggregateJob {
    /// The proof as JSON, as it is stored.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl AggregateProof {
    /// A stored proof read back; `None` when it is not one.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// The Merkle root (SHA-256, the last node paired with itself on an odd
/// level) over `leaves`, hex.
pub fn merkle_root(leaves: &[Vec<u8>]) -> String {
    merkle_root_of(leaves.iter().map(|l| Sha256::digest(l).into()).collect())
}

/// The same root from the leaves' digests (SHA-256 of each stored proof).
pub fn merkle_root_of(mut level: Vec<[u8; 32]>) -> String {
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
pub async fn aggregate(queue: &PgQueue, parent: i64) -> Result<AggregateProof, AggregateError> {
    let children = queue.children(parent).await?;
    let mut leaves = Vec::with_capacity(children.len());
    for child in &children {
        if child.status != "succeeded" {
            return Err(AggregateError::Invalid(format!(
                "child {} is {}",
                child.id, child.status
            )));
        }
        let bytes = queue.child_result(child).await?;
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
    .map_err(|e| AggregateError::Invalid(e.to_string()))?;
    if !checked {
        return Err(AggregateError::Invalid(format!(
            "a child proof of job {parent} does not verify"
        )));
    }
    Ok(AggregateProof {
        aggregate: 0,
        children: children.iter().map(|c| c.id).collect(),
        root: merkle_root(&leaves),
    })
}

/// Where an aggregation finds its children's proofs.
pub enum Children {
    /// A fleet: the children's rows on PostgreSQL, their proofs inline or
    /// in the object store; each one is checked again with the inverse NTT.
    Fleet(PgQueue),
    /// The embedded run: the children in the in-process queue, their leaves
    /// from the run's result store (each proof was hashed, and checked if
    /// in the sample, when it was saved; a rejected one failed its batch).
    Embedded {
        /// The in-process queue the batch is in.
        queue: EmbeddedQueue,
        /// The run's results, holding each proof's leaf.
        store: Arc<ResultStore>,
    },
}

impl Children {
    /// The root over `parent`'s children, or why there is none.
    async fn aggregate(&self, parent: JobId) -> Result<AggregateProof, AggregateError> {
        match self {
            Self::Fleet(queue) => {
                let id = i64::try_from(parent.get())
                    .map_err(|e| AggregateError::Invalid(e.to_string()))?;
                aggregate(queue, id).await
            }
            Self::Embedded { queue, store } => {
                let children = queue.children(parent);
                let leaves = store
                    .take_leaves(&children)
                    .map_err(AggregateError::Invalid)?;
                Ok(AggregateProof {
                    aggregate: 0,
                    children: children
                        .iter()
                        .map(|c| i64::try_from(c.get()).unwrap_or(i64::MAX))
                        .collect(),
                    root: merkle_root_of(leaves),
                })
            }
        }
    }
}

/// The aggregation executor: closes one batch.
pub struct Aggregator {
    /// Where the batch's proofs are.
    pub children: Children,
}

impl AsyncExecutor for Aggregator {
    type Input = Bytes;
    type Output = Vec<u8>;
    type Error = AggregateError;

    async fn execute(&self, input: Bytes, context: &JobContext) -> Result<Vec<u8>, AggregateError> {
        let job: AggregateJob = serde_json::from_slice(&input)
            .map_err(|e| AggregateError::Invalid(format!("malformed aggregation job: {e}")))?;
        let mut proof = self.children.aggregate(context.id()).await?;
        if proof.children.len() as u64 != job.circuits {
            return Err(AggregateError::Invalid(format!(
                "batch {}: {} children, expected {}",
                job.aggregate,
                proof.children.len(),
                job.circuits
            )));
        }
        proof.aggregate = job.aggregate;
        serde_json::to_vec(&proof).map_err(|e| AggregateError::Invalid(e.to_string()))
    }
}

/// Why an aggregation runner could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// The runner's settings were refused.
    #[error(transparent)]
    Build(#[from] pjp_core::ConfigError),
    /// The PostgreSQL picker could not be made (a bad queue name).
    #[error(transparent)]
    Queue(#[from] pjp_postgres::QueueError),
}

/// The runner that closes batches.
pub type AggregationRunner =
    JobRunner<BoxPicker<Bytes>, Async<Aggregator>, BoxSaver<Vec<u8>, AggregateError>>;

/// The aggregation runner: claims only `aggregate` jobs (`picker`), beside
/// the proving pipeline (which claims the other kinds).
pub fn runner(
    picker: BoxPicker<Bytes>,
    children: Children,
    saver: BoxSaver<Vec<u8>, AggregateError>,
    cancels: JobCancels,
) -> Result<AggregationRunner, RunnerError> {
    Ok(
        JobRunner::builder_async(picker, Aggregator { children }, saver)
            .stage("aggregate")
            .workers(2)
            .job_cancels(cancels)
            // A batch closes within a few ms of its last proof's save.
            .empty_backoff(BackoffPolicy::new(
                Duration::from_millis(1),
                Duration::from_millis(10),
            ))
            .build()?,
    )
}

/// The fleet worker's aggregation runner: `aggregate` jobs from PostgreSQL.
pub fn fleet_runner(
    worker: &PgWorker,
    queue: &str,
    exit_when_empty: bool,
) -> Result<AggregationRunner, RunnerError> {
    let picker = worker
        .picker(queue)?
        .kinds([AGGREGATE])
        .exit_when_empty(exit_when_empty);
    runner(
        BoxPicker::new(picker),
        Children::Fleet(worker.queue().clone()),
        fleet_saver(worker),
        worker.job_cancels(),
    )
}

/// The fleet's aggregation saver. A database or store error while reading
/// the children is the infrastructure's failure, not the batch's: the job is
/// queued again without using an attempt.
fn fleet_saver(worker: &PgWorker) -> BoxSaver<Vec<u8>, AggregateError> {
    BoxSaver::new(
        worker
            .saver::<Vec<u8>, AggregateError>()
            .infrastructure_if(|e| matches!(e, ExecError::Failed(a) if a.is_infrastructure())),
    )
}

/// What the embedded run's aggregations closed: each batch's root.
#[derive(Debug, Default)]
pub struct Roots {
    closed: Mutex<BTreeMap<u64, String>>,
}

impl Roots {
    /// The root of every closed batch, by batch.
    pub fn closed(&self) -> BTreeMap<u64, String> {
        self.closed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The embedded run's aggregation saver: notes the batch's root, then
/// settles the job in the in-process queue.
pub struct RootSaver {
    /// The in-process queue the jobs are settled in.
    pub queue: EmbeddedQueue,
    /// Where each closed batch's root is noted.
    pub roots: Arc<Roots>,
}

impl JobSaver for RootSaver {
    type Output = Vec<u8>;
    type Failure = AggregateError;
    type Metadata = AnyMeta;
    type Error = QueueError;

    async fn save(
        &self,
        result: &JobResult<Vec<u8>, AggregateError>,
        meta: &AnyMeta,
    ) -> Result<(), QueueError> {
        if let Ok(bytes) = result
            && let Some(proof) = AggregateProof::from_bytes(bytes)
        {
            self.roots
                .closed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(proof.aggregate, proof.root);
        }
        let settled: JobResult<(), String> = result
            .as_ref()
            .map(|_| ())
            .map_err(|e| e.as_ref().map(ToString::to_string));
        let Some(meta) = meta.downcast_ref::<QueueMeta>() else {
            return Err(QueueError::UnknownJob(meta.job_id()));
        };
        self.queue.saver().save(&settled, meta).await
    }

    fn classify(&self, error: &QueueError) -> ErrorClass {
        error.class()
    }
}

/// The embedded run's aggregation runner.
pub fn embedded_runner(
    queue: &EmbeddedQueue,
    store: Arc<ResultStore>,
    roots: Arc<Roots>,
) -> Result<AggregationRunner, RunnerError> {
    let picker = queue.picker().kinds([kind(AGGREGATE)]);
    runner(
        BoxPicker::new(picker),
        Children::Embedded {
            queue: queue.clone(),
            store,
        },
        BoxSaver::new(RootSaver {
            queue: queue.clone(),
            roots,
        }),
        JobCancels::new(),
    )
}

/// `name` as a [`JobKind`] (this prover's kinds are short constants).
pub fn kind(name: &str) -> JobKind {
    JobKind::new(name).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Proof, ProofJob};
    use pjp_core::memory::{JobOptions, JobStatus};
    use pjp_core::{Executor, JobContext, JobPicker, Picked};

    /// A tree of three proofs in the embedded queue, proved and saved
    /// through the run's store: the aggregation's root is the Merkle root
    /// over the proofs' stored form, the same root a fleet computes.
    #[tokio::test]
    async fn an_embedded_aggregation_commits_to_its_childrens_stored_proofs() -> anyhow::Result<()>
    {
        let queue = EmbeddedQueue::new();
        let job = |n| ProofJob {
            job: n,
            log_n: 4,
            batch: 2,
            seed: 5,
        };
        let parent = AggregateJob {
            aggregate: 7,
            circuits: 3,
        };
        let (parent, children) = queue.push_tree(
            (
                Bytes::from(parent.encode()),
                JobOptions::new().kind(kind(AGGREGATE)),
            ),
            (0..3)
                .map(|n| (job(n).encode(), JobOptions::new().kind(kind(BASIC))))
                .collect(),
            None,
        );
        queue.close();
        let store = Arc::new(ResultStore::new(4, 0).settling(queue.clone()));
        let ntt = pjp_gpu::NttExecutor::cpu();
        let Picked::Some(picked) = queue
            .picker()
            .except_kinds([kind(AGGREGATE)])
            .pick_many(9)
            .await?
        else {
            panic!("three basic jobs");
        };
        let mut stored = Vec::new();
        for picked in picked {
            let job = ProofJob::decode(&picked.input)?;
            let meta = AnyMeta::new(picked.meta);
            let proof = Proof {
                job,
                output: ntt.execute(job.ntt_job(), &JobContext::of(&meta))?,
            };
            stored.push(proof.to_bytes());
            assert_eq!(
                queue.state(parent).map(|s| s.status),
                Some(JobStatus::Waiting)
            );
            store.save(&Ok(proof), &meta).await?;
        }
        // The last save made the aggregation claimable.
        let aggregations = queue.picker().kinds([kind(AGGREGATE)]);
        let Picked::Some(aggregation) = aggregations.pick().await? else {
            panic!("the aggregation is claimable");
        };
        let aggregator = Aggregator {
            children: Children::Embedded {
                queue: queue.clone(),
                store: Arc::clone(&store),
            },
        };
        let context = JobContext::of(&aggregation.meta);
        let bytes = aggregator
            .execute(aggregation.input, &context)
            .await
            .map_err(anyhow::Error::msg)?;
        let proof = AggregateProof::from_bytes(&bytes).expect("an aggregate proof");
        assert_eq!(proof.aggregate, 7);
        assert_eq!(proof.root, merkle_root(&stored));
        let ids: Vec<i64> = children.iter().map(|c| c.get() as i64).collect();
        assert_eq!(proof.children, ids);
        // The leaves were taken: a second aggregation over them is refused.
        let again = aggregator
            .execute(Bytes::from(parent_bytes()), &context)
            .await;
        assert!(again.is_err_and(|e| e.to_string().contains("has no proof")));
        Ok(())
    }

    fn parent_bytes() -> Vec<u8> {
        AggregateJob {
            aggregate: 7,
            circuits: 3,
        }
        .encode()
    }

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

    /// An aggregation whose reads of its children fail because the database
    /// went away (a cut connection, as `pg_terminate_backend` or a restart
    /// gives) uses no attempt: the job is queued again, counted as an
    /// infrastructure retry.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_aggregation_cut_off_from_the_database_uses_no_attempt() -> anyhow::Result<()> {
        use pjp_postgres::{NewJob, WorkerConfig};
        let url = std::env::var("PJP_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_owned());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let schema = format!("t_agg_infra_{}_{nanos}", std::process::id());
        let queue = PgQueue::builder(&url).schema(&schema).connect().await?;
        queue.migrate().await?;
        let job = AggregateJob {
            aggregate: 0,
            circuits: 1,
        };
        let tree = queue
            .enqueue_tree(
                NewJob::new("q", serde_json::to_vec(&job)?).kind(AGGREGATE),
                vec![NewJob::new("q", b"child".to_vec()).kind(BASIC)],
            )
            .await?;
        let worker = queue.worker(WorkerConfig::new("w")).await?;
        let basic = worker.picker("q")?.kinds([BASIC]);
        let Picked::Some(children) = basic.pick_many(1).await? else {
            anyhow::bail!("no child to claim");
        };
        let saver = worker.saver::<Vec<u8>, String>();
        saver
            .save(&Ok(b"proof".to_vec()), &children[0].meta)
            .await?;

        // A handle on the same queue whose connection is then cut for good.
        let parsed = url::Url::parse(&url)?;
        let upstream = format!(
            "{}:{}",
            parsed.host_str().unwrap_or("127.0.0.1"),
            parsed.port().unwrap_or(5432)
        )
        .parse()?;
        let proxy = pjp_testkit::LatencyProxy::start(upstream, Duration::ZERO).await?;
        let mut via = parsed.clone();
        via.set_host(Some(&proxy.addr().ip().to_string()))?;
        let _ = via.set_port(Some(proxy.addr().port()));
        let cut_off = PgQueue::builder(via.as_str())
            .schema(&schema)
            .connect()
            .await?;
        proxy.refuse(true);
        proxy.cut();

        let aggregations = worker.picker("q")?.kinds([AGGREGATE]);
        let Picked::Some(parents) = aggregations.pick_many(1).await? else {
            anyhow::bail!("the aggregation is not claimable");
        };
        let parent = &parents[0];
        let executor = Aggregator {
            children: Children::Fleet(cut_off),
        };
        let failed = executor
            .execute(parent.input.clone(), &JobContext::of(&parent.meta))
            .await;
        let error = match failed {
            Err(error) => error,
            Ok(_) => anyhow::bail!("the aggregation read its children through a cut link"),
        };
        assert!(error.is_infrastructure(), "{error}");
        let saver = fleet_saver(&worker);
        saver
            .save(&Err(ExecError::Failed(error)), &AnyMeta::new(parent.meta))
            .await?;
        let (status, attempts, infra): (String, i32, i32) = sqlx::query_as(&format!(
            "SELECT status::text, attempts, infra_retries FROM {schema}.jobs WHERE id = $1"
        ))
        .bind(tree.parent)
        .fetch_one(queue.pool())
        .await?;
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(queue.pool())
            .await?;
        assert_eq!((status.as_str(), attempts, infra), ("queued", 0, 1));
        Ok(())
    }
}
