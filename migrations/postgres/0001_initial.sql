-- clawscale schema, PostgreSQL flavour. Keep semantics identical to
-- migrations/sqlite/0001_initial.sql (same tables, columns, constraints).
CREATE TABLE users (
    id           BIGSERIAL   PRIMARY KEY,
    name         TEXT        NOT NULL UNIQUE,
    display_name TEXT        NOT NULL DEFAULT '',
    email        TEXT        NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE pre_auth_keys (
    id         BIGSERIAL   PRIMARY KEY,
    prefix     TEXT        NOT NULL UNIQUE,
    hash       BYTEA       NOT NULL,
    user_id    BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reusable   BOOLEAN     NOT NULL,
    ephemeral  BOOLEAN     NOT NULL,
    used       BOOLEAN     NOT NULL DEFAULT FALSE,
    tags       TEXT        NOT NULL DEFAULT '[]',
    expiration TIMESTAMPTZ NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE nodes (
    id          BIGSERIAL   PRIMARY KEY,
    machine_key TEXT        NOT NULL UNIQUE,
    node_key    TEXT        NOT NULL UNIQUE,
    disco_key   TEXT        NOT NULL DEFAULT '',
    hostname    TEXT        NOT NULL,
    given_name  TEXT        NOT NULL UNIQUE,
    user_id     BIGINT      NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    tags        TEXT        NOT NULL DEFAULT '[]',
    ipv4        TEXT        NULL UNIQUE,
    ipv6        TEXT        NULL UNIQUE,
    endpoints   TEXT        NOT NULL DEFAULT '[]',
    home_derp   INTEGER     NOT NULL DEFAULT 0,
    hostinfo    TEXT        NOT NULL DEFAULT '{}',
    expiry      TIMESTAMPTZ NULL,
    ephemeral   BOOLEAN     NOT NULL DEFAULT FALSE,
    auth_key_id BIGINT      NULL REFERENCES pre_auth_keys (id) ON DELETE SET NULL,
    cap_version INTEGER     NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL,
    last_seen   TIMESTAMPTZ NULL
);

CREATE INDEX nodes_user_id ON nodes (user_id);

CREATE TABLE api_keys (
    id         BIGSERIAL   PRIMARY KEY,
    prefix     TEXT        NOT NULL UNIQUE,
    hash       BYTEA       NOT NULL,
    expiration TIMESTAMPTZ NULL,
    last_seen  TIMESTAMPTZ NULL,
    created_at TIMESTAMPTZ NOT NULL
);
