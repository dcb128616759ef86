//! Test helpers: every test gets its own schema on the real server, dropped
//! when the test ends (even when it panics).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use pjp_postgres::{PgQueue, PgQueueBuilder, WorkerConfig};

/// The server the tests use: `PJP_TEST_DATABASE_URL`, else the local one.
pub fn database_url() -> String {
    std::env::var("PJP_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_owned())
}

/// `url` with its database replaced by `database`.
pub fn url_of_database(url: &str, database: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("a test database URL");
    parsed.set_path(&format!("/{database}"));
    parsed.to_string()
}

pub struct TestDb {
    pub queue: PgQueue,
    pub schema: String,
    /// The database it lives in.
    pub url: String,
}

/// Where a [`TestDb`] goes: a fresh schema name in the test database, unless
/// told otherwise.
pub struct TestDbSpec {
    schema: String,
    url: String,
}

impl TestDbSpec {
    /// In `database` (on the same server) instead.
    pub fn database(mut self, database: &str) -> Self {
        self.url = url_of_database(&self.url, database);
        self
    }

    /// Creates and migrates it, with the builder adjusted by `f`.
    pub async fn with(self, f: impl FnOnce(PgQueueBuilder) -> PgQueueBuilder) -> TestDb {
        let builder = PgQueue::builder(&self.url)
            .schema(&self.schema)
            .wait(Duration::from_secs(10));
        let queue = f(builder)
            .connect()
            .await
            .expect("connect to the test database");
        let db = TestDb {
            queue,
            schema: self.schema,
            url: self.url,
        };
        db.queue.migrate().await.expect("migrate");
        db
    }
}

impl TestDb {
    pub async fn new() -> Self {
        Self::with(|b| b).await
    }

    /// A fresh, migrated schema, with the builder adjusted by `f`.
    pub async fn with(f: impl FnOnce(PgQueueBuilder) -> PgQueueBuilder) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let schema = format!(
            "t_{}_{}_{:04x}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            fastrand::u16(..)
        );
        Self::named(&schema).with(f).await
    }

    /// A schema named `schema` (dropped when the test ends).
    pub fn named(schema: &str) -> TestDbSpec {
        TestDbSpec {
            schema: schema.to_owned(),
            url: database_url(),
        }
    }

    /// A second handle on the same schema (another "process").
    pub async fn handle(&self, f: impl FnOnce(PgQueueBuilder) -> PgQueueBuilder) -> PgQueue {
        f(PgQueue::builder(&self.url).schema(&self.schema))
            .connect()
            .await
            .expect("connect")
    }

    pub async fn exec(&self, sql: &str) {
        sqlx::query(sql)
            .execute(self.queue.pool())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(self.queue.pool())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub fn table(&self) -> String {
        format!("{}.jobs", self.schema)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (schema, url) = (self.schema.clone(), self.url.clone());
        // Async work cannot run in drop: a thread with its own runtime drops
        // the schema, so nothing is left behind even after a panic.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                let pool = sqlx::PgPool::connect(&url).await.ok()?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&pool)
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("warning: could not drop test schema {}", self.schema);
        }
    }
}

/// Short intervals, so that lease expiry takes about a second; the lease
/// outlasts four heartbeats, so that a live worker keeps its jobs on a
/// loaded machine.
pub fn fast(id: &str) -> WorkerConfig {
    WorkerConfig::new(id)
        .heartbeat_interval(Duration::from_millis(200))
        .lease_ttl(Duration::from_millis(1_000))
        .rescue_interval(Duration::from_millis(50))
        .poll_interval(Duration::from_millis(100))
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(100))
}

/// Waits for `condition`, checking every 10 ms, and fails after `limit`: for
/// states another task or process reaches (a lease expiring), never as a
/// substitute for synchronising with code the test controls.
pub async fn until<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    for _ in 0..100_000 {
        if condition().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("gave up waiting for {what}");
}
