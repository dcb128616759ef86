//! The queue's tables: migrations, the version check, and the SQL names of a
//! schema.

use sqlx::migrate::Migrator;
use sqlx::{Connection, PgConnection};

use crate::db::Db;

use crate::error::QueueError;
use crate::sql::schema as statements;

/// The migrations this library ships, embedded at build time. They name no
/// schema: they create the queue's tables in the first schema of the
/// connection's `search_path`. [`PgQueue::migrate`](crate::PgQueue::migrate)
/// runs them in the queue's schema; use this to set up a database yourself,
/// for example in `sqlx`'s test harness (the tables land in `public`, so
/// connect the queue with `.schema("public")`):
///
/// ```ignore
/// #[sqlx::test(migrator = "pjp_postgres::MIGRATOR")]
/// async fn my_worker_saves_its_proofs(options: PgPoolOptions, connect: PgConnectOptions) {
///     // the database is fresh and migrated; connect a PgQueue with schema "public"
/// }
/// ```
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The newest migration this library ships: the schema version it needs.
pub fn schema_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// A schema name checked to be a plain identifier, so it can be spliced into
/// SQL: 1–48 characters of `a-z`, `0-9` and `_`, starting with a letter or `_`.
/// (48 leaves room for the `pjp_` prefix of the notification channel inside
/// PostgreSQL's 63-byte identifier limit.)
pub(crate) fn check_schema_name(name: &str) -> Result<(), QueueError> {
    let valid_start = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let valid_rest = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid_start || !valid_rest || name.len() > 48 {
        return Err(QueueError::invalid(
            "schema name",
            format!("`{name}`: use 1–48 characters of a-z, 0-9 and _, starting with a letter or _"),
        ));
    }
    Ok(())
}

/// Creates the schema if needed and applies every migration not applied yet.
/// Safe to run from several processes at once: a session advisory lock per
/// schema serialises them from `CREATE SCHEMA` on (two concurrent
/// `CREATE SCHEMA IF NOT EXISTS` can otherwise both try to create it, and one
/// fails on the catalog's unique index). Returns the versions it applied.
/// `conn` is a connection of its own, straight to the server.
pub(crate) async fn migrate(mut conn: PgConnection, schema: &str) -> Result<Vec<i64>, QueueError> {
    let applied = migrate_locked(&mut conn, schema).await;
    // The connection held a session lock and a `search_path`: it never goes
    // back to the pool; closing it releases the lock whatever happened.
    let _ = conn.close().await;
    applied
}

async fn migrate_locked(conn: &mut PgConnection, schema: &str) -> Result<Vec<i64>, QueueError> {
    sqlx::query(statements::MIGRATE_LOCK)
        .bind(format!("pjp-postgres migrate {schema}"))
        .execute(&mut *conn)
        .await?;
    // The migrations name no schema: they run with `search_path` set to ours,
    // so the tables and sqlx's own `_sqlx_migrations` land in it.
    sqlx::query(&statements::create_schema(schema))
        .execute(&mut *conn)
        .await?;
    let before = applied_versions(conn, schema).await?;
    sqlx::query(&statements::set_search_path(schema))
        .execute(&mut *conn)
        .await?;
    MIGRATOR.run_direct(&mut *conn).await?;
    sqlx::query(statements::ANALYZE_JOBS)
        .execute(&mut *conn)
        .await?;
    let after = applied_versions(conn, schema).await?;
    Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
}

async fn applied_versions(conn: &mut PgConnection, schema: &str) -> Result<Vec<i64>, QueueError> {
    if !migrations_table_exists(conn, schema).await? {
        return Ok(Vec::new());
    }
    let versions: Vec<i64> = sqlx::query_scalar(&statements::applied_versions(schema))
        .fetch_all(&mut *conn)
        .await?;
    Ok(versions)
}

async fn migrations_table_exists(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<bool, QueueError> {
    let exists: bool = sqlx::query_scalar(statements::MIGRATIONS_TABLE_EXISTS)
        .bind(schema)
        .fetch_one(&mut *conn)
        .await?;
    Ok(exists)
}

/// Checks that the schema is at exactly the version this library needs.
/// One statement at a time on the pool (each in a transaction of its own
/// through a transaction pooler).
pub(crate) async fn check_version(pool: &Db, schema: &str) -> Result<(), QueueError> {
    let exists: bool = sqlx::query_scalar(statements::MIGRATIONS_TABLE_EXISTS)
        .bind(schema)
        .fetch_one(pool)
        .await?;
    let found = if exists {
        let versions: Vec<i64> = sqlx::query_scalar(&statements::applied_versions(schema))
            .fetch_all(pool)
            .await?;
        versions.into_iter().max()
    } else {
        None
    };
    let expected = schema_version();
    match found {
        None => Err(QueueError::NotMigrated {
            schema: schema.to_owned(),
        }),
        Some(found) if found < expected => Err(QueueError::SchemaVersion {
            schema: schema.to_owned(),
            found,
            expected,
            hint: "the schema is older: run `PgQueue::migrate` (or `pjp-prover migrate`)",
        }),
        Some(found) if found > expected => Err(QueueError::SchemaVersion {
            schema: schema.to_owned(),
            found,
            expected,
            hint: "the schema is newer: upgrade this worker to the library version that migrated it",
        }),
        Some(_) => Ok(()),
    }
}
