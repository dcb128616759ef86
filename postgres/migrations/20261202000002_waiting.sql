-- Fan-in, part 1: a status for a parent job that waits for its children.
-- (A new enum value cannot be used in the transaction that adds it, so the
-- columns and indexes that use it come in the next migration.)
ALTER TYPE job_status ADD VALUE IF NOT EXISTS 'waiting' BEFORE 'queued';
