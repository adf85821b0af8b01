-- The audit trail of every replica on this database. Each replica still
-- appends to its own file (`audit.path`); it also inserts each line here
-- before the operation it records is acknowledged, and audit queries on
-- any replica read this table, so the trail is whole on every replica and
-- survives the loss of the machine a replica ran on. `entry`: the line as
-- written to the file (JSON); `actor` and `object` are copied out of it
-- for filtering.
CREATE TABLE audit_log (
    id     BIGSERIAL   PRIMARY KEY,
    time   TIMESTAMPTZ NOT NULL,
    actor  TEXT        NOT NULL,
    object TEXT,
    entry  TEXT        NOT NULL
);
CREATE INDEX audit_log_time ON audit_log (time);

-- What a pending request that registers nothing is about (an SSH check:
-- its source, destination and local user, as JSON), so that a replica the
-- waiting node reaches after its own replica is gone can tell that the
-- node's follow-up names this check.
ALTER TABLE auth_requests ADD COLUMN subject TEXT;
