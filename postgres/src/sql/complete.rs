//! Fenced batch writes: a claim's end (completion, release) and the look-up
//! that explains a write that matched no row. The completion also settles
//! the parents of the children it finishes (fan-in), in the same statement.

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
                 lease_owner = NULL, lease_expires_at = NULL
             FROM input i, locked l
             WHERE j.id = i.id AND j.id = l.id
             RETURNING j.id, j.status, j.parent_id),
         -- Fan-in: the children that finished here, per parent.
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
         -- The jobs written, then the parents made claimable (their
         -- queue, so the worker can wake the pickers waiting on it).
         SELECT id, status::text, NULL::text FROM done
         UNION ALL
         SELECT id, 'parent-queued', queue FROM woken WHERE status = 'queued'
         UNION ALL
         SELECT id, 'sibling-cancelled', NULL FROM siblings WHERE false",
        locked(
            s,
            "SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::smallint[], $4::bytea[],
                                  $5::text[], $6::bigint[], $7::text[])
             AS i(id, token, kind, result, result_key, result_crc, error)"
        ),
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
    format!("SELECT id, token, status::text, lost_leases FROM {s}.jobs WHERE id = ANY($1)")
}
