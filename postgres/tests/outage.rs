//! A database outage longer than the lease: the workers it cut off keep
//! their jobs, and the first rescuer back does not take them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{TestDb, fast};
use pjp_core::{JobPicker, JobSaver, Picked};
use pjp_postgres::{NewJob, PgQueue, PgSaver};
use pjp_testkit::LatencyProxy;
use pjp_testkit::wait::eventually_async;

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

fn outage(proxy: &LatencyProxy, down: bool) {
    proxy.refuse(down);
    if down {
        proxy.cut();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_lease_costs_the_live_workers_nothing() {
    let db = TestDb::new().await;
    db.queue
        .enqueue_many((0..4u8).map(|i| NewJob::new("q", vec![i])).collect())
        .await
        .unwrap();
    // Rescues run only when the test says, so the order is the test's.
    let config = |id: &str| fast(id).rescue_interval(Duration::from_secs(3600));
    let (holder_link, holder_queue) = through_proxy(&db).await;
    let (rescuer_link, rescuer_queue) = through_proxy(&db).await;
    let holder = holder_queue.worker(config("holder")).await.unwrap();
    let rescuer = rescuer_queue.worker(config("rescuer")).await.unwrap();
    let jobs = match holder.picker("q").unwrap().pick_many(4).await.unwrap() {
        Picked::Some(jobs) => jobs,
        _ => panic!("nothing claimed"),
    };
    assert_eq!(jobs.len(), 4);
    assert_eq!(rescuer.rescue_now().await.unwrap(), 0);

    // The database goes out of reach for both, for longer than the lease.
    outage(&holder_link, true);
    outage(&rescuer_link, true);
    assert!(
        rescuer.rescue_now().await.is_err(),
        "the rescuer sees the outage"
    );
    let expired = format!(
        "SELECT count(*) FROM {} WHERE status = 'running' AND lease_expires_at < now()",
        db.table()
    );
    eventually_async("every lease expired", || async {
        db.scalar(&expired).await == 4
    })
    .await;

    // The rescuer is back first: it leaves the expired leases to their holder.
    outage(&rescuer_link, false);
    assert_eq!(rescuer.rescue_now().await.unwrap(), 0, "rescued live jobs");
    outage(&holder_link, false);
    eventually_async("the holder's heartbeat", || async {
        holder.heartbeat_now().await.is_ok_and(|n| n == 4)
    })
    .await;
    let saver: PgSaver<Vec<u8>, String> = holder.saver();
    for job in &jobs {
        // The pool's connections from before the outage are stale: a save
        // on one fails as transient (a runner retries it), the next one
        // reconnects.
        let mut saved = saver.save(&Ok(vec![1]), &job.meta).await;
        for _ in 0..4 {
            match &saved {
                Err(e) if e.class() == pjp_core::ErrorClass::Transient => {
                    saved = saver.save(&Ok(vec![1]), &job.meta).await;
                }
                _ => break,
            }
        }
        saved.unwrap();
    }
    let charged = db
        .scalar(&format!(
            "SELECT count(*) FROM {} WHERE status <> 'succeeded' OR lost_leases > 0 OR attempts > 0",
            db.table()
        ))
        .await;
    assert_eq!(charged, 0, "every job saved once, nothing charged");
    assert_eq!(holder.stats().lost_leases, 0);

    // A worker that really died during an outage is still rescued, one
    // lease time after the rescuer got back.
    db.queue.enqueue(NewJob::new("q", vec![9])).await.unwrap();
    let claimed = holder.picker("q").unwrap().pick_many(1).await.unwrap();
    assert!(matches!(claimed, Picked::Some(ref j) if j.len() == 1));
    outage(&holder_link, true);
    eventually_async("the dead worker's job rescued", || async {
        rescuer.rescue_now().await.is_ok_and(|n| n == 1)
    })
    .await;
}

/// A save that fails because the database is out of reach leaves the job
/// this worker's: its heartbeat keeps extending the lease once the database
/// is back, and the runner's retry of the save lands, on time, not late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_that_fails_in_an_outage_keeps_its_lease() {
    let db = TestDb::new().await;
    db.queue.enqueue(NewJob::new("q", vec![1])).await.unwrap();
    let (link, queue) = through_proxy(&db).await;
    let worker = queue
        .worker(fast("holder").rescue_interval(Duration::from_secs(3600)))
        .await
        .unwrap();
    let job = match worker.picker("q").unwrap().pick_many(1).await.unwrap() {
        Picked::Some(mut jobs) => jobs.remove(0).meta,
        _ => panic!("nothing claimed"),
    };
    let saver: PgSaver<Vec<u8>, String> = worker.saver();
    outage(&link, true);
    let failed = saver.save(&Ok(vec![1]), &job).await.unwrap_err();
    assert_eq!(failed.class(), pjp_core::ErrorClass::Transient, "{failed}");
    outage(&link, false);
    eventually_async("the heartbeat still extends the lease", || async {
        worker.heartbeat_now().await.is_ok_and(|n| n == 1)
    })
    .await;
    let mut saved = saver.save(&Ok(vec![1]), &job).await;
    for _ in 0..4 {
        match &saved {
            Err(e) if e.class() == pjp_core::ErrorClass::Transient => {
                saved = saver.save(&Ok(vec![1]), &job).await;
            }
            _ => break,
        }
    }
    saved.unwrap();
    assert_eq!(worker.stats().succeeded, 1);
    assert_eq!(worker.stats().late_accepted, 0);
    assert_eq!(
        worker.heartbeat_now().await.unwrap(),
        0,
        "let go once saved"
    );
}
