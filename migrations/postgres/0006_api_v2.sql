-- API v2 (Tailscale's API): OAuth clients (the secret stored as SHA-256
-- only), the auth key fields Tailscale's keys carry, and the DNS settings
-- changed over the API (NULL: the config file's value). Numbered 0006 to
-- leave 0005 to the login work. Keep in step with
-- migrations/sqlite/0006_api_v2.sql.
CREATE TABLE oauth_clients (
    id          BIGSERIAL   PRIMARY KEY,
    client_id   TEXT        NOT NULL UNIQUE,
    hash        BYTEA       NOT NULL,
    scopes      TEXT        NOT NULL DEFAULT '[]',
    tags        TEXT        NOT NULL DEFAULT '[]',
    description TEXT        NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL
);

ALTER TABLE pre_auth_keys ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE pre_auth_keys ADD COLUMN preauthorized BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE dns_settings (
    id           INTEGER     PRIMARY KEY CHECK (id = 1),
    nameservers  TEXT        NULL,
    search_paths TEXT        NULL,
    magic_dns    BOOLEAN     NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
