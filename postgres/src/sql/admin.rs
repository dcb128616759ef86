//! Operator statements: counts and load, dead letters, requeue, cancel,
//! purge, one job's row, and a parent's children.

use super::fragments::{cancel_siblings, parents};

pub(super) fn counts(s: &str) -> String {
    format!(
        "SELECT queue, status::text, count(*) FROM {s}.jobs GROUP BY queue, status ORDER BY 1, 2"
    )
}

pub(super) fn oldest_queued(s: &str) -> String {
    format!(
        "SELECT queue, extract(epoch FROM now() - min(created_at))::float8
         FROM {s}.jobs WHERE status = 'queued' GROUP BY queue"
    )
}

pub(super) fn lease_owners(s: &str) -> String {
    format!(
        "SELECT queue, lease_owner, count(*) FROM {s}.jobs
         WHERE status = 'running' GROUP BY queue, lease_owner ORDER BY 1, 2"
    )
}

pub(super) fn finished_recently(s: &str) -> String {
    format!(
        "SELECT queue, count(*) FROM {s}.jobs
         WHERE finished_at > now() - make_interval(secs => $1) GROUP BY queue"
    )
}

/// Per queue, kind and class: the autoscaler's signal. Reads only
/// live and recently finished rows (three partial indexes).
pub(super) fn load(s: &str) -> String {
    format!(
        "SELECT queue, kind, resource_class,
                count(*) FILTER (WHERE status = 'queued'),
                count(*) FILTER (WHERE status = 'running'),
                extract(epoch FROM now() - min(created_at) FILTER (WHERE status = 'queued'))::float8,
                count(*) FILTER (WHERE finished_at > now() - make_interval(secs => $1)),
                percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
                    FILTER (WHERE status = 'succeeded' AND started_at IS NOT NULL
                            AND finished_at > now() - make_interval(secs => $1))
         FROM {s}.jobs
         WHERE status IN ('queued', 'running')
            OR finished_at > now() - make_interval(secs => $1)
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
}

pub(super) fn dead(s: &str) -> String {
    format!(
        "SELECT id, queue, attempts, lost_leases, coalesce(last_error, '')
         FROM {s}.jobs WHERE status = 'dead' AND ($1::text IS NULL OR queue = $1)
         ORDER BY id LIMIT $2"
    )
}

/// The dead jobs an operator requeues ($1: one id, or every
/// dead job of queue $2, or of every queue) and their dead
/// ancestors (a dead child settled them dead), locked in id order.
pub(super) fn requeue_targets(s: &str) -> String {
    format!(
        "WITH RECURSIVE target AS (
             SELECT id, parent_id FROM {s}.jobs
             WHERE status = 'dead' AND ($1::bigint IS NULL OR id = $1)
               AND ($2::text IS NULL OR queue = $2)),
         up AS (
             SELECT p.id, p.parent_id FROM {s}.jobs p JOIN target t ON p.id = t.parent_id
             WHERE p.status = 'dead'
             UNION
             SELECT p.id, p.parent_id FROM {s}.jobs p JOIN up u ON p.id = u.parent_id
             WHERE p.status = 'dead')
         SELECT j.id FROM {s}.jobs j
         WHERE j.id IN (SELECT id FROM target UNION SELECT id FROM up)
         ORDER BY j.id
         FOR UPDATE OF j"
    )
}

/// Requeues the dead jobs in $1 (locked by `requeue_targets`) with
/// fresh budgets. A job whose children are not all done waits for
/// them again (`waiting_on` counts the ones not succeeded); one
/// with a child that can never succeed (failed, cancelled, or dead
/// and not requeued with it) stays dead. The token moves on, so a
/// worker still holding an old claim is fenced.
pub(super) fn requeue(s: &str) -> String {
    format!(
        "WITH revived AS (SELECT unnest($1::bigint[]) AS id),
         shape AS (
             SELECT r.id,
                    count(c.id) FILTER (WHERE c.status <> 'succeeded') AS pending,
                    coalesce(bool_or(c.status IN ('failed', 'cancelled')
                        OR (c.status = 'dead' AND c.id NOT IN (SELECT id FROM revived))), false)
                        AS blocked
             FROM revived r LEFT JOIN {s}.jobs c ON c.parent_id = r.id
             GROUP BY r.id)
         UPDATE {s}.jobs j SET
             status = (CASE WHEN s.pending > 0 THEN 'waiting' ELSE 'queued' END)::{s}.job_status,
             waiting_on = s.pending, attempts = 0, lost_leases = 0, infra_retries = 0,
             token = j.token + 1, run_after = now(), finished_at = NULL
         FROM shape s
         WHERE j.id = s.id AND j.status = 'dead' AND NOT s.blocked
         RETURNING j.id, j.queue, j.status::text"
    )
}

/// An operator's cancel settles the job's parent as a failed
/// child does (dead, or the tree cancelled).
pub(super) fn cancel(s: &str) -> String {
    let parents = parents(s);
    let settle_siblings = cancel_siblings(s, "settle");
    format!(
        "WITH gone AS (
             UPDATE {s}.jobs SET status = 'cancelled', token = token + 1, finished_at = now(),
                 lease_owner = NULL, lease_expires_at = NULL
             WHERE id = $1 AND status IN ('queued', 'running', 'waiting')
             RETURNING id, parent_id),
         settled AS (SELECT parent_id AS id FROM gone WHERE parent_id IS NOT NULL),
         {parents},
         settle AS (
             UPDATE {s}.jobs p SET
                 status = (CASE WHEN p.cancel_tree THEN 'cancelled' ELSE 'dead' END)::{s}.job_status,
                 last_error = format('child job %s was cancelled', $1::bigint),
                 finished_at = now()
             FROM parents l WHERE p.id = l.id
             RETURNING p.id, p.status),
         {settle_siblings}
         SELECT id FROM gone
         UNION ALL
         SELECT id FROM siblings WHERE false"
    )
}

pub(super) fn purge(s: &str) -> String {
    format!(
        "WITH doomed AS MATERIALIZED (
             SELECT id FROM {s}.jobs
             WHERE finished_at < now() - make_interval(secs => $1)
               AND (status IN ('succeeded', 'failed', 'cancelled') OR ($3 AND status = 'dead'))
             LIMIT $2
             FOR UPDATE SKIP LOCKED)
         DELETE FROM {s}.jobs j USING doomed d WHERE j.id = d.id
         RETURNING j.payload_key, j.result_key"
    )
}

pub(super) fn job(s: &str) -> String {
    format!(
        "SELECT id, queue, status::text, priority, attempts, max_attempts, lost_leases,
                max_lost_leases, token, lease_owner, last_error, result, result_key, result_crc,
                extract(epoch FROM run_after - now())::float8
         FROM {s}.jobs WHERE id = $1"
    )
}

pub(super) fn ids(s: &str) -> String {
    format!(
        "SELECT id FROM {s}.jobs
         WHERE queue = $1 AND status = $2::{s}.job_status AND id > $3
         ORDER BY id LIMIT $4"
    )
}

/// The children of parent `$1` with their results, oldest first.
pub(super) fn children(s: &str) -> String {
    format!(
        "SELECT id, kind, status::text, unique_key, result, result_key, result_crc
         FROM {s}.jobs WHERE parent_id = $1 ORDER BY id"
    )
}
