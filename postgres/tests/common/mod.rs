//! Test helpers: every test gets its own schema on the real server, dropped
//! when the test ends (even when it panics; see `pjp_testkit::postgres`).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

pub mod durable;

use std::time::Duration;

use pjp_core::{JobPicker, Picked};
use pjp_postgres::{NewJob, PgPicker, PgQueue, PgQueueBuilder, WorkerConfig};
use pjp_testkit::postgres::TestSchema;

/// `url` with its database replaced by `database`.
pub fn url_of_database(url: &str, database: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("a test database URL");
    parsed.set_path(&format!("/{database}"));
    parsed.to_string()
}

/// A migrated queue in a schema of its own, dropped with it.
pub struct TestDb {
    pub queue: PgQueue,
    schema: TestSchema,
}

/// Where a [`TestDb`] goes: a fresh schema name in the test database, unless
/// told otherwise.
pub struct TestDbSpec {
    schema: TestSchema,
}

impl TestDbSpec {
    /// In `database` (on the same server) instead.
    pub fn database(mut self, database: &str) -> Self {
        let url = url_of_database(self.schema.url(), database);
        self.schema = self.schema.with_url(url);
        self
    }

    /// Creates and migrates it, with the builder adjusted by `f`.
    pub async fn with(self, f: impl FnOnce(PgQueueBuilder) -> PgQueueBuilder) -> TestDb {
        let builder = PgQueue::builder(self.schema.url())
            .schema(self.schema.name())
            .wait(Duration::from_secs(10));
        let queue = f(builder)
            .connect()
            .await
            .expect("connect to the test database");
        let db = TestDb {
            queue,
            schema: self.schema,
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
        TestDbSpec {
            schema: TestSchema::new(),
        }
        .with(f)
        .await
    }

    /// A schema named `schema` (dropped when the test ends).
    pub fn named(schema: &str) -> TestDbSpec {
        TestDbSpec {
            schema: TestSchema::named(schema),
        }
    }

    /// The schema's name.
    pub fn schema(&self) -> &str {
        self.schema.name()
    }

    /// The database it lives in.
    pub fn url(&self) -> &str {
        self.schema.url()
    }

    /// A second handle on the same schema (another "process").
    pub async fn handle(&self, f: impl FnOnce(PgQueueBuilder) -> PgQueueBuilder) -> PgQueue {
        f(PgQueue::builder(self.url()).schema(self.schema()))
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
        format!("{}.jobs", self.schema.name())
    }

    /// Enqueues `n` jobs on `queue`, each carrying its number (4 bytes,
    /// little-endian).
    pub async fn enqueue_numbered(&self, queue: &str, n: u32) {
        let jobs = (0..n)
            .map(|i| NewJob::new(queue, i.to_le_bytes().to_vec()))
            .collect();
        self.queue.enqueue_many(jobs).await.unwrap();
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

/// Claims up to `n`; returns each claimed job's payload as text.
pub async fn claim_payloads(picker: &PgPicker, n: usize) -> Vec<String> {
    match picker.pick_many(n).await.expect("pick") {
        Picked::Some(jobs) => jobs
            .into_iter()
            .map(|j| String::from_utf8(j.input.to_vec()).expect("a text payload"))
            .collect(),
        Picked::Empty | Picked::Exhausted => Vec::new(),
    }
}
