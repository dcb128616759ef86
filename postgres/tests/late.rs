//! Late results: a claim whose lease expired but that finishes first has its
//! success accepted, exactly once, while the job has not finished; the claim
//! holding the job then loses it. Stale failures, releases and heartbeats are
//! still rejected, and with `LateResults::Reject` a stale success is too.
//!
//! Only the first test waits on real leases (through a link it cuts); the
//! others expire leases by moving their deadlines back and rescue by hand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::TestDb;
use pjp_core::runner::LateResults;
use pjp_core::{
    ErrorClass, ExecError, Executor, JobContext, JobPicker, JobRunner, JobSaver, Picked,
    ReleaseReason, Shutdown,
};
use pjp_postgres::{NewJob, PgJob, PgQueue, PgSaver, PgWorker, QueueError, WorkerConfig};
use pjp_runtime_tokio::TokioRuntime;
use pjp_testkit::LatencyProxy;
use pjp_testkit::wait::{eventually_async, within};

const QUEUE: &str = "proofs";

/// A proxy to the test server, and a handle on `db`'s schema through it.
async fn through_proxy(db: &TestDb) -> (LatencyProxy, PgQueue) {
    let url = url::Url::parse(db.url()).unwrap();
    let upstream: SocketAddr =
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
            .parse()
            .unwrap();
    let proxy = LatencyProxy::start(upstream, Duration::ZERO).await.unwrap();
    let mut via = url.clone();
    via.set_host(Some(&proxy.addr().ip().to_string())).unwrap();
    via.set_port(Some(proxy.addr().port())).unwrap();
    let queue = PgQueue::builder(via.as_str())
        .schema(db.schema())
        .max_connections(2)
        .connect()
        .await
        .unwrap();
    (proxy, queue)
}

/// The slow worker's proof: it tells the test it started, waits until the
/// job has been claimed again elsewhere, then works until `work` has passed
/// since it started (ten lease times), and tells the test it finished.
struct SlowProof {
    work: Duration,
    runs: Arc<AtomicU32>,
    started: Mutex<mpsc::Sender<()>>,
    reclaimed: Mutex<mpsc::Receiver<()>>,
    finished: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl Executor for SlowProof {
    type Input = bytes::Bytes;
    type Output = Vec<u8>;
    type Error = String;

    fn execute(&self, _input: bytes::Bytes, job: &JobContext) -> Result<Vec<u8>, String> {
        let began = Instant::now();
        self.runs.fetch_add(1, Ordering::SeqCst);
        let _ = self.started.lock().unwrap().send(());
        // Bounded, so that a broken queue fails the test instead of hanging it.
        let _ = self
            .reclaimed
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(60));
        // The proof's work.
        std::thread::sleep(self.work.saturating_sub(began.elapsed()));
        if let Some(finished) = self.finished.lock().unwrap().take() {
            let _ = finished.send(());
        }
        if job.is_cancelled() {
            return Err("cancelled".to_owned());
        }
        Ok(b"slow".to_vec())
    }
}

/// A proof that is expected to be cancelled (the second worker's proof of
/// the same job, or a late one): it tells the test it started, then works in
/// slices, checking for cancellation between them, for as long as a proof
/// takes (a minute here: it should be cancelled long before).
struct LongProof {
    runs: Arc<AtomicU32>,
    started: Mutex<mpsc::Sender<()>>,
    cancelled: Arc<AtomicU32>,
}

impl Executor for LongProof {
    type Input = bytes::Bytes;
    type Output = Vec<u8>;
    type Error = String;

    fn execute(&self, _input: bytes::Bytes, job: &JobContext) -> Result<Vec<u8>, String> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let _ = self.started.lock().unwrap().send(());
        for _ in 0..6_000 {
            if job.is_cancelled() {
                self.cancelled.fetch_add(1, Ordering::SeqCst);
                return Err("cancelled".to_owned());
            }
            std::thread::sleep(Duration::from_millis(10)); // a slice of the proof
        }
        Ok(b"long".to_vec())
    }
}

/// Two workers, each with a one-worker runner that wires its heartbeat's
/// cancellations. The first holds a 200 ms lease and loses its link to the
/// database right after it starts the job (its heartbeat cannot reach the
/// database); the second rescues the lease and claims the job again. The
/// first worker's proof takes 2 s, ten lease times, and finishes while the
/// second one runs: it is saved, once, the second execution is cancelled by
/// its heartbeat, and the job is never claimed a third time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_proof_outliving_its_lease_ten_times_is_saved_once() {
    outlived_lease(Link::CutUntilTheProofEnds).await;
}

/// The same, but the first worker's link comes back while its proof still
/// runs: its heartbeat finds the lease lost to the second worker, and lets
/// the proof go on (its success can still be accepted) instead of
/// cancelling it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_heartbeat_that_finds_its_lease_lost_lets_the_proof_finish_late() {
    outlived_lease(Link::BackWhileTheProofRuns).await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    CutUntilTheProofEnds,
    BackWhileTheProofRuns,
}

async fn outlived_lease(link_back: Link) {
    let db = TestDb::new().await;
    let id = db
        .queue
        .enqueue(NewJob::new(QUEUE, b"circuit".to_vec()).max_lost_leases(10))
        .await
        .unwrap()
        .id;
    let lease = Duration::from_millis(200);
    let runs = Arc::new(AtomicU32::new(0));
    let runtime = TokioRuntime::current();

    // The slow worker, behind a link the test cuts.
    let (link, slow_queue) = through_proxy(&db).await;
    let slow = slow_queue
        .worker(
            WorkerConfig::new("slow")
                .heartbeat_interval(Duration::from_millis(50))
                .lease_ttl(lease)
                .rescue_interval(Duration::from_millis(50))
                .poll_interval(Duration::from_millis(50)),
        )
        .await
        .unwrap();
    let (slow_started, slow_began) = mpsc::channel();
    let (reclaimed, reclaimed_rx) = mpsc::channel();
    let (finished, slow_finished) = tokio::sync::oneshot::channel();
    let proof = SlowProof {
        work: lease * 10,
        runs: Arc::clone(&runs),
        started: Mutex::new(slow_started),
        reclaimed: Mutex::new(reclaimed_rx),
        finished: Mutex::new(Some(finished)),
    };
    let slow_runner = JobRunner::builder(
        slow.picker(QUEUE).unwrap().exit_when_empty(true),
        proof,
        slow.saver::<Vec<u8>, String>(),
    )
    .workers(1)
    .job_cancels(slow.job_cancels())
    .build()
    .unwrap();
    let slow_run = tokio::spawn({
        let runtime = runtime.clone();
        async move { slow_runner.run(&runtime, Shutdown::new()).await }
    });
    let slow_began = tokio::task::spawn_blocking(move || slow_began.recv());
    within("the slow worker starts the job", slow_began)
        .await
        .unwrap()
        .unwrap();
    // Its link to the database goes: no heartbeat reaches it from now on.
    link.refuse(true);
    link.cut();

    // A healthy worker rescues the expired lease and claims the job again.
    let live = db
        .queue
        .worker(
            WorkerConfig::new("live")
                .heartbeat_interval(Duration::from_millis(50))
                .lease_ttl(Duration::from_secs(2))
                .rescue_interval(Duration::from_millis(50))
                .poll_interval(Duration::from_millis(50)),
        )
        .await
        .unwrap();
    let (live_started, live_began) = mpsc::channel();
    let cancelled = Arc::new(AtomicU32::new(0));
    let long = LongProof {
        runs: Arc::clone(&runs),
        started: Mutex::new(live_started),
        cancelled: Arc::clone(&cancelled),
    };
    let live_runner = JobRunner::builder(
        live.picker(QUEUE).unwrap().exit_when_empty(true),
        long,
        live.saver::<Vec<u8>, String>(),
    )
    .workers(1)
    .job_cancels(live.job_cancels())
    .build()
    .unwrap();
    let live_run = tokio::spawn({
        let runtime = runtime.clone();
        async move { live_runner.run(&runtime, Shutdown::new()).await }
    });
    // Whichever worker rescues in the background, the lease is rescued:
    // the test rescues too, until the slow worker no longer holds the job.
    let table = db.table();
    let slow_holds = format!(
        "SELECT (status = 'running' AND lease_owner = 'slow')::int::bigint FROM {table} WHERE id = {id}"
    );
    eventually_async("the slow worker's lease expires and is rescued", || async {
        let _ = live.rescue_now().await;
        db.scalar(&slow_holds).await == 0
    })
    .await;
    let live_began = tokio::task::spawn_blocking(move || live_began.recv());
    within("the live worker claims the job again", live_began)
        .await
        .unwrap()
        .unwrap();
    if link_back == Link::BackWhileTheProofRuns {
        link.refuse(false);
        eventually_async(
            "the slow worker's heartbeat finds its lease lost",
            || async { slow.stats().lost_leases == 1 },
        )
        .await;
    }
    reclaimed.send(()).unwrap();

    // The slow proof finishes while the live worker runs the job; then the
    // link comes back (if it is not back yet) and its save (retried by the
    // runner) lands.
    within("the slow proof finishes", slow_finished)
        .await
        .unwrap();
    link.refuse(false);

    let slow_report = within("the slow runner", slow_run).await.unwrap().unwrap();
    let live_report = within("the live runner", live_run).await.unwrap().unwrap();

    assert_eq!(
        (
            slow_report.counts.succeeded,
            slow_report.counts.late_accepted,
            slow_report.counts.fenced
        ),
        (1, 1, 0),
        "{slow_report:?}"
    );
    assert_eq!(slow_report.unaccounted(), 0);
    assert_eq!(slow.stats().late_accepted, 1, "{:?}", slow.stats());
    // The live worker's execution was cancelled by its heartbeat, and its
    // save of that was fenced: the job was no longer its to hand back.
    assert_eq!(cancelled.load(Ordering::SeqCst), 1);
    assert_eq!(
        (
            live_report.counts.succeeded,
            live_report.counts.late_accepted,
            live_report.counts.fenced
        ),
        (0, 0, 1),
        "{live_report:?}"
    );
    assert_eq!(live_report.unaccounted(), 0);
    assert_eq!(live.stats().lost_leases, 1, "{:?}", live.stats());

    // Saved once, with the slow proof; run twice, claimed twice, never a third time.
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let row = db.queue.job(id).await.unwrap().unwrap();
    assert_eq!(row.status, "succeeded");
    assert_eq!((row.attempts, row.lost_leases), (0, 1));
    let of_job = |what: &str| format!("SELECT {what} FROM {table} WHERE id = {id}");
    assert_eq!(
        db.scalar(&of_job("(result = 'slow'::bytea)::int::bigint"))
            .await,
        1
    );
    // Two claims (tokens 1 and 2), then the late completion moved it to 3,
    // naming the first claim's token as the one whose result it kept.
    assert_eq!(db.scalar(&of_job("token")).await, 3);
    assert_eq!(db.scalar(&of_job("late_token")).await, 1);
}

/// A worker's lease is lost to another claim while its proof runs: its
/// heartbeat lets the proof go on (it may still finish first), and once the
/// other claim completes the job, the next heartbeat cancels it: nothing it
/// computes could be accepted any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_execution_stops_once_another_claim_completes_the_job() {
    let db = TestDb::new().await;
    let id = enqueue(&db, QUEUE).await;
    let slow = db
        .queue
        .worker(
            WorkerConfig::new("slow")
                .heartbeat_interval(Duration::from_millis(50))
                .lease_ttl(Duration::from_secs(60))
                .rescue_interval(Duration::from_secs(3600))
                .poll_interval(Duration::from_millis(50)),
        )
        .await
        .unwrap();
    let (started, began) = mpsc::channel();
    let cancelled = Arc::new(AtomicU32::new(0));
    let runner = JobRunner::builder(
        slow.picker(QUEUE).unwrap().exit_when_empty(true),
        LongProof {
            runs: Arc::new(AtomicU32::new(0)),
            started: Mutex::new(started),
            cancelled: Arc::clone(&cancelled),
        },
        slow.saver::<Vec<u8>, String>(),
    )
    .workers(1)
    .job_cancels(slow.job_cancels())
    .build()
    .unwrap();
    let run =
        tokio::spawn(async move { runner.run(&TokioRuntime::current(), Shutdown::new()).await });
    let began = tokio::task::spawn_blocking(move || began.recv());
    within("the slow worker starts the job", began)
        .await
        .unwrap()
        .unwrap();

    // Another claim takes the job (as a rescue and a claim elsewhere would;
    // written by hand so that the slow worker's own picker cannot take it).
    let table = db.table();
    db.exec(&format!(
        "UPDATE {table} SET token = token + 1, lease_owner = 'live', lost_leases = lost_leases + 1
         WHERE id = {id}"
    ))
    .await;
    eventually_async(
        "the slow worker's heartbeat finds its lease lost",
        || async { slow.stats().lost_leases == 1 },
    )
    .await;
    assert_eq!(cancelled.load(Ordering::SeqCst), 0, "it runs on, late");
    assert_eq!(status(&db, id).await, "running");

    // The other claim completes the job: the late execution is cancelled.
    db.exec(&format!(
        "UPDATE {table} SET status = 'succeeded', result = 'live', finished_at = now(),
                lease_owner = NULL, lease_expires_at = NULL
         WHERE id = {id}"
    ))
    .await;
    let report = within("the slow runner", run).await.unwrap().unwrap();
    assert_eq!(cancelled.load(Ordering::SeqCst), 1);
    // Its failure (the executor's) is then a stale write: fenced.
    assert_eq!(
        (report.counts.succeeded, report.counts.fenced),
        (0, 1),
        "{report:?}"
    );
    assert_eq!(report.unaccounted(), 0);
    assert_eq!(column(&db, id, "(result = 'live'::bytea)::int").await, 1);
}

/// Workers that heartbeat and rescue only when the test says.
fn manual(name: &str) -> WorkerConfig {
    let hour = Duration::from_secs(3600);
    WorkerConfig::new(name)
        .heartbeat_interval(hour)
        .lease_ttl(hour * 2)
        .rescue_interval(hour)
        .poll_interval(Duration::from_millis(5))
}

/// One worker of a test: its picker and saver.
struct Hand {
    worker: PgWorker,
    saver: PgSaver<Vec<u8>, String>,
}

impl Hand {
    async fn new(queue: &PgQueue, name: &str) -> Self {
        let worker = queue.worker(manual(name)).await.unwrap();
        let saver = worker.saver::<Vec<u8>, String>();
        Self { worker, saver }
    }

    async fn claim(&self, queue: &str) -> PgJob {
        match self
            .worker
            .picker(queue)
            .unwrap()
            .pick_many(1)
            .await
            .unwrap()
        {
            Picked::Some(mut jobs) => jobs.remove(0).meta,
            _ => panic!("{}: nothing to claim", self.worker.id()),
        }
    }

    async fn save(&self, job: &PgJob, result: pjp_core::JobResult<Vec<u8>, String>) -> Saved {
        match self.saver.save(&result, job).await {
            Ok(()) => Saved::Done,
            Err(error) if self.saver.classify(&error) == ErrorClass::LostClaim => {
                assert!(matches!(error, QueueError::Fenced { .. }), "{error}");
                Saved::Fenced
            }
            Err(error) => panic!("save: {error}"),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Saved {
    Done,
    Fenced,
}

/// Expires every running lease of `job` and returns it to the queue. A
/// worker's first rescue runs as it starts, in the background, so it may be
/// the one that returns it.
async fn lose_lease(db: &TestDb, rescuer: &Hand, job: i64) {
    db.exec(&format!(
        "UPDATE {} SET lease_expires_at = now() - interval '1 hour' WHERE id = {job} AND status = 'running'",
        db.table()
    ))
    .await;
    assert!(rescuer.worker.rescue_now().await.unwrap() <= 1);
    eventually_async("the expired lease rescued", || async {
        status(db, job).await == "queued"
    })
    .await;
}

async fn column(db: &TestDb, job: i64, what: &str) -> i64 {
    db.scalar(&format!(
        "SELECT ({what})::int8 FROM {} WHERE id = {job}",
        db.table()
    ))
    .await
}

async fn status(db: &TestDb, job: i64) -> String {
    db.queue.job(job).await.unwrap().unwrap().status
}

async fn enqueue(db: &TestDb, queue: &str) -> i64 {
    db.queue
        .enqueue(NewJob::new(queue, b"x".to_vec()).max_lost_leases(10))
        .await
        .unwrap()
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_failures_releases_and_heartbeats_are_still_rejected() {
    let db = TestDb::new().await;
    let id = enqueue(&db, QUEUE).await;
    let (cut, live, rescuer) = (
        Hand::new(&db.queue, "cut").await,
        Hand::new(&db.queue, "live").await,
        Hand::new(&db.queue, "rescuer").await,
    );
    let stale = cut.claim(QUEUE).await;
    lose_lease(&db, &rescuer, id).await;
    let held = live.claim(QUEUE).await;

    // While another claim holds the job.
    let failed = Err(ExecError::Failed("out of memory".to_owned()));
    assert_eq!(cut.save(&stale, failed.clone()).await, Saved::Fenced);
    assert_eq!(
        cut.save(&stale, Err(ExecError::Cancelled)).await,
        Saved::Fenced
    );
    cut.worker
        .picker(QUEUE)
        .unwrap()
        .release(stale, ReleaseReason::Abandon)
        .await
        .unwrap();
    assert_eq!(cut.worker.heartbeat_now().await.unwrap(), 0);
    assert_eq!(status(&db, id).await, "running");
    assert_eq!(column(&db, id, "token").await, held.token);
    assert_eq!(column(&db, id, "attempts").await, 0);

    // While nobody does (its lease expired too): still rejected, no attempt used.
    lose_lease(&db, &rescuer, id).await;
    assert_eq!(cut.save(&stale, failed.clone()).await, Saved::Fenced);
    assert_eq!(live.save(&held, failed).await, Saved::Fenced);
    assert_eq!(status(&db, id).await, "queued");
    assert_eq!(column(&db, id, "attempts").await, 0);
    assert_eq!(cut.worker.stats().late_accepted, 0);
    assert!(cut.worker.stats().fenced >= 4, "{:?}", cut.worker.stats());

    // A success of the same stale claim is what gets through.
    assert_eq!(cut.save(&stale, Ok(b"proof".to_vec())).await, Saved::Done);
    assert_eq!(status(&db, id).await, "succeeded");
    assert_eq!(cut.worker.stats().late_accepted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_late_results_rejected_a_stale_success_is_fenced() {
    let db = TestDb::new().await;
    // This handle rejects late results, but for the queue `kept`.
    let strict = db
        .handle(|b| {
            b.late_results(LateResults::Reject)
                .late_results_for("kept", LateResults::Accept)
        })
        .await;
    assert_eq!(strict.late_results(QUEUE), LateResults::Reject);
    assert_eq!(strict.late_results("kept"), LateResults::Accept);
    assert_eq!(db.queue.late_results(QUEUE), LateResults::Accept);
    let (slow, live, rescuer) = (
        Hand::new(&strict, "slow").await,
        Hand::new(&strict, "live").await,
        Hand::new(&strict, "rescuer").await,
    );

    let id = enqueue(&db, QUEUE).await;
    let stale = slow.claim(QUEUE).await;
    lose_lease(&db, &rescuer, id).await;
    let held = live.claim(QUEUE).await;
    assert_eq!(slow.save(&stale, Ok(b"slow".to_vec())).await, Saved::Fenced);
    assert_eq!(status(&db, id).await, "running");
    assert_eq!(live.worker.heartbeat_now().await.unwrap(), 1);
    assert_eq!(live.save(&held, Ok(b"live".to_vec())).await, Saved::Done);
    assert_eq!(column(&db, id, "(result = 'live'::bytea)::int").await, 1);
    assert_eq!(column(&db, id, "(late_token IS NULL)::int").await, 1);
    assert_eq!(slow.worker.stats().late_accepted, 0);
    assert_eq!(slow.worker.stats().fenced, 1);

    // The queue the handle keeps late results of.
    let kept = enqueue(&db, "kept").await;
    let stale = slow.claim("kept").await;
    lose_lease(&db, &rescuer, kept).await;
    let held = live.claim("kept").await;
    assert_eq!(slow.save(&stale, Ok(b"slow".to_vec())).await, Saved::Done);
    assert_eq!(live.save(&held, Ok(b"live".to_vec())).await, Saved::Fenced);
    assert_eq!(column(&db, kept, "(result = 'slow'::bytea)::int").await, 1);
    assert_eq!(slow.worker.stats().late_accepted, 1);
}

/// Two stale claims save their successes at the same moment while a third
/// claim holds the job: one is accepted, the other and the holder are
/// fenced, the holder's heartbeat finds its lease lost. Raced many times.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_late_successes_exactly_one_is_accepted() {
    const ROUNDS: usize = 30;
    let db = TestDb::new().await;
    let (a, b, holder, rescuer) = (
        Hand::new(&db.queue, "a").await,
        Hand::new(&db.queue, "b").await,
        Hand::new(&db.queue, "holder").await,
        Hand::new(&db.queue, "rescuer").await,
    );
    for round in 0..ROUNDS {
        let id = enqueue(&db, QUEUE).await;
        let first = a.claim(QUEUE).await;
        lose_lease(&db, &rescuer, id).await;
        let second = b.claim(QUEUE).await;
        lose_lease(&db, &rescuer, id).await;
        let held = holder.claim(QUEUE).await;
        let (x, y) = tokio::join!(
            a.save(&first, Ok(b"a".to_vec())),
            b.save(&second, Ok(b"b".to_vec()))
        );
        let accepted = [&x, &y].iter().filter(|s| ***s == Saved::Done).count();
        assert_eq!(accepted, 1, "round {round}: {x:?}, {y:?}");
        let winner = if x == Saved::Done { first } else { second };
        assert_eq!(column(&db, id, "late_token").await, winner.token);
        assert_eq!(column(&db, id, "token").await, held.token + 1);
        // The winner's repeat (its reply lost) is recognised; the holder's
        // heartbeat finds the lease lost, and its save is fenced.
        let (again, hand) = if x == Saved::Done {
            (first, &a)
        } else {
            (second, &b)
        };
        assert_eq!(hand.save(&again, Ok(b"again".to_vec())).await, Saved::Done);
        assert_eq!(holder.worker.heartbeat_now().await.unwrap(), 0);
        assert_eq!(
            holder.save(&held, Ok(b"holder".to_vec())).await,
            Saved::Fenced
        );
        assert_eq!(status(&db, id).await, "succeeded");
        assert_eq!(column(&db, id, "(result = 'again'::bytea)::int").await, 0);
    }
    let late = a.worker.stats().late_accepted + b.worker.stats().late_accepted;
    assert_eq!(late, ROUNDS as u64);
    assert_eq!(holder.worker.stats().lost_leases, ROUNDS as u64);
    assert_eq!(holder.worker.stats().late_accepted, 0);
}

/// A child's late success counts towards its parent once, like any success:
/// the holder's fenced save and the late claim's repeat count nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_child_settles_its_parent_once() {
    let db = TestDb::new().await;
    let tree = db
        .queue
        .enqueue_tree(
            NewJob::new("aggregate", b"root".to_vec()),
            vec![
                NewJob::new(QUEUE, b"a".to_vec()),
                NewJob::new(QUEUE, b"b".to_vec()),
            ],
        )
        .await
        .unwrap();
    let (slow, live, rescuer) = (
        Hand::new(&db.queue, "slow").await,
        Hand::new(&db.queue, "live").await,
        Hand::new(&db.queue, "rescuer").await,
    );
    let stale = slow.claim(QUEUE).await;
    assert_eq!(stale.id, tree.children[0]);
    lose_lease(&db, &rescuer, stale.id).await;
    // The live worker claims both children (in whichever order).
    let claimed = match live
        .worker
        .picker(QUEUE)
        .unwrap()
        .pick_many(2)
        .await
        .unwrap()
    {
        Picked::Some(jobs) => jobs.into_iter().map(|j| j.meta).collect::<Vec<_>>(),
        _ => panic!("nothing to claim"),
    };
    assert_eq!(claimed.len(), 2);
    let held = *claimed.iter().find(|j| j.id == stale.id).unwrap();
    let other = *claimed.iter().find(|j| j.id != stale.id).unwrap();
    let waiting_on = || column(&db, tree.parent, "waiting_on");

    assert_eq!(slow.save(&stale, Ok(b"slow".to_vec())).await, Saved::Done);
    assert_eq!(waiting_on().await, 1);
    assert_eq!(live.save(&held, Ok(b"live".to_vec())).await, Saved::Fenced);
    assert_eq!(slow.save(&stale, Ok(b"slow".to_vec())).await, Saved::Done);
    assert_eq!(waiting_on().await, 1);
    assert_eq!(status(&db, tree.parent).await, "waiting");

    assert_eq!(other.id, tree.children[1]);
    assert_eq!(live.save(&other, Ok(b"b".to_vec())).await, Saved::Done);
    assert_eq!(waiting_on().await, 0);
    assert_eq!(status(&db, tree.parent).await, "queued");
}

/// A stale worker's fan-out that finishes first is accepted whole: its
/// output and the jobs it spawns commit together, once; the holder's
/// fan-out is then rejected whole (no second set of children), and a repeat
/// of the late save spawns nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_fan_out_is_accepted_whole_once() {
    use pjp_postgres::{FanOut, FanOutSaver, Spawn};
    type Saver = FanOutSaver<Vec<u8>, String>;
    let spawn = || Spawn::jobs((0..3u8).map(|i| NewJob::new("basic", vec![i])).collect());
    let db = TestDb::new().await;
    let id = enqueue(&db, "witness").await;
    let (slow, live, rescuer) = (
        Hand::new(&db.queue, "slow").await,
        Hand::new(&db.queue, "live").await,
        Hand::new(&db.queue, "rescuer").await,
    );
    let stale = slow.claim("witness").await;
    lose_lease(&db, &rescuer, id).await;
    let held = live.claim("witness").await;
    let basics = format!("SELECT count(*) FROM {} WHERE queue = 'basic'", db.table());

    let late: Saver = slow.worker.fan_out_saver();
    let output = |name: &[u8]| {
        Ok(FanOut {
            output: name.to_vec(),
            spawn: spawn(),
        })
    };
    late.save(&output(b"slow"), &stale).await.unwrap();
    assert_eq!(db.scalar(&basics).await, 3);
    late.save(&output(b"slow"), &stale).await.unwrap(); // a repeat
    assert_eq!(db.scalar(&basics).await, 3);

    let holder: Saver = live.worker.fan_out_saver();
    let rejected = holder
        .save(&output(b"live"), &held)
        .await
        .expect_err("the superseded holder's fan-out is fenced");
    assert_eq!(rejected.class(), ErrorClass::LostClaim, "{rejected}");
    assert_eq!(db.scalar(&basics).await, 3, "created once");
    assert_eq!(status(&db, id).await, "succeeded");
    assert_eq!(slow.worker.stats().late_accepted, 1);
}
