-- Fan-in, part 2: trees of jobs.
--
-- A parent is inserted `waiting`, with `waiting_on` = the number of its
-- children. Each child's fenced, successful completion decrements its
-- parent's count in the same statement; the completion that brings it to
-- zero makes the parent `queued` in the same transaction: no poller, no
-- delay, and exactly once (the parent's row lock orders concurrent
-- completions). A child that ends `dead` or `failed` settles its parent:
-- the parent ends `dead`, its error naming the child.
ALTER TABLE jobs
    ADD COLUMN parent_id  bigint,
    ADD COLUMN waiting_on integer NOT NULL DEFAULT 0 CHECK (waiting_on >= 0);

-- A parent's children (purging a tree, settling a parent): only child rows.
CREATE INDEX jobs_children ON jobs (parent_id) WHERE parent_id IS NOT NULL;
