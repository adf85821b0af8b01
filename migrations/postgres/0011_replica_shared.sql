-- State that lives outside the World but that every replica must see.

-- ACME DNS-01 challenge values published by nodes (`/machine/set-dns`): a
-- CA may ask any replica's DNS server, not only the one whose client
-- published the value. A replica answers from its own memory and from this
-- table. Rows past `expires_at` are never answered and are deleted by the
-- next publication.
CREATE TABLE acme_challenges (
    owner      TEXT        NOT NULL,
    value      TEXT        NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (owner, value)
);

-- Pending interactive requests (a registration waiting for a login, an SSH
-- check waiting for approval). The client waits on the replica that
-- started the request; an operator may decide it on any replica. The
-- deciding replica claims the row (`state` pending -> taken, once), acts,
-- writes the verdict and NOTIFYs `clawscale_auth` with `id_hash`; the
-- waiting replica hands the verdict to its client. `id_hash`: SHA-256 hex
-- of the auth id (a bearer value). `registration`: the request's
-- RegisterInput as JSON, NULL for a request that only needs a verdict.
CREATE TABLE auth_requests (
    id_hash      TEXT        PRIMARY KEY,
    registration TEXT,
    expires_at   TIMESTAMPTZ NOT NULL,
    state        TEXT        NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'taken', 'approved', 'vouched', 'rejected')),
    node_id      BIGINT,
    user_id      BIGINT,
    reason       TEXT
);
