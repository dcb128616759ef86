//! Wake-ups: the notification idle workers listen for.

/// Notifies channel `$1` with payload `$2` (a queue name). Delivered when
/// the transaction that sends it commits; NOTIFY takes a global lock at
/// commit, so it is sent once per queue per batch, never per job.
pub(crate) const NOTIFY: &str = "SELECT pg_notify($1, $2)";
