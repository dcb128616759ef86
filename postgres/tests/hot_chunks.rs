//! The hot set: claims read only the chunks of ids that may hold a live job
//! (migration `hot_chunks`), so finished history — and the dead index
//! entries it leaves without vacuum — is never walked by a claim. Chunks are
//! 65,536 ids; the tests move the id sequence on to reach later chunks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestDb, claim_payloads, fast};
use pjp_core::{ClaimOrder, JobPicker, Picked};
use pjp_postgres::NewJob;
use pjp_testkit::wait::Wait;
use sqlx::Connection;

const QUEUE: &str = "proofs";
const CHUNK: i64 = 1 << 16;

/// The chunks a claim reads now.
async fn hot(db: &TestDb) -> Vec<i64> {
    let mut chunks: Vec<i64> =
        sqlx::query_scalar(&format!("SELECT {}.hot_chunk_list()", db.schema()))
            .fetch_all(db.queue.pool())
            .await
            .unwrap();
    chunks.sort_unstable();
    chunks
}

/// Maintenance twice: the first call marks the range handed out so far,
/// the second closes it unless a transaction of the first one's snapshot
/// is still open.
async fn maintain_twice(db: &TestDb) {
    db.queue.maintain().await.unwrap();
    db.queue.maintain().await.unwrap();
}

/// Maintenance until the open range starts at the chunk being handed out:
/// any transaction of the database cluster (another test's) holds the
/// closing back while it runs, so this waits (bounded) for them to end.
async fn settle(db: &TestDb) {
    let closed = format!(
        "SELECT ((open_from >> 16) = ((SELECT last_value FROM {s}.jobs_id_seq) >> 16))::int::int8 \
         FROM {s}.hot_range",
        s = db.schema()
    );
    Wait::new("the open range to close")
        .until_async(|| async {
            db.queue.maintain().await.unwrap();
            db.scalar(&closed).await == 1
        })
        .await;
}

/// The next ids are handed out from chunk `chunk` on.
async fn jump_to_chunk(db: &TestDb, chunk: i64) {
    db.exec(&format!(
        "SELECT setval('{}.jobs_id_seq', {})",
        db.schema(),
        chunk * CHUNK
    ))
    .await;
}

async fn enqueue(db: &TestDb, names: &[&str]) -> Vec<i64> {
    db.queue
        .enqueue_many(
            names
                .iter()
                .map(|n| NewJob::new(QUEUE, n.as_bytes().to_vec()))
                .collect(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_chunks_leave_the_claims_and_a_job_left_behind_keeps_its_chunk() {
    let db = TestDb::new().await;
    let t = db.table();
    let old = enqueue(&db, &["done-1", "done-2", "left-behind"]).await;
    assert!(old.iter().all(|id| id >> 16 == 0), "ids {old:?}");
    db.exec(&format!(
        "UPDATE {t} SET status = 'succeeded', finished_at = now() WHERE id = ANY(ARRAY[{}, {}])",
        old[0], old[1]
    ))
    .await;
    jump_to_chunk(&db, 3).await;
    enqueue(&db, &["new-1"]).await;
    settle(&db).await;
    assert_eq!(
        hot(&db).await,
        [0, 3],
        "chunk 0 still holds a queued job; 1 and 2 were never used"
    );

    let worker = db.queue.worker(fast("w")).await.unwrap();
    let picker = worker
        .picker(QUEUE)
        .unwrap()
        .order(ClaimOrder::Fifo)
        .exit_when_empty(true);
    assert_eq!(claim_payloads(&picker, 10).await, ["left-behind", "new-1"]);

    db.exec(&format!(
        "UPDATE {t} SET status = 'succeeded', finished_at = now(), lease_owner = NULL, lease_expires_at = NULL"
    ))
    .await;
    settle(&db).await;
    assert_eq!(hot(&db).await, [3], "chunk 0 has only finished jobs now");
    assert!(
        matches!(picker.pick_many(10).await.unwrap(), Picked::Exhausted),
        "no work is left in the hot chunks"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requeued_job_of_a_forgotten_chunk_is_claimed_again() {
    let db = TestDb::new().await;
    let ids = enqueue(&db, &["poison"]).await;
    db.exec(&format!(
        "UPDATE {} SET status = 'dead', finished_at = now() WHERE id = {}",
        db.table(),
        ids[0]
    ))
    .await;
    jump_to_chunk(&db, 2).await;
    enqueue(&db, &["fresh"]).await;
    settle(&db).await;
    assert_eq!(hot(&db).await, [2]);

    assert!(db.queue.requeue(ids[0]).await.unwrap());
    assert_eq!(hot(&db).await, [0, 2], "the requeue lists its chunk again");
    let worker = db.queue.worker(fast("w")).await.unwrap();
    let picker = worker.picker(QUEUE).unwrap();
    assert_eq!(claim_payloads(&picker, 10).await, ["poison", "fresh"]);
}

/// An insert still uncommitted when the maintenance looks holds its chunk
/// open: the range closes only once every transaction that may hold an id
/// below it has ended, so a job committed late is never hidden from claims.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_stays_open_while_an_insert_into_it_is_uncommitted() {
    let db = TestDb::new().await;
    let mut producer = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let mut tx = producer.begin().await.unwrap();
    sqlx::query(&format!(
        "INSERT INTO {} (queue, payload) VALUES ('{QUEUE}', 'slow')",
        db.table()
    ))
    .execute(&mut *tx)
    .await
    .unwrap();
    jump_to_chunk(&db, 2).await;
    enqueue(&db, &["fast"]).await;
    for _ in 0..3 {
        maintain_twice(&db).await;
    }
    assert_eq!(
        hot(&db).await,
        [0, 1, 2],
        "chunk 0 cannot be judged while the insert is open"
    );
    tx.commit().await.unwrap();
    settle(&db).await;
    assert_eq!(hot(&db).await, [0, 2], "the committed job keeps chunk 0");
    let worker = db.queue.worker(fast("w")).await.unwrap();
    let picker = worker.picker(QUEUE).unwrap();
    assert_eq!(claim_payloads(&picker, 10).await, ["slow", "fast"]);
}

/// Expired leases in a closed chunk are still rescued, and the rescuer
/// keeps the hot set with every rescue (no maintenance call here; the
/// worker's start brings the set up to date once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rescuer_keeps_the_hot_set_and_rescues_leases_in_closed_chunks() {
    let db = TestDb::new().await;
    let t = db.table();
    let ids = enqueue(&db, &["stranded"]).await;
    db.exec(&format!(
        "UPDATE {t} SET status = 'running', lease_owner = 'gone', \
         lease_expires_at = now() + interval '1 hour', token = token + 1 WHERE id = {}",
        ids[0]
    ))
    .await;
    jump_to_chunk(&db, 4).await;
    enqueue(&db, &["later"]).await;
    let worker = db.queue.worker(fast("w")).await.unwrap();
    Wait::new("chunks 0 to 3 to close")
        .until_async(|| async { hot(&db).await == [0, 4] })
        .await;
    db.exec(&format!(
        "UPDATE {t} SET lease_expires_at = now() - interval '1 hour' WHERE id = {}",
        ids[0]
    ))
    .await;
    let picker = worker.picker(QUEUE).unwrap();
    // The rescuer returns the lease to the queue (a bounded wait; the
    // first claim may already find it).
    let claimed = std::sync::Mutex::new(Vec::new());
    Wait::new("the rescuer to return the stranded job")
        .until_async(|| async {
            let more = claim_payloads(&picker, 10).await;
            let mut claimed = claimed.lock().unwrap();
            claimed.extend(more);
            claimed.len() >= 2
        })
        .await;
    let mut claimed = claimed.into_inner().unwrap();
    assert!(
        worker.is_rescuer(),
        "the rescue ran, so this worker holds the role"
    );
    claimed.sort();
    assert_eq!(claimed, ["later", "stranded"]);

    // Only the rescuer looks after the set while this worker runs (its
    // maintenance interval is far longer than the wait).
    db.exec(&format!(
        "UPDATE {t} SET status = 'succeeded', finished_at = now(), lease_owner = NULL, lease_expires_at = NULL"
    ))
    .await;
    jump_to_chunk(&db, 6).await;
    enqueue(&db, &["last"]).await;
    Wait::new("the rescuer to forget chunks 0 and 4")
        .until_async(|| async { hot(&db).await == [6] })
        .await;
}
