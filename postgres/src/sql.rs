//! Every statement the queue runs, written once for a schema.
//!
//! The schema name is validated ([`check_schema_name`](crate::schema)) before
//! it is spliced in; every value goes through a bind parameter. Statements
//! that lock several rows lock them in id order (the `locked` CTEs), like the
//! claim does, so a batched completion and a heartbeat of the same worker
//! cannot deadlock against each other.

/// How a saved row ends, as the `kind` column of a batch completion.
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

/// The statements of one schema.
#[derive(Debug)]
pub(crate) struct Statements {
    pub(crate) claim: String,
    pub(crate) claim_fifo: String,
    pub(crate) claim_kinds: String,
    pub(crate) claim_classes: String,
    pub(crate) claim_except: String,
    pub(crate) complete: String,
    pub(crate) release: String,
    pub(crate) heartbeat: String,
    pub(crate) rescue: String,
    pub(crate) current_tokens: String,
    pub(crate) has_work: String,
    pub(crate) has_work_kinds: String,
    pub(crate) has_work_except: String,
    pub(crate) insert: String,
    pub(crate) existing_keys: String,
    pub(crate) counts: String,
    pub(crate) oldest_queued: String,
    pub(crate) lease_owners: String,
    pub(crate) finished_recently: String,
    pub(crate) load: String,
    pub(crate) dead: String,
    pub(crate) requeue_targets: String,
    pub(crate) requeue: String,
    pub(crate) cancel: String,
    pub(crate) purge: String,
    pub(crate) job: String,
    pub(crate) ids: String,
}

impl Statements {
    pub(crate) fn new(s: &str) -> Self {
        // One CTE shape for every fenced batch write: the rows whose
        // (id, token) still match a running job, locked in id order.
        let locked = |input: &str| {
            format!(
                "input AS ({input}),
                 locked AS MATERIALIZED (
                     SELECT j.id FROM {s}.jobs j JOIN input i ON j.id = i.id AND j.token = i.token
                     WHERE j.status = 'running'
                     ORDER BY j.id
                     FOR UPDATE OF j)"
            )
        };
        let ids_tokens = "SELECT * FROM unnest($1::bigint[], $2::bigint[]) AS i(id, token)";
        // Fan-in: the waiting parents of the children in `settled`, locked in
        // id order like every batch here. Two completions of one parent's
        // children queue up on its row, and the later sees the earlier's count.
        let parents = format!(
            "parents AS MATERIALIZED (
                 SELECT p.id FROM {s}.jobs p JOIN settled c ON p.id = c.id
                 WHERE p.status = 'waiting'
                 ORDER BY p.id
                 FOR UPDATE OF p)"
        );
        // A parent settled `cancelled` (its policy is to cancel the tree)
        // takes its children still queued or waiting with it; running ones
        // finish and their results settle nothing. `settled_parents` is a
        // CTE returning (id, status) of the parents just settled.
        let cancel_siblings = |settled_parents: &str| {
            format!(
                "doomed AS MATERIALIZED (
                     SELECT c.id, c.parent_id FROM {s}.jobs c JOIN {settled_parents} t ON c.parent_id = t.id
                     WHERE t.status = 'cancelled' AND c.status IN ('queued', 'waiting')
                     ORDER BY c.id
                     FOR UPDATE OF c SKIP LOCKED),
                 siblings AS (
                     UPDATE {s}.jobs c SET status = 'cancelled', finished_at = now(),
                         token = c.token + 1,
                         last_error = format('cancelled with its tree: parent job %s was settled', d.parent_id)
                     FROM doomed d WHERE c.id = d.id
                     RETURNING c.id)"
            )
        };
        let woken_siblings = cancel_siblings("woken");
        let settle_siblings = cancel_siblings("settle");
        // Every claim ends the same way: the picked rows become this
        // worker's leases, with a new fencing token.
        let claim_set = "SET status = 'running', lease_owner = $3,
                     lease_expires_at = now() + make_interval(secs => $4),
                     token = j.token + 1, started_at = now()
                 FROM picked WHERE j.id = picked.id
                 RETURNING j.id, j.token, j.priority, j.attempts, j.lost_leases,
                           j.payload, j.payload_key, j.payload_crc, j.kind, j.batch, j.depth";
        Self {
            // Priority, then the oldest batch, then the round closest to the
            // final proof, then age (`jobs_claimable_proof`).
            claim: format!(
                "WITH picked AS MATERIALIZED (
                     SELECT id FROM {s}.jobs
                     WHERE queue = $1 AND status = 'queued' AND run_after <= now()
                     ORDER BY priority DESC, batch, depth, id
                     LIMIT $2
                     FOR UPDATE SKIP LOCKED)
                 UPDATE {s}.jobs j
                 {claim_set}"
            ),
            // Priority, then age: the FIFO order (`jobs_claimable`).
            claim_fifo: format!(
                "WITH picked AS MATERIALIZED (
                     SELECT id FROM {s}.jobs
                     WHERE queue = $1 AND status = 'queued' AND run_after <= now()
                     ORDER BY priority DESC, id
                     LIMIT $2
                     FOR UPDATE SKIP LOCKED)
                 UPDATE {s}.jobs j
                 {claim_set}"
            ),
            // Kinds in the worker's order of preference ($5), each read from
            // its own range of `jobs_claimable_kind` and locked there (SKIP
            // LOCKED, so concurrent workers pass each other by), then the
            // batch taken in preference order: a heavy job first, a light one
            // when no heavy one is queued. Classes ($6) filter within a kind.
            // The rows a kind over-locks are unlocked when the statement ends.
            claim_kinds: format!(
                "WITH wanted AS (
                     SELECT k, n FROM unnest($5::text[]) WITH ORDINALITY AS w(k, n)),
                 candidates AS MATERIALIZED (
                     SELECT c.id, c.priority, c.batch, c.depth, w.n FROM wanted w CROSS JOIN LATERAL (
                         SELECT j.id, j.priority, j.batch, j.depth FROM {s}.jobs j
                         WHERE j.queue = $1 AND j.kind = w.k AND j.status = 'queued'
                           AND j.run_after <= now()
                           AND ($6::text[] IS NULL OR j.resource_class = ANY($6))
                         ORDER BY j.priority DESC, j.batch, j.depth, j.id
                         LIMIT $2
                         FOR UPDATE OF j SKIP LOCKED) c),
                 picked AS MATERIALIZED (
                     SELECT id FROM candidates ORDER BY n, priority DESC, batch, depth, id LIMIT $2)
                 UPDATE {s}.jobs j
                 {claim_set}"
            ),
            // Any kind, only the classes in $5.
            claim_classes: format!(
                "WITH picked AS MATERIALIZED (
                     SELECT id FROM {s}.jobs
                     WHERE queue = $1 AND status = 'queued' AND run_after <= now()
                       AND resource_class = ANY($5)
                     ORDER BY priority DESC, batch, depth, id
                     LIMIT $2
                     FOR UPDATE SKIP LOCKED)
                 UPDATE {s}.jobs j
                 {claim_set}"
            ),
            // Every kind but those in $5 (and only the classes in $6, when
            // set): the proof-first scan of `jobs_claimable_proof`, with the
            // few excluded rows (aggregations, say) filtered as it reads, so
            // it costs what the kind-agnostic claim costs.
            claim_except: format!(
                "WITH picked AS MATERIALIZED (
                     SELECT id FROM {s}.jobs
                     WHERE queue = $1 AND status = 'queued' AND run_after <= now()
                       AND kind <> ALL($5::text[])
                       AND ($6::text[] IS NULL OR resource_class = ANY($6))
                     ORDER BY priority DESC, batch, depth, id
                     LIMIT $2
                     FOR UPDATE SKIP LOCKED)
                 UPDATE {s}.jobs j
                 {claim_set}"
            ),
            complete: format!(
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
                    "SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::smallint[], $4::bytea[],
                                          $5::text[], $6::bigint[], $7::text[])
                     AS i(id, token, kind, result, result_key, result_crc, error)"
                ),
            ),
            release: format!(
                "WITH {}
                 UPDATE {s}.jobs j
                 SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL,
                     run_after = now() + make_interval(secs => $3),
                     last_error = coalesce($4, j.last_error)
                 FROM locked l WHERE j.id = l.id
                 RETURNING j.id",
                locked(ids_tokens)
            ),
            heartbeat: format!(
                "WITH {}
                 UPDATE {s}.jobs j SET lease_expires_at = now() + make_interval(secs => $3)
                 FROM locked l WHERE j.id = l.id
                 RETURNING j.id",
                locked(ids_tokens)
            ),
            rescue: format!(
                "WITH expired AS MATERIALIZED (
                     SELECT id FROM {s}.jobs
                     WHERE status = 'running'
                       -- $2: how long the rescuer could not see the
                       -- database; leases that expired meanwhile are left
                       -- to their holders for one more lease time.
                       AND lease_expires_at < now() - make_interval(secs => $2)
                     ORDER BY id LIMIT $1
                     FOR UPDATE SKIP LOCKED),
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
                     FROM expired e WHERE j.id = e.id
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
                 {settle_siblings}
                 SELECT id, status::text FROM rescued
                 UNION ALL
                 SELECT id, 'sibling-cancelled' FROM siblings WHERE false"
            ),
            current_tokens: format!(
                "SELECT id, token, status::text, lost_leases FROM {s}.jobs WHERE id = ANY($1)"
            ),
            // For a picker of some kinds: work is one of its kinds queued,
            // running, or waiting for children (it will be claimable).
            has_work_kinds: format!(
                "SELECT EXISTS (SELECT 1 FROM {s}.jobs
                                WHERE queue = $1 AND kind = ANY($2)
                                  AND status IN ('queued', 'running', 'waiting'))"
            ),
            has_work_except: format!(
                "SELECT EXISTS (SELECT 1 FROM {s}.jobs
                                WHERE queue = $1 AND kind <> ALL($2)
                                  AND status IN ('queued', 'running', 'waiting'))"
            ),
            has_work: format!(
                "SELECT EXISTS (SELECT 1 FROM {s}.jobs WHERE queue = $1 AND status = 'queued')
                     OR EXISTS (SELECT 1 FROM {s}.jobs WHERE queue = $1 AND status = 'running')"
            ),
            insert: format!(
                "INSERT INTO {s}.jobs (queue, priority, run_after, max_attempts, max_lost_leases,
                                       payload, payload_key, payload_crc, unique_key,
                                       parent_id, waiting_on, status, kind, resource_class,
                                       batch, depth, cancel_tree)
                 SELECT i.queue, i.priority, now() + make_interval(secs => i.delay),
                        i.max_attempts, i.max_lost_leases, i.payload, i.payload_key, i.payload_crc,
                        i.unique_key, i.parent_id, i.waiting_on,
                        (CASE WHEN i.waiting_on > 0 THEN 'waiting' ELSE 'queued' END)::{s}.job_status,
                        i.kind, i.resource_class, i.batch, i.depth, i.cancel_tree
                 FROM unnest($1::text[], $2::smallint[], $3::float8[], $4::int[], $5::int[],
                             $6::bytea[], $7::text[], $8::bigint[], $9::text[], $10::bigint[],
                             $11::int[], $12::text[], $13::text[], $14::bigint[], $15::smallint[],
                             $16::boolean[])
                      WITH ORDINALITY
                      AS i(queue, priority, delay, max_attempts, max_lost_leases,
                           payload, payload_key, payload_crc, unique_key, parent_id, waiting_on,
                           kind, resource_class, batch, depth, cancel_tree, n)
                 ORDER BY i.n
                 ON CONFLICT (queue, unique_key) WHERE unique_key IS NOT NULL DO NOTHING
                 RETURNING id, queue, unique_key"
            ),
            existing_keys: format!(
                "SELECT j.id, j.queue, j.unique_key FROM {s}.jobs j
                 JOIN unnest($1::text[], $2::text[]) AS k(queue, unique_key)
                   ON j.queue = k.queue AND j.unique_key = k.unique_key"
            ),
            counts: format!(
                "SELECT queue, status::text, count(*) FROM {s}.jobs GROUP BY queue, status ORDER BY 1, 2"
            ),
            oldest_queued: format!(
                "SELECT queue, extract(epoch FROM now() - min(created_at))::float8
                 FROM {s}.jobs WHERE status = 'queued' GROUP BY queue"
            ),
            lease_owners: format!(
                "SELECT queue, lease_owner, count(*) FROM {s}.jobs
                 WHERE status = 'running' GROUP BY queue, lease_owner ORDER BY 1, 2"
            ),
            finished_recently: format!(
                "SELECT queue, count(*) FROM {s}.jobs
                 WHERE finished_at > now() - make_interval(secs => $1) GROUP BY queue"
            ),
            // Per queue, kind and class: the autoscaler's signal. Reads only
            // live and recently finished rows (three partial indexes).
            load: format!(
                "SELECT queue, kind, resource_class,
                        count(*) FILTER (WHERE status = 'queued'),
                        count(*) FILTER (WHERE status = 'running'),
                        extract(epoch FROM now() - min(created_at) FILTER (WHERE status = 'queued'))::float8,
                        count(*) FILTER (WHERE finished_at > now() - make_interval(secs => $1))
                 FROM {s}.jobs
                 WHERE status IN ('queued', 'running')
                    OR finished_at > now() - make_interval(secs => $1)
                 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
            ),
            dead: format!(
                "SELECT id, queue, attempts, lost_leases, coalesce(last_error, '')
                 FROM {s}.jobs WHERE status = 'dead' AND ($1::text IS NULL OR queue = $1)
                 ORDER BY id LIMIT $2"
            ),
            // The dead jobs an operator requeues ($1: one id, or every
            // dead job of queue $2, or of every queue) and their dead
            // ancestors (a dead child settled them dead), locked in id order.
            requeue_targets: format!(
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
            ),
            // Requeues the dead jobs in $1 (locked by `requeue_targets`) with
            // fresh budgets. A job whose children are not all done waits for
            // them again (`waiting_on` counts the ones not succeeded); one
            // with a child that can never succeed (failed, cancelled, or dead
            // and not requeued with it) stays dead. The token moves on, so a
            // worker still holding an old claim is fenced.
            requeue: format!(
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
            ),
            // An operator's cancel settles the job's parent as a failed
            // child does (dead, or the tree cancelled).
            cancel: format!(
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
            ),
            purge: format!(
                "WITH doomed AS MATERIALIZED (
                     SELECT id FROM {s}.jobs
                     WHERE finished_at < now() - make_interval(secs => $1)
                       AND (status IN ('succeeded', 'failed', 'cancelled') OR ($3 AND status = 'dead'))
                     LIMIT $2
                     FOR UPDATE SKIP LOCKED)
                 DELETE FROM {s}.jobs j USING doomed d WHERE j.id = d.id
                 RETURNING j.payload_key, j.result_key"
            ),
            job: format!(
                "SELECT id, queue, status::text, priority, attempts, max_attempts, lost_leases,
                        max_lost_leases, token, lease_owner, last_error, result, result_key, result_crc,
                        extract(epoch FROM run_after - now())::float8
                 FROM {s}.jobs WHERE id = $1"
            ),
            ids: format!(
                "SELECT id FROM {s}.jobs
                 WHERE queue = $1 AND status = $2::{s}.job_status AND id > $3
                 ORDER BY id LIMIT $4"
            ),
        }
    }
}
