-- One row that health checks rewrite to prove the database still commits
-- writes (a full disk fails a write while reads still work). Keep in step
-- with migrations/sqlite/0004_write_probe.sql.
CREATE TABLE write_probe (
    id         INTEGER     PRIMARY KEY CHECK (id = 1),
    checked_at TIMESTAMPTZ NOT NULL
);
