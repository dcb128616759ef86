//! Several worker processes on one queue, one killed with SIGKILL mid-run.
//!
//! The test binary starts copies of itself as the workers (running the
//! ignored `worker_process` test with the schema in its environment), so
//! every worker is a real process with its own connections and heartbeat.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::TestDb;
use pjp_core::{BackoffPolicy, Executor, JobContext, JobRunner, Shutdown};
use pjp_postgres::{NewJob, PgQueue, WorkerConfig};
use pjp_runtime_tokio::TokioRuntime;
use pjp_testkit::postgres::database_url;
use pjp_testkit::wait::{Wait, eventually_async};

const HEARTBEAT: Duration = Duration::from_millis(500);
const JOBS: u32 = 3_000;

/// Leases of 1.8 heartbeats: a live worker survives a heartbeat 400 ms late
/// (this test runs beside others on 2 cores), and a dead one's jobs are
/// rescued within 2 heartbeats of its last.
fn worker_config(id: &str) -> WorkerConfig {
    WorkerConfig::new(id)
        .heartbeat_interval(HEARTBEAT)
        .lease_ttl(HEARTBEAT * 9 / 5)
        .rescue_interval(HEARTBEAT / 10)
        .poll_interval(Duration::from_millis(200))
}

struct Spin;

impl Executor for Spin {
    type Input = Bytes;
    type Output = Bytes;
    type Error = String;

    fn execute(&self, input: Bytes, _job: &JobContext) -> Result<Bytes, String> {
        std::thread::sleep(Duration::from_millis(4));
        Ok(input)
    }
}

/// The worker process's body; does nothing unless started by the test below.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by three_workers_one_killed_every_job_once"]
async fn worker_process() {
    let (Ok(schema), Ok(id)) = (
        std::env::var("PJP_FLEET_SCHEMA"),
        std::env::var("PJP_FLEET_ID"),
    ) else {
        return;
    };
    let queue = PgQueue::builder(database_url())
        .schema(schema)
        .connect()
        .await
        .unwrap();
    let worker = queue.worker(worker_config(&id)).await.unwrap();
    let runner = JobRunner::builder(
        worker.picker("fleet").unwrap().exit_when_empty(true),
        Spin,
        worker.saver::<Bytes, String>(),
    )
    .workers(2)
    .prefetch(32)
    .pick_batch(16)
    .save_batch(16)
    .save_queue(32)
    .empty_backoff(BackoffPolicy::new(
        Duration::from_millis(1),
        Duration::from_millis(20),
    ))
    .job_cancels(worker.job_cancels())
    .build()
    .unwrap();
    let report = runner
        .run(&TokioRuntime::current(), Shutdown::new())
        .await
        .unwrap();
    println!(
        "worker {id}: succeeded {} fenced {}",
        report.counts.succeeded, report.counts.fenced
    );
}

struct Worker(Child);

impl Worker {
    fn start(schema: &str, id: &str) -> Self {
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "worker_process",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PJP_FLEET_SCHEMA", schema)
            .env("PJP_FLEET_ID", id)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Self(child)
    }

    /// Waits for the process to exit, polling (under a hang guard of
    /// `limit`).
    async fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let what = format!("worker {} to finish", self.0.id());
        Wait::new(&what)
            .limit(limit)
            .every(Duration::from_millis(20))
            .until_some(|| std::future::ready(self.0.try_wait().unwrap()))
            .await
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // By PID, never by name.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_one_killed_every_job_once() {
    let db = TestDb::new().await;
    db.queue
        .enqueue_many(
            (0..JOBS)
                .map(|i| NewJob::new("fleet", i.to_le_bytes().to_vec()))
                .collect(),
        )
        .await
        .unwrap();
    let t = db.table();
    let mut workers: Vec<Worker> = ["a", "b", "victim"]
        .iter()
        .map(|id| Worker::start(db.schema(), id))
        .collect();

    // Kill the victim once it has done some work and holds leases.
    Wait::new("the victim to hold leases mid-run")
        .limit(Duration::from_secs(60))
        .until_async(|| async {
            db.scalar(&format!("SELECT count(*) FROM {t} WHERE status = 'succeeded'")).await
            >= i64::from(JOBS) / 5
            && db
                .scalar(&format!(
                    "SELECT count(*) FROM {t} WHERE status = 'running' AND lease_owner = 'victim'"
                ))
                .await
                > 0
        })
        .await;
    let mut victim = workers.pop().unwrap();
    victim.0.kill().unwrap(); // SIGKILL
    let killed_at = Instant::now();
    victim.0.wait().unwrap();
    let stranded: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT id FROM {t} WHERE status = 'running' AND lease_owner = 'victim' ORDER BY id"
    ))
    .fetch_all(db.queue.pool())
    .await
    .unwrap();
    assert!(!stranded.is_empty(), "the victim died holding jobs");

    // Its jobs come back once their leases lapse (about 2 × the heartbeat
    // interval); the wait is a hang guard, the time is printed, not asserted
    // (a noisy machine would make it flaky).
    eventually_async("the victim's leases to be rescued", || async {
        db.scalar(&format!(
            "SELECT count(*) FROM {t} WHERE status = 'running' AND lease_owner = 'victim'"
        ))
        .await
            == 0
    })
    .await;
    let recovered = killed_at.elapsed();
    eprintln!("the victim's leases were rescued {recovered:?} after the kill");

    for worker in &mut workers {
        assert!(worker.wait(Duration::from_secs(120)).await.success());
    }
    let count = |sql: String| {
        let db = &db;
        async move { db.scalar(&sql).await }
    };
    assert_eq!(
        count(format!(
            "SELECT count(*) FROM {t} WHERE status = 'succeeded' AND result = payload"
        ))
        .await,
        i64::from(JOBS),
        "every job succeeded"
    );
    assert_eq!(
        count(format!("SELECT count(*) FROM {t} WHERE attempts > 0")).await,
        0,
        "the kill burned no attempt"
    );
    let ids = stranded
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    // A save the victim had already sent may still commit after the kill (the
    // server finishes a statement before it notices the closed socket); its
    // token was valid, so that job is done once, by the victim. Every other
    // stranded job lost its lease and was done by another worker.
    let rescued = count(format!(
        "SELECT count(*) FROM {t} WHERE id IN ({ids}) AND lost_leases >= 1"
    ))
    .await;
    let landed_late = count(format!(
        "SELECT count(*) FROM {t} WHERE id IN ({ids}) AND lost_leases = 0 AND token = 1"
    ))
    .await;
    assert_eq!(
        rescued + landed_late,
        stranded.len() as i64,
        "each stranded job was rescued, or finished by the victim's last save"
    );
    assert!(rescued > 0, "the victim died holding unsaved jobs");
    assert_eq!(
        count(format!(
            "SELECT count(*) FROM {t} WHERE token <> lost_leases + 1"
        ))
        .await,
        0,
        "every claim after a job's first is explained by a lost lease: none was claimed twice at once"
    );
    let others = count(format!(
        "SELECT count(*) FROM {t} WHERE lost_leases > 0 AND id NOT IN ({ids})"
    ))
    .await;
    if others > 0 {
        eprintln!("{others} job(s) of live workers lost a lease too (a heartbeat ran late)");
    }
    eprintln!(
        "{rescued} stranded jobs rescued {recovered:?} after the kill, {landed_late} saved by the victim's last statement (heartbeat {HEARTBEAT:?})"
    );
}
