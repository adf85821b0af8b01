-- ACME DNS-01 challenge values published by nodes (`/machine/set-dns`),
-- shared by the replicas: a CA may ask any replica's DNS server, not only
-- the one whose client published the value. A replica answers from its
-- own memory first and reads this table for a challenge name it does not
-- hold. Rows past `expires_at` are never answered and are deleted by the
-- next publication.
CREATE TABLE acme_challenges (
    owner      TEXT        NOT NULL,
    value      TEXT        NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (owner, value)
);
