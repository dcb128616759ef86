//! What the PostgreSQL benches share: the server they use, their schema and
//! their runtime.

use pjp_testkit::postgres::TestSchema;

/// `PJP_BENCH_DATABASE_URL`, or the local server's `test` database.
pub(crate) fn database_url() -> String {
    std::env::var("PJP_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_owned())
}

/// A fresh schema named `{prefix}_…` on the bench server, dropped (with
/// everything in it) when the bench ends.
pub(crate) fn schema(prefix: &str) -> TestSchema {
    TestSchema::prefixed(prefix).with_url(database_url())
}

/// Two worker threads, like the machine the figures come from.
pub(crate) fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .ok()
}

/// A migrated queue in `schema` with `connections` connections, and the
/// schema (dropped when the caller is done); `None` (the schema kept: there
/// is nothing to drop) when no server answers, which `bench` reports as
/// skipped.
///
/// # Panics
///
/// If the server answers but the migration fails: a bench cannot run.
#[allow(dead_code)] // not every bench connects this way
pub(crate) async fn migrated_queue(
    schema: TestSchema,
    bench: &str,
    connections: u32,
) -> Option<(TestSchema, pjp_postgres::PgQueue)> {
    let connected = pjp_postgres::PgQueue::builder(schema.url())
        .schema(schema.name())
        .max_connections(connections)
        .wait(std::time::Duration::from_secs(5))
        .connect()
        .await;
    let queue = match connected {
        Ok(queue) => queue,
        Err(error) => {
            eprintln!(
                "SKIPPED {bench}: no PostgreSQL at {}: {error}",
                database_url()
            );
            schema.keep();
            return None;
        }
    };
    if let Err(error) = queue.migrate().await {
        panic!("migrate: {error}");
    }
    Some((schema, queue))
}
