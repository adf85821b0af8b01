-- Policy stored in the database (policy.mode: database) and subnet routes an
-- operator (or the policy's autoApprovers) has approved. Keep in step with
-- migrations/postgres/0002_policy_routes.sql.
CREATE TABLE policies (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    data       TEXT    NOT NULL,
    created_at TEXT    NOT NULL
);

ALTER TABLE nodes ADD COLUMN approved_routes TEXT NOT NULL DEFAULT '[]';
