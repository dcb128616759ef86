//! The queue's own maintenance: statistics and dead rows of the jobs table,
//! kept fresh by its workers rather than left to autovacuum's settings.

/// Only one worker of a schema maintains it at a time (a transaction lock,
/// taken without waiting, held by a transaction open around the work, so
/// that it works through a transaction pooler; $1 is the schema's lock
/// name). It conflicts with a session lock of the same name.
pub(crate) const TRY_LOCK: &str = "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))";

/// What the jobs table has gone through since it was last analyzed, and its
/// dead and live rows (the statistics collector's view, a second or so old),
/// for schema $1.
pub(crate) const CHURN: &str = "SELECT coalesce(n_mod_since_analyze, 0), coalesce(n_dead_tup, 0),
        coalesce(n_live_tup, 0)
     FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'jobs'";

pub(super) fn analyze(s: &str) -> String {
    format!("ANALYZE {s}.jobs")
}

/// Cannot run inside a transaction: executed on its own.
pub(super) fn vacuum(s: &str) -> String {
    format!("VACUUM (ANALYZE) {s}.jobs")
}

/// Closes the claims' open range of chunks and forgets the closed chunks
/// whose jobs have all finished (migration `hot_chunks`); returns the number
/// of chunks a claim reads. The rescuer runs it after every rescue.
pub(super) fn hot_set(s: &str) -> String {
    format!("SELECT {s}.maintain_hot_set()")
}
