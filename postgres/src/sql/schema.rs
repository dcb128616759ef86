//! The schema's own bookkeeping: migrating it (its advisory lock, creating
//! it, sqlx's table of applied versions) and its identity. The migrations
//! themselves stay in `migrations/`.

/// Takes the session advisory lock `$1` (a key naming the schema) that
/// serialises concurrent migrations from `CREATE SCHEMA` on.
/// After a migration, in the queue's schema (`search_path`): statistics from
/// the start, so no plan is made on none.
pub(crate) const ANALYZE_JOBS: &str = "ANALYZE jobs";

pub(crate) const MIGRATE_LOCK: &str = "SELECT pg_advisory_lock(hashtextextended($1, 0))";

/// Whether schema `$1` has sqlx's migrations table yet.
pub(crate) const MIGRATIONS_TABLE_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = '_sqlx_migrations')";

/// Creates the schema if needed.
pub(crate) fn create_schema(s: &str) -> String {
    format!("CREATE SCHEMA IF NOT EXISTS {s}")
}

/// Points the session's unqualified names at the schema: the migrations name
/// no schema, so they and sqlx's own `_sqlx_migrations` land in it.
pub(crate) fn set_search_path(s: &str) -> String {
    format!("SET search_path TO {s}")
}

/// The migration versions applied successfully, oldest first.
pub(crate) fn applied_versions(s: &str) -> String {
    format!("SELECT version FROM {s}._sqlx_migrations WHERE success ORDER BY version")
}

/// The queue identity made when the schema was created: the root of its
/// blobs in the object store.
pub(super) fn identity(s: &str) -> String {
    format!("SELECT id FROM {s}.queue_identity")
}
