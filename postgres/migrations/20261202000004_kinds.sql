-- Job kinds and resource classes: a worker claims the kinds it serves, in its
-- order of preference, and only jobs of the classes it can run.
--
-- Both columns default to '' (no kind, no class), so existing rows and
-- kind-agnostic workers are unaffected (adding a column with a constant
-- default rewrites nothing).
ALTER TABLE jobs
    ADD COLUMN kind           text NOT NULL DEFAULT '',
    ADD COLUMN resource_class text NOT NULL DEFAULT '';

-- A kind's claimable jobs, in claim order: one index range per (queue, kind),
-- so a claim for one kind reads only that kind's rows however many other
-- kinds are queued (the kind-agnostic claim keeps `jobs_claimable`).
CREATE INDEX jobs_claimable_kind ON jobs (queue, kind, priority DESC, id) WHERE status = 'queued';
