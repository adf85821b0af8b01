-- A shared request whose wait ran out is marked 'expired', apart from
-- 'taken' (claimed for a decision whose verdict is being written): a
-- replica whose own wait for it runs out a moment later must tell the
-- two apart, and hand its client the verdict rather than an expiry.
ALTER TABLE auth_requests DROP CONSTRAINT auth_requests_state_check;
ALTER TABLE auth_requests ADD CONSTRAINT auth_requests_state_check
    CHECK (state IN ('pending', 'taken', 'expired', 'approved', 'vouched', 'rejected'));
