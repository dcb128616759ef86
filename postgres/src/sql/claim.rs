//! Claims: queued jobs become this worker's leases, a batch per statement,
//! in the order a picker asks for (each shape reads its own partial index;
//! see `migrations/`), and the picker's check for any work left.

/// Every claim ends the same way: the picked rows become this worker's
/// leases, with a new fencing token.
const CLAIM_SET: &str = "SET status = 'running', lease_owner = $3,
             lease_expires_at = now() + make_interval(secs => $4),
             token = j.token + 1, started_at = now()
         FROM picked WHERE j.id = picked.id
         RETURNING j.id, j.token, j.priority, j.attempts, j.lost_leases,
                   j.payload, j.payload_key, j.payload_crc, j.kind, j.batch, j.depth";

/// Priority, then the oldest batch, then the round closest to the
/// final proof, then age (`jobs_claimable_proof`). The rows are chosen
/// and locked by a function of the schema that keeps the index-order
/// plan without statistics (migration `claim_plans`).
pub(super) fn claim(s: &str) -> String {
    format!(
        "WITH picked AS MATERIALIZED (
             SELECT c AS id FROM {s}.claimable_proof($1, ($2::bigint)::int) c)
         UPDATE {s}.jobs j
         {CLAIM_SET}"
    )
}

/// Priority, then age: the FIFO order (`jobs_claimable`).
pub(super) fn claim_fifo(s: &str) -> String {
    format!(
        "WITH picked AS MATERIALIZED (
             SELECT c AS id FROM {s}.claimable_fifo($1, ($2::bigint)::int) c)
         UPDATE {s}.jobs j
         {CLAIM_SET}"
    )
}

/// Kinds in the worker's order of preference ($5), each read from
/// its own range of `jobs_claimable_kind` and locked there (SKIP
/// LOCKED, so concurrent workers pass each other by; the function
/// `claimable_kind` keeps that plan without statistics), then the
/// batch taken in preference order: a heavy job first, a light one
/// when no heavy one is queued. Classes ($6) filter within a kind.
/// The rows a kind over-locks are unlocked when the statement ends.
pub(super) fn claim_kinds(s: &str) -> String {
    format!(
        "WITH wanted AS (
             SELECT k, n FROM unnest($5::text[]) WITH ORDINALITY AS w(k, n)),
         candidates AS MATERIALIZED (
             SELECT c.id, c.priority, c.batch, c.depth, w.n FROM wanted w CROSS JOIN LATERAL
                 {s}.claimable_kind($1, w.k, ($2::bigint)::int, $6::text[]) c),
         picked AS MATERIALIZED (
             SELECT id FROM candidates ORDER BY n, priority DESC, batch, depth, id LIMIT $2)
         UPDATE {s}.jobs j
         {CLAIM_SET}"
    )
}

/// Any kind, only the classes in $5.
pub(super) fn claim_classes(s: &str) -> String {
    format!(
        "WITH picked AS MATERIALIZED (
             SELECT c AS id
             FROM {s}.claimable_except($1, ($2::bigint)::int, '{{}}'::text[], $5::text[]) c)
         UPDATE {s}.jobs j
         {CLAIM_SET}"
    )
}

/// Every kind but those in $5 (and only the classes in $6, when
/// set): the proof-first scan of `jobs_claimable_proof`, with the
/// few excluded rows (aggregations, say) filtered as it reads, so
/// it costs what the kind-agnostic claim costs.
pub(super) fn claim_except(s: &str) -> String {
    format!(
        "WITH picked AS MATERIALIZED (
             SELECT c AS id
             FROM {s}.claimable_except($1, ($2::bigint)::int, $5::text[], $6::text[]) c)
         UPDATE {s}.jobs j
         {CLAIM_SET}"
    )
}

pub(super) fn has_work(s: &str) -> String {
    format!(
        "SELECT EXISTS (SELECT 1 FROM {s}.jobs WHERE queue = $1 AND status = 'queued')
             OR EXISTS (SELECT 1 FROM {s}.jobs WHERE queue = $1 AND status = 'running')"
    )
}

/// For a picker of some kinds: work is one of its kinds queued,
/// running, or waiting for children (it will be claimable).
pub(super) fn has_work_kinds(s: &str) -> String {
    format!(
        "SELECT EXISTS (SELECT 1 FROM {s}.jobs
                        WHERE queue = $1 AND kind = ANY($2)
                          AND status IN ('queued', 'running', 'waiting'))"
    )
}

pub(super) fn has_work_except(s: &str) -> String {
    format!(
        "SELECT EXISTS (SELECT 1 FROM {s}.jobs
                        WHERE queue = $1 AND kind <> ALL($2)
                          AND status IN ('queued', 'running', 'waiting'))"
    )
}
