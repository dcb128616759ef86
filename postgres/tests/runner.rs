//! The queue under a real `JobRunner`: poison jobs, broken blobs, connections
//! cut mid-run, the S3 path, and the testkit's conformance suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{TestDb, fast};
use pjp_core::{BackoffPolicy, Executor, JobContext, JobRunner, RunReport, Shutdown};
use pjp_postgres::{NewJob, PayloadStore, PgWorker};
use pjp_runtime_tokio::TokioRuntime;
use pjp_testkit::wait::Wait;

/// Echoes its input; panics on `poison`; counts executions.
#[derive(Clone, Default)]
struct Echo {
    runs: Arc<AtomicUsize>,
    spin: Duration,
}

impl Executor for Echo {
    type Input = Bytes;
    type Output = Bytes;
    type Error = String;

    fn execute(&self, input: Bytes, _job: &JobContext) -> Result<Bytes, String> {
        self.runs.fetch_add(1, Ordering::Relaxed);
        assert!(input.as_ref() != b"poison", "poison job");
        if !self.spin.is_zero() {
            std::thread::sleep(self.spin);
        }
        Ok(input)
    }
}

async fn run(worker: &PgWorker, queue: &str, exec: Echo) -> RunReport {
    let runner = JobRunner::builder(
        worker.picker(queue).unwrap().exit_when_empty(true),
        exec,
        worker.saver(),
    )
    .workers(2)
    .prefetch(64)
    .pick_batch(32)
    .save_batch(32)
    .save_queue(64)
    .empty_backoff(BackoffPolicy::new(
        Duration::from_millis(1),
        Duration::from_millis(10),
    ))
    .job_cancels(worker.job_cancels())
    .build()
    .unwrap();
    runner
        .run(&TokioRuntime::current(), Shutdown::new())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_job_dies_after_its_attempts_and_never_blocks_the_others() {
    let db = TestDb::new().await;
    let mut jobs: Vec<NewJob> = (0..200u32)
        .map(|i| NewJob::new("p", i.to_le_bytes().to_vec()))
        .collect();
    jobs.push(NewJob::new("p", b"poison".to_vec()).max_attempts(3));
    db.queue.enqueue_many(jobs).await.unwrap();
    let worker = db.queue.worker(fast("w")).await.unwrap();
    let exec = Echo::default();
    let report = run(&worker, "p", exec.clone()).await;
    assert_eq!(report.counts.succeeded, 200);
    assert_eq!(report.counts.panicked, 3, "one panic per attempt");
    let t = db.table();
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM {t} WHERE status = 'succeeded'"
        ))
        .await,
        200
    );
    let dead = db.queue.dead_jobs(None, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 3);
    assert!(dead[0].last_error.contains("poison job"), "{:?}", dead[0]);
    assert_eq!(exec.runs.load(Ordering::Relaxed), 203);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_corrupt_and_malformed_blobs_fail_their_job_only() {
    let dir = std::env::temp_dir().join(format!(
        "pjp-blobs-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let url = format!("file://{}", dir.display());
    let store = PayloadStore::open(&url).unwrap().inline_limit(16);
    let db = TestDb::with(|b| b.store(store)).await;
    let big = |tag: u8| vec![tag; 1024];
    let done = db
        .queue
        .enqueue_many((0..6u8).map(|i| NewJob::new("b", big(i))).collect())
        .await
        .unwrap();
    let key_of = |id: i64| {
        let db = &db;
        async move {
            sqlx::query_scalar::<_, String>(&format!(
                "SELECT payload_key FROM {} WHERE id = $1",
                db.table()
            ))
            .bind(id)
            .fetch_one(db.queue.pool())
            .await
            .unwrap()
        }
    };
    let missing = key_of(done[0].id).await;
    std::fs::remove_file(dir.join(&missing)).unwrap();
    let corrupt = key_of(done[1].id).await;
    std::fs::write(dir.join(&corrupt), b"not what was written").unwrap();
    db.exec(&format!(
        "UPDATE {} SET payload_key = 'a/../b' WHERE id = {}",
        db.table(),
        done[2].id
    ))
    .await;

    let worker = db.queue.worker(fast("w")).await.unwrap();
    let report = run(&worker, "b", Echo::default()).await;
    assert_eq!(report.counts.succeeded, 3, "the other jobs go on");
    for (n, needle) in [(0, missing.as_str()), (1, corrupt.as_str()), (2, "a/../b")] {
        let row = db.queue.job(done[n].id).await.unwrap().unwrap();
        let error = row.last_error.unwrap_or_default();
        assert_eq!(row.status, "dead", "job {n}: {error}");
        assert!(error.contains(needle), "names the key: {error}");
    }
    assert!(
        db.queue
            .job(done[1].id)
            .await
            .unwrap()
            .unwrap()
            .last_error
            .unwrap()
            .contains("corrupt")
    );
    // Large results went to the store too, and read back.
    assert_eq!(db.queue.result(done[3].id).await.unwrap().unwrap(), big(3));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cut_mid_run_lose_nothing_and_save_nothing_twice() {
    let app = format!("pjp-cut-{:x}", fastrand::u64(..));
    let db = TestDb::new().await;
    let worker_queue = db.handle(|b| b.application_name(&app)).await;
    let n = 3_000u32;
    db.queue
        .enqueue_many(
            (0..n)
                .map(|i| NewJob::new("cut", i.to_le_bytes().to_vec()))
                .collect(),
        )
        .await
        .unwrap();
    let worker = worker_queue.worker(fast("cut-w")).await.unwrap();
    let exec = Echo {
        spin: Duration::from_micros(500),
        ..Echo::default()
    };
    let running = {
        let worker = worker.clone();
        let exec = exec.clone();
        tokio::spawn(async move { run(&worker, "cut", exec).await })
    };
    let t = db.table();
    let cuts = Arc::new(AtomicUsize::new(0));
    for round in 1..=3 {
        let target = i64::from(n) * round / 4;
        Wait::new("progress before the cut")
            .limit(Duration::from_secs(60))
            .until_async(|| async {
                db.scalar(&format!(
                    "SELECT count(*) FROM {t} WHERE status = 'succeeded'"
                ))
                .await
                    >= target
            })
            .await;
        let killed = db
            .scalar(&format!(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                  WHERE application_name = '{app}') AS k"
            ))
            .await;
        cuts.fetch_add(usize::try_from(killed).unwrap(), Ordering::Relaxed);
    }
    let report = Wait::new("the run to finish")
        .limit(Duration::from_secs(120))
        .within(running)
        .await
        .unwrap();
    assert!(
        cuts.load(Ordering::Relaxed) >= 3,
        "connections were really cut"
    );
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM {t} WHERE status = 'succeeded'"
        ))
        .await,
        i64::from(n),
        "nothing lost"
    );
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM {t} WHERE result <> payload OR attempts > 0"
        ))
        .await,
        0
    );
    // Each job's result was accepted once: by the runner's count, the
    // saves that landed plus the ones fenced (a cut lease re-run elsewhere)
    // cover every execution.
    assert_eq!(report.counts.succeeded, u64::from(n), "{report:?}");
    assert_eq!(
        exec.runs.load(Ordering::Relaxed) as u64,
        report.counts.succeeded + report.counts.fenced + report.released.len() as u64,
        "{report:?}"
    );
}

/// moto's S3 server, started by the test on a free port, stopped by PID.
struct Moto {
    child: std::process::Child,
    port: u16,
}

impl Moto {
    fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let moto = Self { child, port };
        // Ready when it accepts connections; not within 15 s: none.
        Wait::new("moto_server to accept connections")
            .limit(Duration::from_secs(15))
            .every(Duration::from_millis(50))
            .try_until_some_blocking(|| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
            .ok()?;
        Some(moto)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_and_results_round_trip_through_s3() {
    let Some(moto) = Moto::start() else {
        assert!(
            std::env::var("CI").is_err(),
            "moto_server is missing: .ci/run installs it (pip install 'moto[server]')"
        );
        eprintln!("SKIPPED: moto_server not installed (pip install 'moto[server]')");
        return;
    };
    let endpoint = format!("http://127.0.0.1:{}", moto.port);
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&endpoint)
        .with_allow_http(true)
        .with_bucket_name("pjp")
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .unwrap();
    // moto starts empty: create the bucket.
    create_bucket(&endpoint, "pjp").await;
    let store = PayloadStore::new(Arc::new(store), "s3://pjp").inline_limit(64);
    let db = TestDb::with(|b| b.store(store)).await;
    let payloads: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 4096]).collect();
    let done = db
        .queue
        .enqueue_many(
            payloads
                .iter()
                .map(|p| NewJob::new("s3", p.clone()))
                .collect(),
        )
        .await
        .unwrap();
    let worker = db.queue.worker(fast("s3-w")).await.unwrap();
    let report = run(&worker, "s3", Echo::default()).await;
    assert_eq!(report.counts.succeeded, 20);
    for (job, payload) in done.iter().zip(&payloads) {
        assert_eq!(db.queue.result(job.id).await.unwrap().unwrap(), payload);
    }
    let in_store = db
        .scalar(&format!(
            "SELECT count(*) FROM {} WHERE payload_key IS NOT NULL AND result_key IS NOT NULL",
            db.table()
        ))
        .await;
    assert_eq!(in_store, 20, "both ends went through S3");
}

/// `PUT /bucket` with an unsigned request (moto accepts it).
async fn create_bucket(endpoint: &str, bucket: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "PUT /{bucket} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "create bucket: {reply}");
}
