//! Leases: the heartbeat that extends a worker's leases, and the rescue that
//! returns expired ones to the queue (settling the parents of the jobs it
//! ends dead, as a completion does).

use super::fragments::{IDS_TOKENS, cancel_siblings, locked, parents};

/// Extends the leases `($1, $2)` by `$3` seconds and, when the rescuer role
/// has lapsed (or is this worker's, `$4`), takes it for `$5` seconds: one
/// statement per worker per heartbeat, whatever it holds. Returns the ids
/// extended, whether this worker holds the role, and which of the jobs `$6`
/// (executions going on past a lost lease) can still be completed by a late
/// success: those neither finished nor gone.
pub(super) fn heartbeat(s: &str) -> String {
    format!(
        "WITH {},
         extended AS (
             UPDATE {s}.jobs j SET lease_expires_at = now() + make_interval(secs => $3)
             FROM locked l WHERE j.id = l.id
             RETURNING j.id),
         role AS (
             UPDATE {s}.rescuer SET owner = $4,
                 expires_at = now() + make_interval(secs => $5)
             WHERE expires_at < now() OR owner = $4
             RETURNING owner)
         SELECT coalesce(array(SELECT id FROM extended), '{{}}'::bigint[]),
                EXISTS (SELECT 1 FROM role),
                coalesce(array(SELECT id FROM {s}.jobs
                               WHERE id = ANY($6::bigint[]) AND status IN ('queued', 'running')),
                         '{{}}'::bigint[])",
        locked(s, IDS_TOKENS)
    )
}

/// Returns up to `$1` expired leases to the queue (`$2`: see below), and
/// renews the rescuer role of worker `$3` for `$4` seconds if it holds it:
/// a row `(NULL, 'rescuer')` says it does.
pub(super) fn rescue(s: &str) -> String {
    let parents = parents(s);
    let settle_siblings = cancel_siblings(s, "settle");
    format!(
        "WITH expired AS MATERIALIZED (
             -- Read per hot chunk, locked. $2: how long the rescuer
             -- could not see the database; leases that expired
             -- meanwhile are left to their holders for one more
             -- lease time.
             SELECT e AS id
             FROM {s}.expired_leases(now() - make_interval(secs => $2), ($1::bigint)::int) e),
         rescued AS (
             UPDATE {s}.jobs j SET
                 lost_leases = j.lost_leases + 1,
                 status = (CASE WHEN j.lost_leases + 1 >= j.max_lost_leases
                                THEN 'dead' ELSE 'queued' END)::{s}.job_status,
                 finished_at = CASE WHEN j.lost_leases + 1 >= j.max_lost_leases THEN now() END,
                 last_error = CASE WHEN j.lost_leases + 1 >= j.max_lost_leases
                     THEN format('lost its lease %s times (last held by %s): the job kills or strands every worker that takes it',
                                 j.lost_leases + 1, j.lease_owner)
                     ELSE j.last_error END,
                 lease_owner = NULL, lease_expires_at = NULL, run_after = now()
             WHERE j.id = ANY (ARRAY (SELECT id FROM expired))
             RETURNING j.id, j.status, j.parent_id, j.last_error),
         -- A child dead of lost leases settles its parent, as a dead
         -- child does on the completion path.
         settled AS (
             SELECT parent_id AS id, min(id) AS failed_child FROM rescued
             WHERE parent_id IS NOT NULL AND status = 'dead'
             GROUP BY parent_id),
         {parents},
         settle AS (
             UPDATE {s}.jobs p SET
                 status = (CASE WHEN p.cancel_tree THEN 'cancelled' ELSE 'dead' END)::{s}.job_status,
                 last_error = format('child job %s failed: %s', c.failed_child,
                     (SELECT coalesce(r.last_error, '') FROM rescued r WHERE r.id = c.failed_child)),
                 finished_at = now()
             FROM settled c, parents l
             WHERE p.id = c.id AND p.id = l.id
             RETURNING p.id, p.status),
         {settle_siblings},
         role AS (
             UPDATE {s}.rescuer SET expires_at = now() + make_interval(secs => $4)
             WHERE owner = $3
             RETURNING owner)
         SELECT id, status::text FROM rescued
         UNION ALL
         SELECT NULL, 'rescuer' FROM role
         UNION ALL
         SELECT id, 'sibling-cancelled' FROM siblings WHERE false"
    )
}
