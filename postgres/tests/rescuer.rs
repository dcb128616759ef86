//! Liveness costs that scale with workers, not with jobs or rescues: each
//! worker runs one heartbeat statement per interval, whatever it holds, and
//! one worker of the schema (the rescuer) runs the rescues; when it dies,
//! another worker's heartbeat takes the role over and its expired leases
//! still come back.
//!
//! The statement counts are bounded from above by the time the window took
//! (an interval ticks at most once per period), so a slow machine only makes
//! them smaller.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::TestDb;
use pjp_core::{JobPicker, Picked};
use pjp_postgres::{NewJob, PgWorker, WorkerConfig, WorkerStats};
use pjp_testkit::wait::Wait;

const HEARTBEAT: Duration = Duration::from_millis(100);
const RESCUE: Duration = Duration::from_millis(25);

fn config(id: &str) -> WorkerConfig {
    WorkerConfig::new(id)
        .heartbeat_interval(HEARTBEAT)
        .lease_ttl(HEARTBEAT * 5)
        .rescue_interval(RESCUE)
        .poll_interval(Duration::from_millis(100))
}

/// The one worker holding the rescuer role, once one does.
async fn rescuer(workers: &[PgWorker]) -> usize {
    Wait::new("one worker to hold the rescuer role")
        .until_some(|| async {
            let holders: Vec<usize> = (0..workers.len())
                .filter(|&i| workers[i].is_rescuer())
                .collect();
            (holders.len() == 1).then(|| holders[0])
        })
        .await
}

/// The most statements of an interval of `every` counted in `window`: one
/// per tick (`window / every + 1` ticks at most), and one more that was
/// sent before the window and counted in it (the count follows the reply).
fn most(window: Duration, every: Duration) -> u64 {
    (window.as_nanos() / every.as_nanos()) as u64 + 2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_worker_beats_once_per_interval_and_one_worker_rescues_whatever_their_ids() {
    let db = TestDb::new().await;
    // One id for all six, as in a fleet started from one configuration:
    // they still elect one rescuer.
    let mut workers = Vec::new();
    for _ in 0..6 {
        workers.push(db.queue.worker(config("fleet")).await.unwrap());
    }
    // Half the workers hold leases, half hold none: the count is the same.
    db.queue
        .enqueue_many((0..30).map(|i| NewJob::new("q", vec![i])).collect())
        .await
        .unwrap();
    for worker in &workers[..3] {
        let picked = worker.picker("q").unwrap().pick_many(10).await.unwrap();
        assert!(matches!(picked, Picked::Some(ref jobs) if !jobs.is_empty()));
    }
    let holder = rescuer(&workers).await;

    let before: Vec<WorkerStats> = workers.iter().map(PgWorker::stats).collect();
    let started = Instant::now();
    Wait::new("the rescuer to run 20 rescues")
        .until(|| workers[holder].stats().rescues >= before[holder].rescues + 20)
        .await;
    // Read the counts before the clock: the window only grows.
    let after: Vec<WorkerStats> = workers.iter().map(PgWorker::stats).collect();
    let window = started.elapsed();

    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        let beats = a.heartbeats - b.heartbeats;
        assert!(
            beats <= most(window, HEARTBEAT),
            "worker {i}: {beats} heartbeats in {window:?}"
        );
        assert_eq!(a.heartbeat_errors, 0, "worker {i}");
        assert_eq!(a.lost_leases, 0, "worker {i} kept its leases");
        if i != holder {
            assert_eq!(a.rescues, b.rescues, "worker {i} does not rescue");
        }
    }
    let rescues: u64 = before
        .iter()
        .zip(&after)
        .map(|(b, a)| a.rescues - b.rescues)
        .sum();
    // One rescuer for six workers: the schema's rescues are those of one
    // worker's interval, not six.
    assert!(
        rescues <= most(window, RESCUE),
        "{rescues} rescue statements in {window:?} from 6 workers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rescuers_own_leases_come_back_when_it_dies() {
    let db = TestDb::new().await;
    let mut workers = Vec::new();
    for i in 0..3 {
        workers.push(db.queue.worker(config(&format!("w{i}"))).await.unwrap());
    }
    db.queue
        .enqueue_many((0..5).map(|i| NewJob::new("q", vec![i])).collect())
        .await
        .unwrap();
    let holder = rescuer(&workers).await;
    let dead = workers.remove(holder);
    let dead_id = dead.id().to_owned();
    let picker = dead.picker("q").unwrap();
    let Picked::Some(jobs) = picker.pick_many(5).await.unwrap() else {
        panic!("nothing claimed");
    };
    assert_eq!(jobs.len(), 5);
    // It dies: its heartbeat stops, its leases and its role are left to run
    // out.
    drop((jobs, picker, dead));

    Wait::new("another worker to take the rescuer role")
        .limit(Duration::from_secs(30))
        .until(|| workers.iter().any(PgWorker::is_rescuer))
        .await;
    Wait::new("the dead rescuer's jobs to be rescued")
        .limit(Duration::from_secs(30))
        .until_async(|| async {
            db.scalar(&format!(
                "SELECT count(*) FROM {} WHERE status = 'queued' AND lost_leases = 1",
                db.table()
            ))
            .await
                == 5
        })
        .await;
    let rescued: u64 = workers.iter().map(|w| w.stats().rescued).sum();
    assert_eq!(rescued, 5);
    let owner: String = sqlx::query_scalar(&format!("SELECT owner FROM {}.rescuer", db.schema()))
        .fetch_one(db.queue.pool())
        .await
        .unwrap();
    // The role's owner is the worker's id and a tag of its own.
    let (owner, _tag) = owner.rsplit_once('#').unwrap();
    assert_ne!(owner, dead_id);
    assert!(workers.iter().any(|w| w.id() == owner && w.is_rescuer()));
}
