-- clawscale sqlite database at migration 0013, with the rows of src/db/upgrade_fixture.rs.
-- Written by sqlite3 .dump through db::upgrade_tests::write_upgrade_dumps; do not edit.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
);
INSERT INTO _sqlx_migrations VALUES(1,'initial','2025-05-01 00:00:00',1,X'44f9a0b995d9f110e8d16fd0c721cb4216fdabab7adcffded1b893867c368da7267aa4a5f53ba64645a13a3c8d3deca6',0);
INSERT INTO _sqlx_migrations VALUES(2,'policy routes','2025-05-01 00:00:00',1,X'fe4663e3b301d8c2547c3b9e23700ac14a7b9b7e36c1843e1175f03d3b4f6f5bd4bf07f7cbb0da78582ad5855ef75608',0);
INSERT INTO _sqlx_migrations VALUES(3,'api key scope','2025-05-01 00:00:00',1,X'd2f2665e46a1fe95835ec19073390e3905614c2bf3172ecf2bed0174e3489ec75f4e26642afe33e7bcd16772031e8c3b',0);
INSERT INTO _sqlx_migrations VALUES(4,'write probe','2025-05-01 00:00:00',1,X'9c28825ad2209881d254efa90830e94dafd2b172d304d29c8aeb6214691dd62de44a35bb7bc28aaab34c4e9aa368dfe9',0);
INSERT INTO _sqlx_migrations VALUES(6,'api v2','2025-05-01 00:00:00',1,X'43968c3c1341186fdca96b3495f0abef68e671639c596a8900d6365dfe73486b25d831e4393fd3295bf15379d13735cc',0);
INSERT INTO _sqlx_migrations VALUES(7,'login','2025-05-01 00:00:00',1,X'219da3242149dc6b3be09b72c5290c9f9cd2e011a882578d108fbf47fca4ab5475600819ccb26735ed5d1c5f45fdf36c',0);
INSERT INTO _sqlx_migrations VALUES(8,'oidc users','2025-05-01 00:00:00',1,X'7c859a3b924c78bdfd4adeee6ed27e44d4eedaf6c139e156f0cb57de3d1f4419ad69183ddfaa5d7c2e19a6d626e7b8c9',0);
INSERT INTO _sqlx_migrations VALUES(9,'imported key hashes','2025-05-01 00:00:00',1,X'f96d80640203a117d4097de90459a91c1e11f73a300724ed9acd79b67bd02b963b9759494faa85e5c5686d225de22af2',0);
INSERT INTO _sqlx_migrations VALUES(10,'change log','2025-05-01 00:00:00',1,X'867652a692afa72704ef765488290b22a4c013387ae6c9ad5d39998cf5f15a6dfd6460503c66dbb442f9ebefc22c0ff3',0);
INSERT INTO _sqlx_migrations VALUES(11,'replica shared','2025-05-01 00:00:00',1,X'a7f105a6365bf88f14b55e202d9d3218c2c533fcb6b5d113ed3fadace5c0161ced52d6c483167eb53e110553a0036a40',0);
INSERT INTO _sqlx_migrations VALUES(12,'shared audit','2025-05-01 00:00:00',1,X'3b73810c8e01c8acc7137da3f92b483a26e796c8841c401269c3b022e1c16a95a627daf30ce3e360db8542143211f025',0);
INSERT INTO _sqlx_migrations VALUES(13,'oidc flows','2025-05-01 00:00:00',1,X'5e8cc620516a3cae6fa6c7ecd192e1ef4206cceeda38f1f829345a6743dce02ed42955fc6e96b88248d4a7ded3bc5694',0);
CREATE TABLE users (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL UNIQUE,
    display_name TEXT    NOT NULL DEFAULT '',
    email        TEXT    NOT NULL DEFAULT '',
    created_at   TEXT    NOT NULL
, oidc_issuer TEXT NULL, oidc_subject TEXT NULL, profile_pic_url TEXT NOT NULL DEFAULT '', oidc_groups TEXT NOT NULL DEFAULT '[]');
INSERT INTO users VALUES(1,'alice','Alice Liddell','alice@example.com','2025-05-01T09:07:09+00:00','https://sso.example.com/realms/corp','3f2a9c1e-alice','https://sso.example.com/avatars/alice.png','["ops","mcp-admins"]');
INSERT INTO users VALUES(2,'bob','','','2025-05-01T09:07:09+00:00',NULL,NULL,'','[]');
INSERT INTO users VALUES(4,'dave','Dave','dave@example.org','2025-05-02T09:07:09+00:00',NULL,NULL,'','[]');
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
, description TEXT NOT NULL DEFAULT '', preauthorized BOOLEAN NOT NULL DEFAULT FALSE, hash_kind TEXT NOT NULL DEFAULT 'sha256');
INSERT INTO pre_auth_keys VALUES(1,'upgr0001',X'4141414141414141414141414141414141414141414141414141414141414141',1,1,0,0,'["tag:ci"]','2025-05-30T00:07:09+00:00','2025-05-02T11:07:09+00:00','CI runners',1,'sha256');
INSERT INTO pre_auth_keys VALUES(2,'upgr0002',X'4242424242424242424242424242424242424242424242424242424242424242',2,0,1,1,'[]',NULL,'2025-05-02T12:07:09+00:00','',0,'sha256');
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
, approved_routes TEXT NOT NULL DEFAULT '[]', authorized BOOLEAN NOT NULL DEFAULT TRUE);
INSERT INTO nodes VALUES(1,'mkey:1111111111111111111111111111111111111111111111111111111111111111','nodekey:2121212121212121212121212121212121212121212121212121212121212121','discokey:3131313131313131313131313131313131313131313131313131313131313131','Host-1.local','host-1',1,'[]','100.64.0.1','fd7a:115c:a1e0::1','["192.0.2.1:41641","[2001:db8::1]:41641"]',901,'{"Hostname":"Host-1.local","IPNVersion":"1.78.1","OS":"linux","RoutableIPs":["10.20.0.0/16"],"Services":[{"Port":22,"Proto":"tcp"}]}','2025-05-28T12:07:09+00:00',0,1,106,'2025-05-03T09:07:09+00:00','2025-05-04T01:07:09+00:00','["10.20.0.0/16"]',1);
INSERT INTO nodes VALUES(2,'mkey:1212121212121212121212121212121212121212121212121212121212121212','nodekey:2222222222222222222222222222222222222222222222222222222222222222','discokey:3232323232323232323232323232323232323232323232323232323232323232','Host-2.local','host-2',4,'["tag:server"]','100.64.0.2','fd7a:115c:a1e0::2','["192.0.2.2:41641","[2001:db8::1]:41641"]',902,'{"Hostname":"Host-2.local","IPNVersion":"1.78.1","OS":"linux","RoutableIPs":[],"Services":[{"Port":22,"Proto":"tcp"}]}',NULL,0,1,106,'2025-05-03T10:07:09+00:00',NULL,'[]',1);
INSERT INTO nodes VALUES(3,'mkey:1313131313131313131313131313131313131313131313131313131313131313','nodekey:2323232323232323232323232323232323232323232323232323232323232323','','Host-3.local','host-3',2,'[]','100.64.0.3',NULL,'["192.0.2.3:41641","[2001:db8::1]:41641"]',903,'{"Hostname":"Host-3.local","IPNVersion":"1.78.1","OS":"linux","RoutableIPs":[],"Services":[{"Port":22,"Proto":"tcp"}]}',NULL,1,NULL,106,'2025-05-03T11:07:09+00:00','2025-05-04T03:07:09+00:00','[]',0);
CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    prefix     TEXT    NOT NULL UNIQUE,
    hash       BLOB    NOT NULL,
    expiration TEXT    NULL,
    last_seen  TEXT    NULL,
    created_at TEXT    NOT NULL
, scope TEXT NOT NULL DEFAULT 'admin', hash_kind TEXT NOT NULL DEFAULT 'sha256');
INSERT INTO api_keys VALUES(1,'apik0001',X'6161616161616161616161616161616161616161616161616161616161616161',NULL,'2025-05-05T05:07:09+00:00','2025-05-01T07:07:09+00:00','admin','sha256');
INSERT INTO api_keys VALUES(2,'apik0002',X'6262626262626262626262626262626262626262626262626262626262626262','2025-05-31T00:07:09+00:00',NULL,'2025-05-01T08:07:09+00:00','whois','sha256');
CREATE TABLE policies (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    data       TEXT    NOT NULL,
    created_at TEXT    NOT NULL
);
INSERT INTO policies VALUES(1,'{"acls": []}','2025-05-07T00:07:09+00:00');
INSERT INTO policies VALUES(2,replace('{\n  // the policy as an operator wrote it, comments and all\n  "groups": {"group:ops": ["alice@"]},\n  "tagOwners": {"tag:server": ["group:ops"], "tag:ci": ["group:ops"]},\n  "acls": [{"action": "accept", "src": ["group:ops"], "dst": ["*:*"]}],\n  "autoApprovers": {"routes": {"10.20.0.0/16": ["alice@"]}},\n}','\n',char(10)),'2025-05-07T01:07:09+00:00');
CREATE TABLE write_probe (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at TEXT    NOT NULL
);
INSERT INTO write_probe VALUES(1,'2025-05-08T08:07:09+00:00');
CREATE TABLE oauth_clients (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id   TEXT    NOT NULL UNIQUE,
    hash        BLOB    NOT NULL,
    scopes      TEXT    NOT NULL DEFAULT '[]',
    tags        TEXT    NOT NULL DEFAULT '[]',
    description TEXT    NOT NULL DEFAULT '',
    created_at  TEXT    NOT NULL
);
INSERT INTO oauth_clients VALUES(1,'kUPGRADE1CNTRL',X'7777777777777777777777777777777777777777777777777777777777777777','["auth_keys","devices:core"]','["tag:ci"]','provisioning','2025-05-06T06:07:09+00:00');
CREATE TABLE dns_settings (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    nameservers  TEXT    NULL,
    search_paths TEXT    NULL,
    magic_dns    BOOLEAN NULL,
    updated_at   TEXT    NOT NULL
);
INSERT INTO dns_settings VALUES(1,'["1.1.1.1","2606:4700:4700::1111"]',NULL,0,'2025-05-09T09:07:09+00:00');
DELETE FROM sqlite_sequence;
INSERT INTO sqlite_sequence VALUES('users',4);
INSERT INTO sqlite_sequence VALUES('pre_auth_keys',2);
INSERT INTO sqlite_sequence VALUES('nodes',3);
INSERT INTO sqlite_sequence VALUES('api_keys',2);
INSERT INTO sqlite_sequence VALUES('policies',2);
INSERT INTO sqlite_sequence VALUES('oauth_clients',1);
CREATE INDEX nodes_user_id ON nodes (user_id);
CREATE UNIQUE INDEX users_oidc_identity ON users (oidc_issuer, oidc_subject);
COMMIT;
