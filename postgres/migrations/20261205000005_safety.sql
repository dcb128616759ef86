-- The queue's identity, infrastructure retries, and leases that always expire.
--
-- `queue_identity`: one row, a random id made when the schema is created.
-- Every blob the queue writes lives under `{schema}/{id}/`, so two databases
-- (or a restored copy beside its original) that share one object store and
-- one schema name never read, overwrite or collect each other's blobs.
CREATE TABLE queue_identity (
    id         text        PRIMARY KEY DEFAULT replace(gen_random_uuid()::text, '-', ''),
    created_at timestamptz NOT NULL DEFAULT now(),
    -- One row only.
    singleton  boolean     NOT NULL DEFAULT true UNIQUE CHECK (singleton)
);
INSERT INTO queue_identity DEFAULT VALUES;

-- Failures of the infrastructure around an execution (the database or the
-- object store went away while the executor read from them): the job is
-- queued again after a back-off without using an attempt, and counted here.
ALTER TABLE jobs ADD COLUMN infra_retries integer NOT NULL DEFAULT 0;

-- A running job always has a lease that can expire, so a rescuer can always
-- return it: a row that had none (written by hand, or by a bug) gets one that
-- has already expired.
UPDATE jobs SET lease_expires_at = now() WHERE status = 'running' AND lease_expires_at IS NULL;
ALTER TABLE jobs ADD CONSTRAINT running_has_lease
    CHECK (status <> 'running' OR lease_expires_at IS NOT NULL);
