//! A fleet worker on the PostgreSQL queue: jobs claimed in batches under
//! leases kept alive by one heartbeat, results above the inline limit in an
//! object store, every completion fenced. Start the same binary on many
//! machines against one database and they share the work.
//!
//! Run: `DATABASE_URL=postgres://… cargo run -p pjp-examples --example postgres-worker`
//! (it works in a schema of its own, `PJP_SCHEMA`, and drops it at the end).

use pjp_core::{JobRunner, Shutdown, executor_fn};
use pjp_postgres::{NewJob, PayloadStore, PgQueue, WorkerConfig};
use pjp_runtime_tokio::{TokioRuntime, shutdown_on_signals};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_owned());
    let schema = std::env::var("PJP_SCHEMA")
        .unwrap_or_else(|_| format!("pjp_example_{}", std::process::id()));
    let blobs = std::env::temp_dir().join(format!("pjp-example-{}", std::process::id()));
    let store = PayloadStore::open(&format!("file://{}", blobs.display()))?.inline_limit(1024);

    // Once per database: create the schema (idempotent, safe from many machines).
    let queue = PgQueue::builder(url)
        .schema(&schema)
        .store(store)
        .connect()
        .await?;
    queue.migrate().await?;

    // A producer: 200 jobs in one round trip; the unique key makes a retried enqueue a no-op.
    let jobs = (0..200u32)
        .map(|i| NewJob::new("proofs", i.to_le_bytes().to_vec()).unique_key(format!("example/{i}")))
        .collect();
    queue.enqueue_many(jobs).await?;

    // One worker process: a pool, one heartbeat, one listener.
    let worker = queue.worker(WorkerConfig::default()).await?;
    // A 4 KiB "proof": above the inline limit, so it goes to the store.
    let prove = executor_fn(|input: bytes::Bytes| Ok::<_, &str>(input.repeat(1024)));
    let runner = JobRunner::builder(
        worker.picker("proofs")?.exit_when_empty(true),
        prove,
        worker.saver(),
    )
    .workers(2)
    .pick_batch(16)
    .prefetch(32)
    .save_batch(16)
    .job_cancels(worker.job_cancels())
    .build()?;
    let shutdown = Shutdown::new();
    shutdown_on_signals(shutdown.clone()); // SIGTERM drains: held jobs finish and save
    let report = runner.run(&TokioRuntime::current(), shutdown).await?;
    println!(
        "{} proved; worker: {:?}",
        report.counts.succeeded,
        worker.stats()
    );

    // What an operator sees, then a proof read back from the store.
    for q in queue.stats().await? {
        println!("queue {}: {:?}", q.queue, q.counts);
    }
    if let Some(id) = queue.job_ids("proofs", "succeeded", 0, 1).await?.first() {
        let proof = queue.result(*id).await?.unwrap_or_default();
        println!(
            "job {id}: a {}-byte proof read back from the store",
            proof.len()
        );
    }
    anyhow::ensure!(report.counts.succeeded == 200, "{report:?}");

    // Leave nothing behind.
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(queue.pool())
        .await?;
    std::fs::remove_dir_all(&blobs).ok();
    Ok(())
}
