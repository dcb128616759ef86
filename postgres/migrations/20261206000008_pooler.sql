-- The rescuer role: which worker of the schema returns expired leases to the
-- queue. Rescue statements then cost the same however many workers serve
-- the schema (one per rescue interval, by the role's holder), where every
-- worker used to run its own.
--
-- One row. A worker's heartbeat takes the role when it has lapsed
-- (`expires_at` passed: its holder died or was cut off) and its holder
-- renews it with every rescue. Nothing here holds a lock or a session: it
-- works through a connection pooler in transaction mode, where an advisory
-- session lock would stay behind on a server connection lent to others.
-- A worker that does not hold the role reads the row without locking it
-- (its heartbeat's update matches nothing while the role is held), so the
-- row is no hot spot.
CREATE TABLE rescuer (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    owner text,
    expires_at timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO rescuer DEFAULT VALUES;
