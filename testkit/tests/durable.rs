//! The durable-queue contract against the in-memory model, and against a
//! model with a broken heartbeat (the suite must catch it).

use std::time::Duration;

use pjp_core::JobId;
use pjp_testkit::durable::{
    Case, DurableQueue, JobSpec, JobView, ModelQueue, ModelWorker, Outcome, Write,
    check_durable_queue,
};
use pjp_testkit::{QueueError, QueueMeta};

#[tokio::test]
async fn the_model_passes_every_case() {
    let report = check_durable_queue(async || ModelQueue::new())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.passed, Case::ALL.to_vec());
}

/// The model, but its heartbeat extends nothing and its stale saves land.
struct Forgetful(ModelQueue);

impl DurableQueue for Forgetful {
    type Worker = ModelWorker;
    type Claim = QueueMeta;
    type Error = QueueError;

    fn lease_ttl(&self) -> Duration {
        self.0.lease_ttl()
    }
    fn retry_max(&self) -> Duration {
        self.0.retry_max()
    }
    async fn enqueue(&self, spec: JobSpec) -> Result<JobId, QueueError> {
        self.0.enqueue(spec).await
    }
    async fn worker(&self, name: &str) -> Result<ModelWorker, QueueError> {
        self.0.worker(name).await
    }
    async fn claim(&self, worker: &ModelWorker, max: usize) -> Result<Vec<QueueMeta>, QueueError> {
        self.0.claim(worker, max).await
    }
    fn job(claim: &QueueMeta) -> JobId {
        claim.id
    }
    async fn heartbeat(&self, _worker: &ModelWorker) -> Result<usize, QueueError> {
        Ok(1)
    }
    async fn complete(
        &self,
        worker: &ModelWorker,
        claim: &QueueMeta,
        outcome: Outcome,
    ) -> Result<Write, QueueError> {
        self.0.complete(worker, claim, outcome).await?;
        Ok(Write::Done)
    }
    async fn release(&self, worker: &ModelWorker, claim: &QueueMeta) -> Result<(), QueueError> {
        self.0.release(worker, claim).await
    }
    async fn advance(&self, by: Duration) -> Result<(), QueueError> {
        self.0.advance(by).await
    }
    async fn rescue(&self) -> Result<u64, QueueError> {
        self.0.rescue().await
    }
    async fn view(&self, job: JobId) -> Result<JobView, QueueError> {
        self.0.view(job).await
    }
}

#[tokio::test]
async fn a_queue_that_breaks_the_contract_fails_the_cases_it_breaks() {
    let error = check_durable_queue(async || Forgetful(ModelQueue::new()))
        .await
        .expect_err("a forgetful heartbeat must fail");
    let failed: Vec<Case> = error.failures.iter().map(|(case, _)| *case).collect();
    assert!(failed.contains(&Case::HeartbeatKeepsLease), "{error}");
    assert!(failed.contains(&Case::StaleWritesFenced), "{error}");
    assert!(error.passed.contains(&Case::PriorityOrder), "{error}");
}
