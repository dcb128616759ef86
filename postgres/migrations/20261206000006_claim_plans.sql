-- Claims that keep their plan without statistics.
--
-- A claim reads the first few queued rows in claim order from a partial
-- index. Without fresh statistics (autovacuum off or behind, a table never
-- analyzed) the planner believes almost nothing is queued and plans a bitmap
-- scan of every queued entry plus a sort of the whole backlog: 20 ms per
-- claim at 40k queued instead of 0.3 ms, growing with the backlog. These
-- functions hold the claim's row choice with bitmap scans and sorts turned
-- off for their own statements only, so the index order is the only plan
-- whatever the statistics say; `SET search_path FROM CURRENT` binds them to
-- the queue's schema (the one being migrated). Each locks what it returns
-- (SKIP LOCKED, as before) in the caller's transaction.

-- Any kind, proof-first order (`jobs_claimable_proof`).
CREATE FUNCTION claimable_proof(q text, n integer) RETURNS SETOF bigint
LANGUAGE sql VOLATILE
SET search_path FROM CURRENT SET enable_bitmapscan = off SET enable_sort = off
AS $$
    SELECT id FROM jobs
    WHERE queue = q AND status = 'queued' AND run_after <= now()
    ORDER BY priority DESC, batch, depth, id
    LIMIT n
    FOR UPDATE SKIP LOCKED
$$;

-- Any kind, FIFO order (`jobs_claimable`).
CREATE FUNCTION claimable_fifo(q text, n integer) RETURNS SETOF bigint
LANGUAGE sql VOLATILE
SET search_path FROM CURRENT SET enable_bitmapscan = off SET enable_sort = off
AS $$
    SELECT id FROM jobs
    WHERE queue = q AND status = 'queued' AND run_after <= now()
    ORDER BY priority DESC, id
    LIMIT n
    FOR UPDATE SKIP LOCKED
$$;

-- Every kind but those in `excluded`, only the `classes` given (NULL: any),
-- proof-first order: the scan of `jobs_claimable_proof`, filtered as it reads.
CREATE FUNCTION claimable_except(q text, n integer, excluded text[], classes text[])
RETURNS SETOF bigint
LANGUAGE sql VOLATILE
SET search_path FROM CURRENT SET enable_bitmapscan = off SET enable_sort = off
AS $$
    SELECT id FROM jobs
    WHERE queue = q AND status = 'queued' AND run_after <= now()
      AND kind <> ALL(excluded)
      AND (classes IS NULL OR resource_class = ANY(classes))
    ORDER BY priority DESC, batch, depth, id
    LIMIT n
    FOR UPDATE SKIP LOCKED
$$;

-- One kind, only the `classes` given (NULL: any), proof-first order
-- (`jobs_claimable_kind`); the kinds claim calls it per kind.
CREATE FUNCTION claimable_kind(q text, k text, n integer, classes text[])
RETURNS TABLE (id bigint, priority smallint, batch bigint, depth smallint)
LANGUAGE sql VOLATILE
SET search_path FROM CURRENT SET enable_bitmapscan = off SET enable_sort = off
AS $$
    SELECT j.id, j.priority, j.batch, j.depth FROM jobs j
    WHERE j.queue = q AND j.kind = k AND j.status = 'queued' AND j.run_after <= now()
      AND (classes IS NULL OR j.resource_class = ANY(classes))
    ORDER BY j.priority DESC, j.batch, j.depth, j.id
    LIMIT n
    FOR UPDATE OF j SKIP LOCKED
$$;
