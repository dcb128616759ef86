//! The durable-queue contract's adapter: the real queue as pjp-testkit's
//! `DurableQueue`, straight to the server or through a transaction pooler
//! (`postgres/tests/durable.rs`, `postgres/tests/pooler.rs`).
//!
//! Time is moved by shifting the stored deadlines (`lease_expires_at`,
//! `run_after`) back, so no case waits on the clock. Background heartbeats
//! and rescues are set an hour apart: the suite drives them step by step.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use super::TestDb;
use pjp_core::memory::JobStatus;
use pjp_core::{ErrorClass, ExecError, JobId, JobPicker, JobSaver, ReleaseReason};
use pjp_postgres::{NewJob, PgJob, PgQueue, PgSaver, PgWorker, QueueError, WorkerConfig};
use pjp_testkit::durable::{DurableQueue, JobSpec, JobView, Outcome, Write};

const QUEUE: &str = "conformance";

/// The queue under test: its schema (reached straight, to move time), and
/// the handle the workers, the producer and the reads go through (the same
/// connection, or one through a pooler).
pub struct PgUnderTest {
    pub db: TestDb,
    pub queue: PgQueue,
    rescuer: PgWorker,
}

pub struct Worker {
    worker: PgWorker,
    picker: pjp_postgres::PgPicker,
    saver: PgSaver<Vec<u8>, String>,
}

fn config(name: &str) -> WorkerConfig {
    let hour = Duration::from_secs(3600);
    WorkerConfig::new(name)
        .heartbeat_interval(hour)
        .lease_ttl(hour * 2)
        .rescue_interval(hour)
        .poll_interval(Duration::from_millis(5))
        .retry_backoff(Duration::from_secs(1), Duration::from_secs(60))
}

impl PgUnderTest {
    /// Straight to the server.
    pub async fn new() -> Self {
        let db = TestDb::new().await;
        let queue = db.queue.clone();
        Self::on(db, queue).await
    }

    /// Workers, producer and reads on `queue` (a handle on `db`'s schema).
    pub async fn on(db: TestDb, queue: PgQueue) -> Self {
        let rescuer = queue.worker(config("rescuer")).await.unwrap();
        Self { db, queue, rescuer }
    }
}

impl DurableQueue for PgUnderTest {
    type Worker = Worker;
    type Claim = PgJob;
    type Error = QueueError;

    fn lease_ttl(&self) -> Duration {
        Duration::from_secs(7200)
    }

    fn retry_max(&self) -> Duration {
        Duration::from_secs(60)
    }

    async fn enqueue(&self, spec: JobSpec) -> Result<JobId, QueueError> {
        let job = NewJob::new(QUEUE, Vec::new())
            .priority(spec.priority)
            .run_after(spec.delay)
            .max_attempts(spec.max_attempts)
            .max_lost_leases(spec.max_lost_leases);
        let enqueued = self.queue.enqueue(job).await?;
        Ok(JobId::new(u64::try_from(enqueued.id).unwrap()))
    }

    async fn worker(&self, name: &str) -> Result<Worker, QueueError> {
        let worker = self.queue.worker(config(name)).await?;
        let picker = worker.picker(QUEUE)?;
        let saver = worker.saver::<Vec<u8>, String>().permanent_if(
            |e| matches!(e, ExecError::Failed(message) if message.starts_with("permanent")),
        );
        Ok(Worker {
            worker,
            picker,
            saver,
        })
    }

    async fn claim(&self, worker: &Worker, max: usize) -> Result<Vec<PgJob>, QueueError> {
        Ok(match worker.picker.pick_many(max).await? {
            pjp_core::Picked::Some(jobs) => jobs.into_iter().map(|j| j.meta).collect(),
            _ => Vec::new(),
        })
    }

    fn job(claim: &PgJob) -> JobId {
        JobId::new(u64::try_from(claim.id).unwrap())
    }

    async fn heartbeat(&self, worker: &Worker) -> Result<usize, QueueError> {
        worker.worker.heartbeat_now().await
    }

    async fn complete(
        &self,
        worker: &Worker,
        claim: &PgJob,
        outcome: Outcome,
    ) -> Result<Write, QueueError> {
        let result = match outcome {
            Outcome::Succeeded => Ok(b"done".to_vec()),
            Outcome::Retry => Err(ExecError::Failed("transient".to_owned())),
            Outcome::Failed => Err(ExecError::Failed("permanent".to_owned())),
            Outcome::Cancelled => Err(ExecError::Cancelled),
        };
        match worker.saver.save(&result, claim).await {
            Ok(()) => Ok(Write::Done),
            Err(error) if worker.saver.classify(&error) == ErrorClass::LostClaim => {
                Ok(Write::Fenced)
            }
            Err(error) => Err(error),
        }
    }

    async fn release(&self, worker: &Worker, claim: &PgJob) -> Result<(), QueueError> {
        worker.picker.release(*claim, ReleaseReason::Abandon).await
    }

    async fn advance(&self, by: Duration) -> Result<(), QueueError> {
        let t = self.db.table();
        sqlx::query(&format!(
            "UPDATE {t} SET lease_expires_at = lease_expires_at - make_interval(secs => $1),
                            run_after = run_after - make_interval(secs => $1)"
        ))
        .bind(by.as_secs_f64())
        .execute(self.db.queue.pool())
        .await
        .map_err(QueueError::Database)?;
        Ok(())
    }

    async fn rescue(&self) -> Result<u64, QueueError> {
        self.rescuer.rescue_now().await
    }

    async fn view(&self, job: JobId) -> Result<JobView, QueueError> {
        let id = i64::try_from(job.get()).unwrap();
        let row = self.queue.job(id).await?.expect("the job exists");
        let status = match row.status.as_str() {
            "queued" => JobStatus::Queued,
            "running" => JobStatus::Running,
            "succeeded" => JobStatus::Succeeded,
            "failed" => JobStatus::Failed,
            "dead" => JobStatus::Dead,
            other => panic!("status {other} has no model counterpart"),
        };
        Ok(JobView {
            status,
            attempts: u32::try_from(row.attempts).unwrap(),
            lost_leases: u32::try_from(row.lost_leases).unwrap(),
        })
    }
}
