-- The job table of pjp-postgres. Runs with `search_path` set to the queue's own
-- schema (`pjp` by default), so every name below lives in that schema.

CREATE TYPE job_status AS ENUM ('queued', 'running', 'succeeded', 'failed', 'dead', 'cancelled');

CREATE TABLE jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue            text        NOT NULL,
    status           job_status  NOT NULL DEFAULT 'queued',
    -- Higher runs first (0..=100).
    priority         smallint    NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 100),
    run_after        timestamptz NOT NULL DEFAULT now(),
    -- Executions that failed (each uses one of max_attempts).
    attempts         integer     NOT NULL DEFAULT 0,
    max_attempts     integer     NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    -- Leases that expired because their worker died or was cut off; a separate,
    -- smaller budget, so a machine dying does not burn the job's attempts.
    lost_leases      integer     NOT NULL DEFAULT 0,
    max_lost_leases  integer     NOT NULL DEFAULT 3 CHECK (max_lost_leases >= 1),
    lease_owner      text,
    lease_expires_at timestamptz,
    -- Fencing token: incremented on every claim (and by an operator's cancel
    -- or requeue). Every write of a running job carries the token its worker
    -- claimed; a stale one matches no row.
    token            bigint      NOT NULL DEFAULT 0,
    last_error       text,
    -- The input: inline bytes, or a key in the object store (with its CRC-32).
    payload          bytea,
    payload_key      text,
    payload_crc      bigint,
    -- The output, the same way.
    result           bytea,
    result_key       text,
    result_crc       bigint,
    unique_key       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    CONSTRAINT payload_inline_or_stored CHECK (payload IS NULL OR payload_key IS NULL),
    CONSTRAINT result_inline_or_stored CHECK (result IS NULL OR result_key IS NULL)
);

-- The claim: `status = 'queued' AND queue = $1 ORDER BY priority DESC, id`.
-- Partial, so it holds only claimable rows: its size follows the backlog, not
-- the history, and finished rows (millions of them) never slow a claim.
CREATE INDEX jobs_claimable ON jobs (queue, priority DESC, id) WHERE status = 'queued';

-- The rescue of dead workers' jobs: `status = 'running' AND lease_expires_at < now()`.
-- Partial: it holds only the jobs in flight.
CREATE INDEX jobs_lease_expiry ON jobs (lease_expires_at) WHERE status = 'running';

-- A producer retrying an enqueue: one job per (queue, unique key).
CREATE UNIQUE INDEX jobs_unique_key ON jobs (queue, unique_key) WHERE unique_key IS NOT NULL;

-- Admin calls (dead letters, purge of finished rows) scan by status and age;
-- they are rare, so they get one small index rather than one per status.
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

-- Every job leaves two dead row versions behind (its claim and its
-- completion), so the table churns: ask autovacuum, where it runs, to visit it
-- after 1 % of it changed rather than the default 20 %. The queue never relies
-- on it for correctness; purge (`PgQueue::purge`) removes finished rows.
ALTER TABLE jobs SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.01
);
