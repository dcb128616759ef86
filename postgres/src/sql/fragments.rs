//! CTE fragments several statements share, written once so that every batch
//! write locks its rows the same way and every fan-in settles parents alike.

/// The `input` and `locked` CTEs of a fenced batch write: the rows of `input`
/// (a query returning at least `id, token`) whose (id, token) still match a
/// running job, locked in id order. Looked up by primary key: the status
/// is compared as text, so no partial index on it can serve the join (see
/// `complete::locked_or_late`).
pub(super) fn locked(s: &str, input: &str) -> String {
    format!(
        "input AS ({input}),
         locked AS MATERIALIZED (
             SELECT j.id FROM {s}.jobs j JOIN input i ON j.id = i.id AND j.token = i.token
             WHERE j.status::text = 'running'
             ORDER BY j.id
             FOR UPDATE OF j)"
    )
}

/// The `input` of a batch of claims: (id, token) pairs bound as `$1` and `$2`.
pub(super) const IDS_TOKENS: &str =
    "SELECT * FROM unnest($1::bigint[], $2::bigint[]) AS i(id, token)";

/// Fan-in: the waiting parents of the children in `settled`, locked in id
/// order like every batch here, found by primary key (the status compared
/// as text, see [`locked`]). Two completions of one parent's children
/// queue up on its row, and the later sees the earlier's count.
pub(super) fn parents(s: &str) -> String {
    format!(
        "parents AS MATERIALIZED (
             SELECT p.id FROM {s}.jobs p JOIN settled c ON p.id = c.id
             WHERE p.status::text = 'waiting'
             ORDER BY p.id
             FOR UPDATE OF p)"
    )
}

/// A parent settled `cancelled` (its policy is to cancel the tree) takes its
/// children still queued or waiting with it; running ones finish and their
/// results settle nothing. `settled_parents` is a CTE returning (id, status)
/// of the parents just settled. The children are found through
/// `jobs_children`: with the status compared as text, the planner cannot
/// read all of `jobs_live` instead (it did, 20 ms a completion, once the
/// statistics saw few live jobs).
pub(super) fn cancel_siblings(s: &str, settled_parents: &str) -> String {
    format!(
        "doomed AS MATERIALIZED (
             SELECT c.id, c.parent_id FROM {s}.jobs c JOIN {settled_parents} t ON c.parent_id = t.id
             WHERE t.status = 'cancelled' AND c.status::text IN ('queued', 'waiting')
             ORDER BY c.id
             FOR UPDATE OF c SKIP LOCKED),
         siblings AS (
             UPDATE {s}.jobs c SET status = 'cancelled', finished_at = now(),
                 token = c.token + 1,
                 last_error = format('cancelled with its tree: parent job %s was settled', d.parent_id)
             FROM doomed d WHERE c.id = d.id
             RETURNING c.id)"
    )
}
