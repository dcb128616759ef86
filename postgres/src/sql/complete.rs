//! Fenced batch writes: a claim's end (completion, release) and the look-up
//! that explains a write that matched no row. The completion also settles
//! the parents of the children it finishes (fan-in), in the same statement,
//! and may accept a stale claim's success late (see [`locked_or_late`]).

use super::fragments::{IDS_TOKENS, cancel_siblings, locked, parents};

/// How a saved row ends, as the `kind` column of a batch completion. The
/// discriminants are the numbers [`complete`] tests for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i16)]
pub(crate) enum Completion {
    /// The executor produced an output.
    Succeeded = 0,
    /// The executor failed: use an attempt, retry after a back-off, or end
    /// `dead` when the attempts are spent.
    Retry = 1,
    /// The executor failed for good: `failed`, no retry.
    Failed = 2,
    /// Nobody's fault (the job was cancelled on this worker): back to
    /// `queued` at once, no attempt used.
    Release = 3,
    /// The job cannot run at all (its payload is missing or corrupt): `dead`
    /// now, with the error, so an operator can fix it and requeue it.
    Dead = 4,
    /// The infrastructure around the execution failed (the database or the
    /// store went away while the executor read from them): `queued` again
    /// after a back-off on `infra_retries`, no attempt used.
    Infrastructure = 5,
}

/// The rows of a batch completion that still belong to their claim, and the
/// late successes it may accept instead, locked in id order like every
/// batch write ([`locked`] plus one case).
///
/// A late success is a success (`kind` 0) from a claim that held the job
/// once (its token is not ahead of the row's) but lost it, while the job has
/// not finished: `queued` (rescued, perhaps waiting for a retry) or
/// `running` under another claim. Late results are accepted per queue:
/// `$10` says whether by default, `$11` lists the queues that do the
/// opposite. Two late successes of one job queue up on its row lock; the
/// second re-reads the row, finds it `succeeded`, and is fenced: exactly one
/// is accepted. The status is compared as text so that no partial index
/// on it (`jobs_lease_expiry`, `jobs_live`) can serve the join: with
/// statistics that saw few running jobs, the planner would read all of
/// `jobs_lease_expiry` and hash it, walking every dead entry the table's
/// churn left there, instead of looking the batch up by primary key.
fn locked_or_late(s: &str) -> String {
    format!(
        "input AS (
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::smallint[], $4::bytea[],
                                  $5::text[], $6::bigint[], $7::text[])
             AS i(id, token, kind, result, result_key, result_crc, error)),
         locked AS MATERIALIZED (
             SELECT j.id, (j.token <> i.token OR j.status <> 'running') AS late
             FROM {s}.jobs j JOIN input i ON j.id = i.id
             WHERE (j.token = i.token AND j.status::text = 'running')
                OR (i.kind = 0 AND i.token <= j.token AND j.status::text IN ('queued', 'running')
                    AND $10::boolean <> (j.queue = ANY($11::text[])))
             ORDER BY j.id
             FOR UPDATE OF j)"
    )
}

pub(super) fn complete(s: &str) -> String {
    let parents = parents(s);
    let woken_siblings = cancel_siblings(s, "woken");
    format!(
        "WITH {},
         done AS (
             UPDATE {s}.jobs j SET
                 status = (CASE
                     WHEN i.kind = 0 THEN 'succeeded'
                     WHEN i.kind = 2 THEN 'failed'
                     WHEN i.kind IN (3, 5) THEN 'queued'
                     WHEN i.kind = 4 THEN 'dead'
                     WHEN j.attempts + 1 >= j.max_attempts THEN 'dead'
                     ELSE 'queued' END)::{s}.job_status,
                 attempts = j.attempts + (CASE WHEN i.kind IN (1, 2) THEN 1 ELSE 0 END),
                 infra_retries = j.infra_retries + (CASE WHEN i.kind = 5 THEN 1 ELSE 0 END),
                 run_after = CASE
                     WHEN i.kind = 5 THEN now() + make_interval(secs =>
                         least($9, $8 * power(2, least(j.infra_retries, 30))) * (0.5 + random() / 2))
                     WHEN i.kind = 1 THEN now() + make_interval(secs =>
                         least($9, $8 * power(2, least(j.attempts, 30))) * (0.5 + random() / 2))
                     WHEN i.kind = 3 THEN now()
                     ELSE j.run_after END,
                 result = i.result, result_key = i.result_key, result_crc = i.result_crc,
                 last_error = CASE WHEN i.kind = 0 THEN j.last_error ELSE i.error END,
                 finished_at = CASE
                     WHEN i.kind IN (0, 2, 4) OR (i.kind = 1 AND j.attempts + 1 >= j.max_attempts)
                     THEN now() END,
                 -- A late success moves the token on: the claim holding the
                 -- job now is fenced, and its heartbeat finds the lease lost.
                 token = CASE WHEN l.late THEN j.token + 1 ELSE j.token END,
                 late_token = CASE WHEN l.late THEN i.token END,
                 lease_owner = NULL, lease_expires_at = NULL
             FROM input i, locked l
             WHERE j.id = i.id AND j.id = l.id
             RETURNING j.id, j.status, j.parent_id, l.late),
         -- Fan-in: the children that finished here, per parent (a late
         -- success counts like any other: its row left `queued` or
         -- `running` here, once).
         settled AS (
             SELECT parent_id AS id,
                    count(*) FILTER (WHERE status = 'succeeded') AS ok,
                    min(id) FILTER (WHERE status IN ('dead', 'failed')) AS failed_child
             FROM done
             WHERE parent_id IS NOT NULL AND status IN ('succeeded', 'dead', 'failed')
             GROUP BY parent_id),
         {parents},
         woken AS (
             UPDATE {s}.jobs p SET
                 waiting_on = greatest(p.waiting_on - c.ok, 0),
                 status = (CASE
                     WHEN c.failed_child IS NOT NULL AND p.cancel_tree THEN 'cancelled'
                     WHEN c.failed_child IS NOT NULL THEN 'dead'
                     WHEN p.waiting_on - c.ok <= 0 THEN 'queued'
                     ELSE 'waiting' END)::{s}.job_status,
                 last_error = CASE WHEN c.failed_child IS NOT NULL
                     THEN format('child job %s failed: %s', c.failed_child,
                                 (SELECT coalesce(i.error, '') FROM input i WHERE i.id = c.failed_child))
                     ELSE p.last_error END,
                 finished_at = CASE WHEN c.failed_child IS NOT NULL THEN now() END,
                 run_after = now()
             FROM settled c, parents l
             WHERE p.id = c.id AND p.id = l.id
             RETURNING p.id, p.queue, p.status),
         {woken_siblings}
         -- The jobs written (and whether late), then the parents made
         -- claimable (their queue, so the worker can wake the pickers
         -- waiting on it).
         SELECT id, status::text, NULL::text, late FROM done
         UNION ALL
         SELECT id, 'parent-queued', queue, false FROM woken WHERE status = 'queued'
         UNION ALL
         SELECT id, 'sibling-cancelled', NULL, false FROM siblings WHERE false",
        locked_or_late(s),
    )
}

pub(super) fn release(s: &str) -> String {
    format!(
        "WITH {}
         UPDATE {s}.jobs j
         SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL,
             run_after = now() + make_interval(secs => $3),
             last_error = coalesce($4, j.last_error)
         FROM locked l WHERE j.id = l.id
         RETURNING j.id",
        locked(s, IDS_TOKENS)
    )
}

pub(super) fn current_tokens(s: &str) -> String {
    format!("SELECT id, token, status::text, queue FROM {s}.jobs WHERE id = ANY($1)")
}

/// What explains a write that matched no row: [`current_tokens`], and the
/// token of the stale claim whose success was accepted late, if one was.
pub(super) fn fenced_claims(s: &str) -> String {
    format!(
        "SELECT id, token, status::text, lost_leases, late_token FROM {s}.jobs WHERE id = ANY($1)"
    )
}
