-- Churn of the queue's table without vacuum, as raw SQL for pgbench (run it
-- with benches/sql/churn.sh, which sets the schema up). Each transaction
-- claims 64 jobs with the library's claim function, completes them by id
-- (as PgSaver does) and enqueues 64 more, so the backlog stays level while
-- history and dead index entries grow. With `-D hot=1` one transaction in
-- 50 also keeps the hot set, as the rescuer does every rescue.
\set r random(1, 50)
WITH picked AS MATERIALIZED (SELECT c AS id FROM churn.claimable_fifo('c', 64) c),
claimed AS (UPDATE churn.jobs j SET status = 'running', lease_owner = 'w' || :client_id, lease_expires_at = now() + make_interval(secs => 3), token = j.token + 1, started_at = now() WHERE j.id = ANY (ARRAY (SELECT id FROM picked)) RETURNING j.id)
SELECT quote_literal(coalesce(array_agg(id), '{}')::text) AS ids FROM claimed \gset
UPDATE churn.jobs j SET status = 'succeeded', result = j.payload, finished_at = now(), lease_owner = NULL, lease_expires_at = NULL WHERE j.id = ANY (CAST(:ids AS bigint[]));
INSERT INTO churn.jobs (queue, payload) SELECT 'c', int8send(g) FROM generate_series(1, 64) g;
\if :hot
\if :r = 1
SELECT churn.maintain_hot_set();
\endif
\endif
