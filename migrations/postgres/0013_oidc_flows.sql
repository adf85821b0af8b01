-- OpenID Connect logins between the redirect to the identity provider and
-- its callback. The browser comes back through the load balancer, which
-- may send it to another replica than the one that started the login.
-- `state_hash`: SHA-256 hex of the login's `state` (a bearer value, held
-- by the browser). `sealed`: the auth id, nonce and PKCE verifier the
-- callback needs, encrypted with a key derived from the `state`, so the
-- table alone finishes no login. A row is deleted when a callback takes it
-- (once, on whichever replica) and is never answered past `expires_at`.
CREATE TABLE oidc_flows (
    state_hash TEXT        PRIMARY KEY,
    sealed     BYTEA       NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
