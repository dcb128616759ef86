-- The hot set: claims read only the part of the table that can hold
-- claimable jobs, whatever the churn and without relying on vacuum.
--
-- Every job leaves dead entries behind in the claim indexes (its claim
-- moves it out of `status = 'queued'`). Only VACUUM removes them, so
-- without it a claim that starts at the head of its index walks every job
-- ever claimed: the claim rate fell to a fifth after 8 minutes of churn.
-- Here ids are grouped in chunks of 65,536 (`id >> 16`), the chunk comes
-- right after the queue in every claim index, and a claim reads one index
-- range per *hot* chunk: the chunks that may hold a waiting, queued or
-- running job. A chunk whose jobs have all finished is never read again by
-- a claim, so the dead entries a claim can walk are bounded by the hot
-- chunks' own, not by the history.
--
-- Which chunks are hot:
-- * every chunk from `hot_range.open_from` on (ids still being handed out,
--   or handed out too recently to tell);
-- * the older chunks listed in `hot_chunks`, which still held a live job
--   when `maintain_hot_set()` last looked.
-- `maintain_hot_set()` (the rescuer runs it with every rescue) closes the
-- open range chunk by chunk and forgets closed chunks whose jobs have all
-- finished. Only an operator's requeue turns a finished job live again; it
-- lists the job's chunk again (`revive_chunks`).

-- Ids come from a sequence of the schema through `next_job_id()`, which
-- gives the inserting transaction its transaction id *before* it takes an
-- id: so a snapshot taken after the sequence was read lists every
-- transaction that may still insert an id below that read (see
-- `maintain_hot_set`).
ALTER TABLE jobs ALTER COLUMN id DROP IDENTITY;
CREATE SEQUENCE jobs_id_seq AS bigint OWNED BY jobs.id;
SELECT setval('jobs_id_seq', coalesce((SELECT max(id) FROM jobs), 0) + 1, false);
DO $$
BEGIN
    -- The sequence's name is written into the function with its schema:
    -- callers run with any `search_path`, and a function with a `SET`
    -- clause would cost a configuration change on every row.
    EXECUTE format(
        'CREATE FUNCTION next_job_id() RETURNS bigint LANGUAGE plpgsql VOLATILE AS %L',
        format('BEGIN PERFORM pg_current_xact_id(); RETURN nextval(%L); END',
               quote_ident(current_schema()) || '.jobs_id_seq'));
END
$$;
ALTER TABLE jobs ALTER COLUMN id SET DEFAULT next_job_id();

-- One row: where the open range starts, and the range being closed.
CREATE TABLE hot_range (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    -- Every chunk from `open_from >> 16` on is hot.
    open_from bigint NOT NULL,
    -- Being closed: every id below `closing_below` had been handed out
    -- when `closing_snapshot` was taken; once the transactions that
    -- snapshot saw in progress have ended, every job below it is visible
    -- and its chunks can be judged.
    closing_below bigint,
    closing_snapshot pg_snapshot
);
INSERT INTO hot_range (open_from)
SELECT coalesce(min(id), (SELECT max(id) + 1 FROM jobs), 1) FROM jobs
WHERE status IN ('waiting', 'queued', 'running');

-- Closed chunks (below `open_from`) that still hold a live job.
CREATE TABLE hot_chunks (chunk bigint PRIMARY KEY);

-- The live jobs by id: what `maintain_hot_set` reads to judge a chunk.
CREATE INDEX jobs_live ON jobs (id) WHERE status IN ('waiting', 'queued', 'running');

-- The claim indexes, chunk after queue (kind), so a claim reads one range
-- per hot chunk.
DROP INDEX jobs_claimable;
CREATE INDEX jobs_claimable ON jobs (queue, (id >> 16), priority DESC, id)
    WHERE status = 'queued';
DROP INDEX jobs_claimable_proof;
CREATE INDEX jobs_claimable_proof ON jobs (queue, (id >> 16), priority DESC, batch, depth, id)
    WHERE status = 'queued';
DROP INDEX jobs_claimable_kind;
CREATE INDEX jobs_claimable_kind ON jobs (queue, kind, (id >> 16), priority DESC, batch, depth, id)
    WHERE status = 'queued';
-- The rescue reads expired leases per hot chunk too.
DROP INDEX jobs_lease_expiry;
CREATE INDEX jobs_lease_expiry ON jobs ((id >> 16), lease_expires_at) WHERE status = 'running';

-- Every chunk a claim reads.
CREATE FUNCTION hot_chunk_list() RETURNS SETOF bigint ROWS 4
LANGUAGE sql STABLE SET search_path FROM CURRENT
AS $$
    SELECT chunk FROM hot_chunks
    UNION ALL
    SELECT generate_series((SELECT open_from FROM hot_range) >> 16,
                           (SELECT last_value FROM jobs_id_seq) >> 16)
$$;

-- Closes the open range up to the last whole chunk handed out (once the
-- transactions that could still insert below it have ended: at the next
-- call, or at once when none was in progress), listing the closed chunks
-- that hold a live job, and forgets listed chunks whose jobs have all
-- finished. Returns the number of hot chunks. One caller at a time (the
-- row lock); cheap enough to run every second: it reads the live-jobs
-- index over the chunks it judges.
CREATE FUNCTION maintain_hot_set() RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT
AS $$
DECLARE
    r hot_range;
    bound bigint;
    handed_out bigint;
BEGIN
    SELECT * INTO r FROM hot_range FOR UPDATE;
    -- Twice at most: a range recorded by the first pass closes in the
    -- second when no transaction was in progress (a quiet queue needs no
    -- second call).
    FOR pass IN 1..2 LOOP
        IF r.closing_below IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM pg_snapshot_xip(r.closing_snapshot) x
            WHERE pg_xact_status(x) = 'in progress')
        THEN
            bound := (r.closing_below >> 16) << 16;
            IF bound > r.open_from THEN
                INSERT INTO hot_chunks (chunk)
                SELECT DISTINCT id >> 16 FROM jobs
                WHERE id >= r.open_from AND id < bound
                  AND status IN ('waiting', 'queued', 'running')
                ON CONFLICT DO NOTHING;
                r.open_from := bound;
            END IF;
            r.closing_below := NULL;
        END IF;
        EXIT WHEN r.closing_below IS NOT NULL OR pass = 2;
        -- The sequence first, then the snapshot: a transaction holding an
        -- id below `handed_out` took its transaction id before that id
        -- (`next_job_id`), so it is in this snapshot or already ended.
        SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END
        INTO handed_out FROM jobs_id_seq;
        EXIT WHEN (handed_out >> 16) << 16 <= r.open_from;
        r.closing_below := handed_out;
        r.closing_snapshot := pg_current_snapshot();
    END LOOP;
    -- Under the row lock, so an operator's requeue (which takes it too)
    -- is either seen here or lists its chunk after this.
    DELETE FROM hot_chunks h WHERE NOT EXISTS (
        SELECT 1 FROM jobs
        WHERE id >= h.chunk << 16 AND id < (h.chunk + 1) << 16
          AND status IN ('waiting', 'queued', 'running'));
    UPDATE hot_range SET open_from = r.open_from, closing_below = r.closing_below,
        closing_snapshot = r.closing_snapshot;
    RETURN (SELECT count(*) FROM hot_chunk_list());
END
$$;

-- An operator's requeue made the jobs `ids` live again: list their chunks
-- (those below the open range). Takes the hot range's row lock, so a
-- concurrent `maintain_hot_set` either sees the requeue or runs after this.
CREATE FUNCTION revive_chunks(ids bigint[]) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT
AS $$
DECLARE
    open_from bigint;
BEGIN
    SELECT h.open_from INTO open_from FROM hot_range h FOR UPDATE;
    INSERT INTO hot_chunks (chunk)
    SELECT DISTINCT i >> 16 FROM unnest(ids) i WHERE i < (open_from >> 16) << 16
    ON CONFLICT DO NOTHING;
END
$$;

-- The claim functions (migration `claim_plans`), reading each hot chunk's
-- range of their index and taking the best `n` of the chunks' best `n`.
CREATE OR REPLACE FUNCTION claimable_proof(q text, n integer) RETURNS SETOF bigint
LANGUAGE sql VOLATILE
SET search_path FROM CURRENT SET enable_bitmapscan = off SET enable_sort = off SET jit = off
AS $$
    SELECT c.id FROM hot_chunk_list() h CROSS JOIN LATERAL (
        SELECT id, priority, batch, depth FROM jobs
        WHERE queue = q AND (id >> 16) = h AND status = 'queued' AND run_after <= now()
        ORDER BY priority DESC, batch, depth, id
        LIMIT n
        FOR UPDATE SKIP LOCKED) c
    ORDER BY c.priority DESC, c.batch, c.depth, c.id
    LIMIT n
$$;

CREATE OR REPLACE FUNCTION claimable_fifo(q text, n integer) RETURNS SETOF bigint
LANGUAGE sql VOLATILE
SET search_path FROM CURRENT SET enable_bitmapscan = off SET enable_sort = off SET jit = off
AS $$
    SELECT c.id FROM hot_chunk_list() h CROSS JOIN LATERAL (
        SELECT id, priority FROM jobs
        WHERE queue = q AND (id >> 16) = h AND status = 'queued' AND run_after <= now()
        ORDER BY priority DESC, id
        LIMIT n
        FOR UPDATE SKIP LOCKED) c
    ORDER BY c.priority DESC, c.id
    LIMIT n
$$;

CREATE OR REPLACE FUNCTION claimable_except(q text, n integer, excluded text[], classes text[])
RETURNS SETOF bigint
LANGUAGE sql VOLATILE
SET search_path FROM CURRENT SET enable_bitmapscan = off SET enable_sort = off SET jit = off
AS $$
    SELECT c.id FROM hot_chunk_list() h CROSS JOIN LATERAL (
        SELECT id, priority, batch, depth FROM jobs
        WHERE queue = q AND (id >> 16) = h AND status = 'queued' AND run_after <= now()
          AND kind <> ALL(excluded)
          AND (classes IS NULL OR resource_class = ANY(classes))
        ORDER BY priority DESC, batch, depth, id
        LIMIT n
        FOR UPDATE SKIP LOCKED) c
    ORDER BY c.priority DESC, c.batch, c.depth, c.id
    LIMIT n
$$;

CREATE OR REPLACE FUNCTION claimable_kind(q text, k text, n integer, classes text[])
RETURNS TABLE (id bigint, priority smallint, batch bigint, depth smallint)
LANGUAGE sql VOLATILE
SET search_path FROM CURRENT SET enable_bitmapscan = off SET enable_sort = off SET jit = off
AS $$
    SELECT c.id, c.priority, c.batch, c.depth FROM hot_chunk_list() h CROSS JOIN LATERAL (
        SELECT j.id, j.priority, j.batch, j.depth FROM jobs j
        WHERE j.queue = q AND j.kind = k AND (j.id >> 16) = h AND j.status = 'queued'
          AND j.run_after <= now()
          AND (classes IS NULL OR j.resource_class = ANY(classes))
        ORDER BY j.priority DESC, j.batch, j.depth, j.id
        LIMIT n
        FOR UPDATE OF j SKIP LOCKED) c
    ORDER BY c.priority DESC, c.batch, c.depth, c.id
    LIMIT n
$$;

-- Whether queue `q` has a queued job of a kind in `kinds` (NULL: any kind;
-- `exclude`: any kind but those), or a running or waiting one: per hot chunk.
CREATE FUNCTION has_live_work(q text, kinds text[], exclude boolean, with_waiting boolean)
RETURNS boolean
LANGUAGE sql STABLE SET search_path FROM CURRENT SET enable_bitmapscan = off SET jit = off
AS $$
    SELECT EXISTS (
        SELECT 1 FROM hot_chunk_list() h CROSS JOIN LATERAL (
            SELECT 1 FROM jobs
            WHERE id >= h << 16 AND id < (h + 1) << 16
              AND status IN ('waiting', 'queued', 'running')
              AND queue = q
              AND (with_waiting OR status <> 'waiting')
              AND (kinds IS NULL OR (kind = ANY(kinds)) <> exclude)
            LIMIT 1) w)
$$;

-- Up to `n` running jobs whose lease expired before `before`, per hot
-- chunk, locked (the rescue).
CREATE FUNCTION expired_leases(before timestamptz, n integer) RETURNS SETOF bigint
LANGUAGE sql VOLATILE SET search_path FROM CURRENT SET enable_bitmapscan = off SET jit = off
AS $$
    SELECT e.id FROM hot_chunk_list() h CROSS JOIN LATERAL (
        SELECT id FROM jobs
        WHERE (id >> 16) = h AND status = 'running' AND lease_expires_at < before
        ORDER BY lease_expires_at
        LIMIT n
        FOR UPDATE SKIP LOCKED) e
    LIMIT n
$$;
