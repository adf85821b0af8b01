-- Device approval (node.require_approval): whether an operator has
-- authorized the node. Existing nodes were all admitted before approval
-- existed, so they stay authorized. Keep in step with
-- migrations/sqlite/0007_login.sql.
ALTER TABLE nodes ADD COLUMN authorized BOOLEAN NOT NULL DEFAULT TRUE;
