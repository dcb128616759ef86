-- Churn of the queue's table without vacuum, as raw SQL for pgbench: each
-- transaction claims 64 jobs (the queue's claim statement), completes them
-- and enqueues 64 more, so the backlog stays level while history and dead
-- tuples grow. Set up a schema `churn` with postgres/migrations/*.sql and
-- 100,000 queued rows, then:
--   pgbench -h 127.0.0.1 -n -f benches/sql/churn.sql -c 2 -j 2 -T 900 -P 60 test
-- (the completion selects the client's running rows by owner, not by id as
-- PgSaver does; the claim is the library's statement).
WITH picked AS MATERIALIZED (SELECT id FROM churn.jobs WHERE queue = 'c' AND status = 'queued' AND run_after <= now() ORDER BY priority DESC, id LIMIT 64 FOR UPDATE SKIP LOCKED)
UPDATE churn.jobs j SET status = 'running', lease_owner = 'w' || :client_id, lease_expires_at = now() + make_interval(secs => 3), token = j.token + 1, started_at = now() FROM picked WHERE j.id = picked.id;
WITH locked AS MATERIALIZED (SELECT id FROM churn.jobs WHERE status = 'running' AND lease_owner = 'w' || :client_id ORDER BY id FOR UPDATE)
UPDATE churn.jobs j SET status = 'succeeded', result = j.payload, finished_at = now(), lease_owner = NULL, lease_expires_at = NULL FROM locked l WHERE j.id = l.id;
INSERT INTO churn.jobs (queue, payload) SELECT 'c', int8send(g) FROM generate_series(1, 64) g;
