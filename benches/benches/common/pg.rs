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
