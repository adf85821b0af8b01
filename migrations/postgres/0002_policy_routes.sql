-- Policy stored in the database (policy.mode: database) and subnet routes an
-- operator (or the policy's autoApprovers) has approved. Keep in step with
-- migrations/sqlite/0002_policy_routes.sql.
CREATE TABLE policies (
    id         BIGSERIAL   PRIMARY KEY,
    data       TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

ALTER TABLE nodes ADD COLUMN approved_routes TEXT NOT NULL DEFAULT '[]';
