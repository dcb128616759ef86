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

/// The jobs `$1` an operator requeued are live again: their chunks
/// are read by claims again (migration `hot_chunks`).
pub(super) fn revive_chunks(s: &str) -> String {
    format!("SELECT {s}.revive_chunks($1)")
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

/// The reads of an operator's console ([`Statements::console`](super::Statements)):
/// counts per kind, lease holders, one job in full, a page of jobs, trees,
/// recent spans, and the cancel of a tree.
#[derive(Debug)]
pub(crate) struct ConsoleStatements {
    pub(crate) kind_counts: String,
    pub(crate) lease_holders: String,
    pub(crate) job_detail: String,
    pub(crate) id_bounds: String,
    pub(crate) job_page: String,
    pub(crate) child_counts: String,
    pub(crate) child_page: String,
    pub(crate) tree: String,
    pub(crate) recent_trees: String,
    pub(crate) batch_trees: String,
    pub(crate) cancel_tree: String,
    pub(crate) recent_spans: String,
}

impl ConsoleStatements {
    pub(crate) fn new(s: &str) -> Self {
        Self {
            kind_counts: kind_counts(s),
            lease_holders: lease_holders(s),
            job_detail: job_detail(s),
            id_bounds: id_bounds(s),
            job_page: job_page(s),
            child_counts: child_counts(s),
            child_page: child_page(s),
            tree: tree(s),
            recent_trees: recent_trees(s),
            batch_trees: batch_trees(s),
            cancel_tree: cancel_tree(s),
            recent_spans: recent_spans(s),
        }
    }
}

/// Jobs per queue, kind, class and status: one scan of the table (a
/// dashboard's refresh, not a per-job call).
fn kind_counts(s: &str) -> String {
    format!(
        "SELECT queue, kind, resource_class, status::text, count(*) FROM {s}.jobs
         GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
    )
}

/// Per lease owner and queue: the running jobs it holds, their kinds, its
/// oldest claim and its leases' expiries (from `jobs_lease_expiry`: only
/// running rows are read).
fn lease_holders(s: &str) -> String {
    format!(
        "SELECT coalesce(lease_owner, '?'), queue, count(*),
                array_agg(DISTINCT kind ORDER BY kind),
                extract(epoch FROM now() - min(started_at))::float8,
                extract(epoch FROM min(lease_expires_at) - now())::float8,
                extract(epoch FROM max(lease_expires_at) - now())::float8,
                (array_agg(id ORDER BY id))[1:20]
         FROM {s}.jobs WHERE status = 'running'
         GROUP BY 1, 2 ORDER BY 1, 2"
    )
}

/// Every column an operator looks at of job `$1`, times as Unix seconds.
fn job_detail(s: &str) -> String {
    format!(
        "SELECT id, queue, kind, resource_class, status::text, priority, batch, depth,
                attempts, max_attempts, lost_leases, max_lost_leases, infra_retries, token,
                lease_owner, extract(epoch FROM lease_expires_at - now())::float8,
                last_error, unique_key, parent_id, waiting_on, cancel_tree,
                extract(epoch FROM created_at)::float8, extract(epoch FROM started_at)::float8,
                extract(epoch FROM finished_at)::float8, extract(epoch FROM run_after - now())::float8,
                octet_length(payload)::int8, payload_key, payload_crc,
                octet_length(result)::int8, result_key, result_crc
         FROM {s}.jobs WHERE id = $1"
    )
}

/// The highest and lowest job ids (two look-ups of the primary key).
fn id_bounds(s: &str) -> String {
    format!("SELECT coalesce(max(id), 0), coalesce(min(id), 0) FROM {s}.jobs")
}

/// A page of jobs, newest first, matching the filters ($3 queue, $4
/// status, $5 kind, $6 batch, $7 parent; NULL: any), with ids in
/// [$2, $1): a backward range scan of the primary key that stops at the
/// page's end or at the window's floor, so a page reads at most the
/// window however many rows the table holds and however rare the match.
fn job_page(s: &str) -> String {
    format!(
        "SELECT id, queue, kind, resource_class, status::text, batch, depth, attempts,
                lost_leases, lease_owner, parent_id,
                extract(epoch FROM created_at)::float8, extract(epoch FROM finished_at)::float8,
                left(last_error, 300)
         FROM {s}.jobs
         WHERE id < $1 AND id >= $2
           AND ($3::text IS NULL OR queue = $3)
           AND ($4::text IS NULL OR status = $4::{s}.job_status)
           AND ($5::text IS NULL OR kind = $5)
           AND ($6::bigint IS NULL OR batch = $6)
           AND ($7::bigint IS NULL OR parent_id = $7)
         ORDER BY id DESC LIMIT $8"
    )
}

/// The first `$2` children of parent `$1` by id, with the columns of
/// [`job_page`] (`jobs_children`).
fn child_page(s: &str) -> String {
    format!(
        "SELECT id, queue, kind, resource_class, status::text, batch, depth, attempts,
                lost_leases, lease_owner, parent_id,
                extract(epoch FROM created_at)::float8, extract(epoch FROM finished_at)::float8,
                left(last_error, 300)
         FROM {s}.jobs WHERE parent_id = $1
         ORDER BY id LIMIT $2"
    )
}

/// Parent `$1`'s children per status (`jobs_children`).
fn child_counts(s: &str) -> String {
    format!(
        "SELECT status::text, count(*) FROM {s}.jobs WHERE parent_id = $1
         GROUP BY 1 ORDER BY 1"
    )
}

/// The recursive CTEs `up` (job `$1` and its ancestors) and `top` (the
/// tree's top), then `down` (the top and its descendants by level, through
/// `jobs_children`), at most 64 levels either way.
fn tree_ctes(s: &str) -> String {
    format!(
        "up AS (
             SELECT id, parent_id, 0 AS n FROM {s}.jobs WHERE id = $1
             UNION ALL
             SELECT j.id, j.parent_id, u.n + 1 FROM {s}.jobs j JOIN up u ON j.id = u.parent_id
             WHERE u.n < 64),
         top AS (SELECT id FROM up ORDER BY n DESC LIMIT 1),
         down AS (
             SELECT j.id, 0 AS level FROM {s}.jobs j JOIN top t ON j.id = t.id
             UNION ALL
             SELECT j.id, d.level + 1 FROM {s}.jobs j JOIN down d ON j.parent_id = d.id
             WHERE d.level < 64)"
    )
}

/// The tree job `$1` belongs to, from its top, level by level, at most
/// `$2` jobs (a recursive CTE is read lazily: the limit stops the walk).
fn tree(s: &str) -> String {
    format!(
        "WITH RECURSIVE {}
         SELECT j.id, j.parent_id, d.level, j.queue, j.kind, j.status::text, j.depth, j.batch,
                j.attempts, j.lost_leases,
                extract(epoch FROM j.created_at)::float8, extract(epoch FROM j.started_at)::float8,
                extract(epoch FROM j.finished_at)::float8
         FROM (SELECT id, level FROM down LIMIT $2) d JOIN {s}.jobs j ON j.id = d.id
         ORDER BY d.level, j.id",
        tree_ctes(s)
    )
}

/// What a list of trees shows of each top.
fn tree_top_columns(s: &str) -> String {
    format!(
        "j.id, j.queue, j.kind, j.status::text, j.batch,
         extract(epoch FROM j.created_at)::float8, extract(epoch FROM j.finished_at)::float8,
         (SELECT count(*) FROM {s}.jobs c WHERE c.parent_id = j.id),
         (SELECT count(*) FROM {s}.jobs c WHERE c.parent_id = j.id AND c.status = 'succeeded')"
    )
}

/// The newest trees' tops: the `$1` newest distinct parents, read one index
/// look-up each from `jobs_children` (a loose index scan), of which the
/// tops (no parent of their own), at most `$2`.
fn recent_trees(s: &str) -> String {
    format!(
        "WITH RECURSIVE p(id) AS (
             (SELECT parent_id FROM {s}.jobs WHERE parent_id IS NOT NULL
              ORDER BY parent_id DESC LIMIT 1)
             UNION ALL
             SELECT (SELECT j.parent_id FROM {s}.jobs j
                     WHERE j.parent_id IS NOT NULL AND j.parent_id < p.id
                     ORDER BY j.parent_id DESC LIMIT 1)
             FROM p WHERE p.id IS NOT NULL),
         parents AS (SELECT id FROM p WHERE id IS NOT NULL LIMIT $1)
         SELECT {}
         FROM parents x JOIN {s}.jobs j ON j.id = x.id
         WHERE j.parent_id IS NULL
         ORDER BY j.id DESC LIMIT $2",
        tree_top_columns(s)
    )
}

/// The tops of batch `$1`'s trees, newest first, at most `$2`. No index
/// has the batch of finished rows: this scans the table.
fn batch_trees(s: &str) -> String {
    format!(
        "SELECT {}
         FROM {s}.jobs j
         WHERE j.batch = $1 AND j.parent_id IS NULL
           AND EXISTS (SELECT 1 FROM {s}.jobs c WHERE c.parent_id = j.id)
         ORDER BY j.id DESC LIMIT $2",
        tree_top_columns(s)
    )
}

/// Cancels every job of the tree job `$1` belongs to that is still queued,
/// running or waiting, locked in id order; the tokens move on, so workers
/// running them are fenced. The whole tree goes, from its top, so no parent
/// is left to settle.
fn cancel_tree(s: &str) -> String {
    format!(
        "WITH RECURSIVE {},
         doomed AS MATERIALIZED (
             SELECT j.id FROM {s}.jobs j
             WHERE j.id IN (SELECT id FROM down) AND j.status IN ('queued', 'running', 'waiting')
             ORDER BY j.id
             FOR UPDATE OF j)
         UPDATE {s}.jobs j SET status = 'cancelled', token = j.token + 1, finished_at = now(),
             lease_owner = NULL, lease_expires_at = NULL
         FROM doomed d
         WHERE j.id = d.id AND j.status IN ('queued', 'running', 'waiting')
         RETURNING j.id",
        tree_ctes(s)
    )
}

/// Jobs running now or finished in the last `$1` seconds (the two partial
/// indexes `jobs_lease_expiry` and `jobs_finished`), newest first, at most
/// `$2`, with the database's clock.
fn recent_spans(s: &str) -> String {
    format!(
        "SELECT id, queue, kind, status::text, lease_owner,
                extract(epoch FROM started_at)::float8, extract(epoch FROM finished_at)::float8,
                extract(epoch FROM now())::float8
         FROM {s}.jobs
         WHERE started_at IS NOT NULL
           AND (status = 'running' OR finished_at > now() - make_interval(secs => $1))
         ORDER BY id DESC LIMIT $2"
    )
}
