//! A fresh PostgreSQL schema per test (feature `postgres`): the test server's
//! address, a unique schema name, and the schema dropped when the test ends,
//! even when it panics.
//!
//! [`TestSchema`] creates nothing: whatever the test runs in the schema
//! (`PgQueue::migrate`, a `CREATE SCHEMA`, a worker process given its name)
//! creates it. It only names it, and drops it (`DROP SCHEMA … CASCADE`) when
//! it is dropped.
//!
//! ```no_run
//! use pjp_testkit::postgres::TestSchema;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sqlx::Error> {
//! let schema = TestSchema::new(); // t_{pid}_{n}_{random}, on the test server
//! let pool = sqlx::PgPool::connect(schema.url()).await?;
//! sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&pool).await?;
//! sqlx::query(&format!("CREATE TABLE {schema}.jobs (id int8)")).execute(&pool).await?;
//! // ... the test ...
//! drop(schema); // or the end of the test, or a panic: the schema is gone
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sqlx::Connection;

/// The environment variable naming the test server (a `postgres://` URL).
pub const DATABASE_URL_VAR: &str = "PJP_TEST_DATABASE_URL";

/// The test server when [`DATABASE_URL_VAR`] is not set: the local one's
/// `test` database.
pub const DEFAULT_DATABASE_URL: &str = "postgres://root@127.0.0.1:5432/test";

/// The longest prefix [`TestSchema::prefixed`] takes: with the unique suffix
/// the name stays within PostgreSQL's 63 bytes.
pub const MAX_PREFIX_LEN: usize = 32;

/// How long the drop waits for the server before it gives up (and warns).
const DROP_LIMIT: Duration = Duration::from_secs(30);

/// PostgreSQL's longest identifier, in bytes.
const MAX_IDENTIFIER_LEN: usize = 63;

/// The test server: [`DATABASE_URL_VAR`] (`PJP_TEST_DATABASE_URL`), else
/// [`DEFAULT_DATABASE_URL`].
pub fn database_url() -> String {
    std::env::var(DATABASE_URL_VAR).unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
}

/// A schema for one test: a unique name on the test server, dropped (with
/// everything in it) when this value is dropped, panics included.
///
/// The drop runs on a thread of its own with its own runtime, so it works
/// from `Drop`, from inside an async test and while unwinding. When it
/// cannot drop the schema (the server is out of reach, or does not answer
/// within 30 s) it says so on stderr and goes on: a leftover schema does
/// not fail the test.
///
/// The name is a plain lower-case identifier, so it can be spliced into
/// SQL unquoted (`{schema}.jobs`); [`Display`](fmt::Display) writes it.
pub struct TestSchema {
    name: String,
    url: String,
    keep: bool,
}

impl TestSchema {
    /// A fresh schema name on the test server ([`database_url`]):
    /// `t_{pid}_{n}_{random}`, unique across the processes and the tests of
    /// a run.
    pub fn new() -> Self {
        Self::prefixed("t")
    }

    /// A fresh schema name that starts with `prefix`:
    /// `{prefix}_{pid}_{n}_{random}`, to tell a test's or a bench's schemas
    /// apart on the server.
    ///
    /// # Panics
    ///
    /// When `prefix` is not a lower-case identifier (`a`–`z`, `0`–`9`, `_`,
    /// not starting with a digit) of at most [`MAX_PREFIX_LEN`] bytes: a
    /// mistake in the test.
    pub fn prefixed(prefix: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        check_identifier("schema prefix", prefix, MAX_PREFIX_LEN);
        let name = format!(
            "{prefix}_{}_{}_{:04x}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            fastrand::u16(..)
        );
        Self::named(&name)
    }

    /// The schema `name` on the test server, dropped like a fresh one: for a
    /// name derived from another schema's (a second schema beside a
    /// [`TestSchema`], the same name in another database).
    ///
    /// # Panics
    ///
    /// When `name` is not a lower-case identifier (`a`–`z`, `0`–`9`, `_`,
    /// not starting with a digit) of at most 63 bytes: a mistake in the
    /// test.
    pub fn named(name: &str) -> Self {
        check_identifier("schema name", name, MAX_IDENTIFIER_LEN);
        Self {
            name: name.to_owned(),
            url: database_url(),
            keep: false,
        }
    }

    /// On the server (and database) at `url` instead of the test server: a
    /// bench's own server, another database.
    #[must_use]
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server (and database) it lives in.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Leaves the schema where it is, returning its name: to look at a
    /// test's tables after it ran, or when the server was never reached (a
    /// bench that skips), so that there is nothing to drop.
    pub fn keep(mut self) -> String {
        self.keep = true;
        std::mem::take(&mut self.name)
    }
}

impl Default for TestSchema {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TestSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl fmt::Debug for TestSchema {
    // The URL may hold a password: left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestSchema")
            .field("name", &self.name)
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if let Err(error) = drop_schema(&self.url, &self.name) {
            eprintln!("warning: could not drop test schema {}: {error}", self.name);
        }
    }
}

/// Why a schema could not be dropped.
#[derive(Debug, thiserror::Error)]
enum DropError {
    #[error("no thread to drop it on: {0}")]
    Thread(std::io::Error),
    #[error("no runtime to drop it on: {0}")]
    Runtime(std::io::Error),
    #[error("the thread dropping it panicked")]
    Panicked,
    #[error("{0}")]
    Sql(#[from] sqlx::Error),
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

/// Drops `schema` at `url` (`DROP SCHEMA IF EXISTS … CASCADE`) from a thread
/// of its own with a current-thread runtime: async work cannot run in
/// `Drop`, and the caller may be inside a runtime or unwinding.
fn drop_schema(url: &str, schema: &str) -> Result<(), DropError> {
    let url = url.to_owned();
    let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
    let thread = std::thread::Builder::new()
        .name("pjp-drop-schema".to_owned())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(DropError::Runtime)?;
            runtime.block_on(async move {
                let dropped = tokio::time::timeout(DROP_LIMIT, async {
                    let mut conn = sqlx::PgConnection::connect(&url).await?;
                    sqlx::query(&sql).execute(&mut conn).await?;
                    conn.close().await
                })
                .await;
                match dropped {
                    Ok(done) => Ok(done?),
                    Err(_) => Err(DropError::TimedOut(DROP_LIMIT)),
                }
            })
        })
        .map_err(DropError::Thread)?;
    thread.join().map_err(|_| DropError::Panicked)?
}

/// Fails the test unless `name` is a lower-case SQL identifier of at most
/// `max` bytes (safe to splice into SQL unquoted).
fn check_identifier(what: &str, name: &str, max: usize) {
    let valid = !name.is_empty()
        && name.len() <= max
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    assert!(
        valid,
        "{what} {name:?}: want a lower-case identifier (a-z, 0-9, _, not starting with a digit) of at most {max} bytes"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_names_are_unique_identifiers() {
        let (a, b) = (TestSchema::new(), TestSchema::prefixed("bench_tree"));
        assert_ne!(a.name(), b.name());
        assert!(a.name().starts_with(&format!("t_{}_", std::process::id())));
        assert!(b.name().starts_with("bench_tree_"));
        assert_eq!(a.to_string(), a.name());
        let longest = TestSchema::prefixed(&"p".repeat(MAX_PREFIX_LEN));
        assert!(longest.name().len() <= MAX_IDENTIFIER_LEN);
        // Nothing was created: nothing to drop (and no server needed).
        for schema in [a, b, longest] {
            schema.keep();
        }
    }

    #[test]
    #[should_panic(expected = "want a lower-case identifier")]
    fn a_name_that_is_not_a_plain_identifier_is_refused() {
        let _ = TestSchema::named("t; DROP TABLE jobs");
    }

    #[test]
    fn the_url_stays_out_of_debug() {
        let schema = TestSchema::named("t_debug").with_url("postgres://u:secret@host/db");
        assert!(!format!("{schema:?}").contains("secret"));
        assert_eq!(schema.url(), "postgres://u:secret@host/db");
        assert_eq!(schema.keep(), "t_debug");
    }
}
