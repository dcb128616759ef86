//! Enqueueing: one insert for a whole batch, and the look-up of the rows a
//! unique key already named.

pub(super) fn insert(s: &str) -> String {
    format!(
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
    )
}

pub(super) fn existing_keys(s: &str) -> String {
    format!(
        "SELECT j.id, j.queue, j.unique_key FROM {s}.jobs j
         JOIN unnest($1::text[], $2::text[]) AS k(queue, unique_key)
           ON j.queue = k.queue AND j.unique_key = k.unique_key"
    )
}
