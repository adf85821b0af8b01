-- clawscale schema, SQLite flavour. Keep semantics identical to
-- migrations/postgres/0001_initial.sql (same tables, columns, constraints).
CREATE TABLE users (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL UNIQUE,
    display_name TEXT    NOT NULL DEFAULT '',
    email        TEXT    NOT NULL DEFAULT '',
    created_at   TEXT    NOT NULL
);

CREATE TABLE pre_auth_keys (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    prefix     TEXT    NOT NULL UNIQUE,
    hash       BLOB    NOT NULL,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reusable   BOOLEAN NOT NULL,
    ephemeral  BOOLEAN NOT NULL,
    used       BOOLEAN NOT NULL DEFAULT FALSE,
    tags       TEXT    NOT NULL DEFAULT '[]',
    expiration TEXT    NULL,
    created_at TEXT    NOT NULL
);

CREATE TABLE nodes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    machine_key TEXT    NOT NULL UNIQUE,
    node_key    TEXT    NOT NULL UNIQUE,
    disco_key   TEXT    NOT NULL DEFAULT '',
    hostname    TEXT    NOT NULL,
    given_name  TEXT    NOT NULL UNIQUE,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    tags        TEXT    NOT NULL DEFAULT '[]',
    ipv4        TEXT    NULL UNIQUE,
    ipv6        TEXT    NULL UNIQUE,
    endpoints   TEXT    NOT NULL DEFAULT '[]',
    home_derp   INTEGER NOT NULL DEFAULT 0,
    hostinfo    TEXT    NOT NULL DEFAULT '{}',
    expiry      TEXT    NULL,
    ephemeral   BOOLEAN NOT NULL DEFAULT FALSE,
    auth_key_id INTEGER NULL REFERENCES pre_auth_keys (id) ON DELETE SET NULL,
    cap_version INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT    NOT NULL,
    last_seen   TEXT    NULL
);

CREATE INDEX nodes_user_id ON nodes (user_id);

CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    prefix     TEXT    NOT NULL UNIQUE,
    hash       BLOB    NOT NULL,
    expiration TEXT    NULL,
    last_seen  TEXT    NULL,
    created_at TEXT    NOT NULL
);
