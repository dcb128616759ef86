//! The heartbeat cannot starve behind executor work: it runs on a thread of
//! its own, so a job that keeps the caller's runtime busy past its lease
//! (CPU work in an async executor) still has its lease extended, while
//! another process rescues every lease that does lapse.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{TestDb, fast};
use pjp_core::{JobRunner, Shutdown, async_executor_fn};
use pjp_postgres::{NewJob, PgQueue};
use pjp_runtime_tokio::TokioRuntime;

/// The test's runtime has one thread, and the job blocks it for three
/// lease times.
#[tokio::test(flavor = "current_thread")]
async fn a_job_that_blocks_the_runtime_keeps_its_lease() {
    let db = TestDb::new().await;
    let id = db
        .queue
        .enqueue(NewJob::new("q", b"heavy".to_vec()))
        .await
        .unwrap()
        .id;

    // Another process, rescuing expired leases every 50 ms.
    let (url, schema) = (db.url().to_owned(), db.schema().to_owned());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let rescuer = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let queue = PgQueue::builder(url)
                .schema(schema)
                .connect()
                .await
                .unwrap();
            let _rescuer = queue.worker(fast("rescuer")).await.unwrap();
            let _ = stopped.await;
        });
    });

    let config = fast("busy"); // heartbeat 200 ms, lease 1 s
    let worker = db.queue.worker(config).await.unwrap();
    let picker = worker.picker("q").unwrap().exit_when_empty(true);
    let busy = async_executor_fn(|input: bytes::Bytes| async move {
        // CPU work that never yields: the runtime's only thread is taken.
        std::thread::sleep(Duration::from_secs(3));
        Ok::<_, String>(input)
    });
    let runner = JobRunner::builder_async(picker, busy, worker.saver::<bytes::Bytes, String>())
        .build()
        .unwrap();
    let report = runner
        .run(&TokioRuntime::current(), Shutdown::new())
        .await
        .unwrap();
    let _ = stop.send(());
    rescuer.join().unwrap();

    assert_eq!(
        (report.counts.succeeded, report.counts.fenced),
        (1, 0),
        "{report:?}"
    );
    assert_eq!(worker.stats().lost_leases, 0, "{:?}", worker.stats());
    let table = db.table();
    let row = |sql: &str| format!("SELECT {sql} FROM {table} WHERE id = {id}");
    assert_eq!(
        db.scalar(&row("(status = 'succeeded')::int::bigint")).await,
        1
    );
    assert_eq!(db.scalar(&row("lost_leases::bigint")).await, 0);
}
