-- Job kinds, resource classes, proof-first order, and what a tree does when a
-- child fails.
--
-- A worker claims the kinds it serves, in its order of preference, and only
-- jobs of the classes it can run. Within what it may claim, the default order
-- finishes proofs rather than jobs: priority, then the oldest batch (or
-- deadline), then the round closest to the final proof (`depth` 0 is the
-- final proof), then age. FIFO (priority, then age) stays available.
--
-- Every column defaults to the value that changes nothing ('' for no kind or
-- class, 0 for batch and depth), so existing rows and workers that set none of
-- them keep their order (adding a column with a constant default rewrites
-- nothing).
--
-- `cancel_tree`: what a parent does when a child ends dead, failed or
-- cancelled. False (the default): the parent ends dead, its error naming the
-- child. True: the parent and its children still queued or waiting are
-- cancelled (running ones finish, and their results settle nothing).
ALTER TABLE jobs
    ADD COLUMN kind           text     NOT NULL DEFAULT '',
    ADD COLUMN resource_class text     NOT NULL DEFAULT '',
    ADD COLUMN batch          bigint   NOT NULL DEFAULT 0,
    ADD COLUMN depth          smallint NOT NULL DEFAULT 0 CHECK (depth >= 0),
    ADD COLUMN cancel_tree    boolean  NOT NULL DEFAULT false;

-- The proof-first claim of any kind walks this index in claim order.
CREATE INDEX jobs_claimable_proof ON jobs (queue, priority DESC, batch, depth, id)
    WHERE status = 'queued';

-- A kind's claimable jobs, in claim order: one index range per (queue, kind),
-- so a claim for one kind reads only that kind's rows however many other
-- kinds are queued. (The FIFO claim of any kind keeps `jobs_claimable`.)
CREATE INDEX jobs_claimable_kind ON jobs (queue, kind, priority DESC, batch, depth, id)
    WHERE status = 'queued';
