//! The rows of the test tailnet as each Headscale generation stores them
//! (`fixture::Gen`), and the secrets behind its keys.

use super::fixture::{Engine, Gen};

pub const LEGACY_KEY_1: &str = "0123456789abcdef0123456789abcdef0123456789abcdef";
pub const LEGACY_KEY_2: &str = "fedcba9876543210fedcba9876543210fedcba9876543210";
pub const NEW_KEY_PREFIX: &str = "Pre_Auth-Key";
pub const NEW_KEY_SECRET: &str = "S3cr3t-_S3cr3t-_S3cr3t-_S3cr3t-_S3cr3t-_S3cr3t-_S3cr3t-_S3cr3t-_";
pub const TAG_KEY_PREFIX: &str = "TaggedKey_01";
pub const TAG_KEY_SECRET: &str = "tagSecret0123456tagSecret0123456tagSecret0123456tagSecret0123456";
pub const API_LEGACY_PREFIX: &str = "Ab3_x-Q";
pub const API_LEGACY_SECRET: &str = "0123456789abcdefghijABCDEFGHIJ_-";
pub const API_NEW_PREFIX: &str = "ApiKeyPrefix";
pub const API_NEW_SECRET: &str = "apiSecret_-01234apiSecret_-01234apiSecret_-01234apiSecret_-01234";

pub const POLICY: &str = r#"{
  // as an operator wrote it in Headscale
  "tagOwners": {
    "tag:server": ["alice@"],
    "tag:ci": ["alice@"],
    "tag:bobs": ["bob@"],
  },
  "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
}"#;

/// Go's bcrypt (`$2a$`) of `secret`, at the lowest cost to keep tests fast.
pub fn bcrypt_2a(secret: &str) -> String {
    bcrypt::hash_with_result(secret, 4)
        .expect("bcrypt")
        .format_for_version(bcrypt::Version::TwoA)
}

pub fn mkey(b: u8) -> String {
    format!("mkey:{}", hex::encode([b; 32]))
}
pub fn nodekey(b: u8) -> String {
    format!("nodekey:{}", hex::encode([b; 32]))
}
pub fn discokey(b: u8) -> String {
    format!("discokey:{}", hex::encode([b; 32]))
}

/// Go's zero time, which releases before 0.29 wrote for "no expiry".
const ZERO_TIME: &str = "0001-01-01 00:00:00+00:00";

fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The INSERTs of generation `g`.
pub fn seed(g: Gen, e: Engine) -> Vec<String> {
    let mut out: Vec<String> = super::fixture::migration_ids(g)
        .into_iter()
        .map(|id| format!("INSERT INTO migrations (id) VALUES ({})", q(id)))
        .collect();
    let t = |v| e.b(v);
    // Users: alice (local), bob (OIDC from 0.24 on), carol (soft-deleted).
    if g >= Gen::V025 {
        out.push(
            "INSERT INTO users (id, created_at, updated_at, name, display_name, email, \
             provider_identifier, provider, profile_pic_url) VALUES \
             (1, '2024-01-01 10:00:00+00:00', '2024-01-01 10:00:00+00:00', 'alice', 'Alice', '', \
              NULL, '', ''), \
             (2, '2024-01-02 10:00:00+00:00', '2024-01-02 10:00:00+00:00', 'bob', 'Bob B', \
              'bob@example.com', 'https://idp.example.com/realms/corp/sub-bob', 'oidc', \
              'https://idp.example.com/bob.png'), \
             (3, '2024-01-03 10:00:00+00:00', '2024-01-03 10:00:00+00:00', 'carol', '', '', \
              NULL, '', '')"
                .into(),
        );
    } else {
        out.push(
            "INSERT INTO users (id, created_at, updated_at, name) VALUES \
             (1, '2024-01-01 10:00:00+00:00', '2024-01-01 10:00:00+00:00', 'alice'), \
             (2, '2024-01-02 10:00:00+00:00', '2024-01-02 10:00:00+00:00', 'bob'), \
             (3, '2024-01-03 10:00:00+00:00', '2024-01-03 10:00:00+00:00', 'carol')"
                .into(),
        );
    }
    out.push("UPDATE users SET deleted_at = '2024-02-01 00:00:00+00:00' WHERE id = 3".into());

    // Pre-auth keys.
    let tags_col = g >= Gen::V025;
    out.push(format!(
        "INSERT INTO pre_auth_keys (id, key, user_id, reusable, ephemeral, used, expiration, \
         created_at{}) VALUES (1, {}, 1, {}, {}, {}, '2030-01-01 00:00:00+00:00', \
         '2024-03-01 12:00:00+00:00'{})",
        if tags_col { ", tags" } else { "" },
        q(LEGACY_KEY_1),
        t(true),
        t(false),
        t(true),
        if tags_col { ", '[\"tag:ci\"]'" } else { "" },
    ));
    if g == Gen::V023 {
        out.push(
            "INSERT INTO pre_auth_key_acl_tags (pre_auth_key_id, tag) VALUES (1, 'tag:ci')".into(),
        );
    }
    if g >= Gen::V028 {
        out.push(format!(
            "INSERT INTO pre_auth_keys (id, prefix, hash, user_id, reusable, ephemeral, used, \
             expiration, created_at, tags) VALUES (2, {}, {}, 2, {}, {}, {}, NULL, \
             '2024-03-02 12:00:00+00:00', '[]')",
            q(NEW_KEY_PREFIX),
            e.bytes(&bcrypt_2a(NEW_KEY_SECRET)),
            t(true),
            t(true),
            t(false),
        ));
        out.push(format!(
            "INSERT INTO pre_auth_keys (id, prefix, hash, user_id, reusable, ephemeral, used, \
             created_at, tags) VALUES (3, 'Unknown_Hash', {}, 1, {}, {}, {}, \
             '2024-03-03 12:00:00+00:00', '[]')",
            e.bytes("sha1:0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33"),
            t(false),
            t(false),
            t(false),
        ));
    } else {
        out.push(format!(
            "INSERT INTO pre_auth_keys (id, key, user_id, reusable, ephemeral, used, \
             created_at{}) VALUES (2, {}, 2, {}, {}, {}, '2024-03-02 12:00:00+00:00'{})",
            if tags_col { ", tags" } else { "" },
            q(LEGACY_KEY_2),
            t(false),
            t(true),
            t(true),
            if tags_col { ", 'null'" } else { "" },
        ));
    }
    if g >= Gen::V029 {
        out.push(format!(
            "INSERT INTO pre_auth_keys (id, prefix, hash, user_id, reusable, ephemeral, used, \
             created_at, tags) VALUES (4, {}, {}, NULL, {}, {}, {}, \
             '2024-03-04 12:00:00+00:00', '[\"tag:server\"]')",
            q(TAG_KEY_PREFIX),
            e.bytes(&bcrypt_2a(TAG_KEY_SECRET)),
            t(true),
            t(false),
            t(false),
        ));
    }
    if g >= Gen::Main {
        out.push(format!(
            "INSERT INTO pre_auth_keys (id, prefix, hash, user_id, reusable, ephemeral, used, \
             expiration, created_at, tags, description, revoked) VALUES (5, 'RevokedKey01', {}, \
             1, {}, {}, {}, '2031-01-01 00:00:00+00:00', '2024-03-05 12:00:00+00:00', '[]', \
             'old CI key', '2024-04-01 00:00:00+00:00')",
            e.bytes(&bcrypt_2a(&"r".repeat(64))),
            t(true),
            t(false),
            t(false),
        ));
    }

    // API keys: Headscale's `<7>.<32>` in every release, `hskey-api-` from 0.28.
    out.push(format!(
        "INSERT INTO api_keys (id, prefix, hash, expiration, last_seen, created_at) VALUES \
         (1, {}, {}, '2031-01-01 00:00:00+00:00', '2025-02-02 02:02:02+00:00', \
         '2024-05-01 00:00:00+00:00')",
        q(API_LEGACY_PREFIX),
        e.bytes(&bcrypt_2a(API_LEGACY_SECRET)),
    ));
    if g >= Gen::V028 {
        out.push(format!(
            "INSERT INTO api_keys (id, prefix, hash, created_at) VALUES (2, {}, {}, \
             '2024-05-02 00:00:00+00:00')",
            q(API_NEW_PREFIX),
            e.bytes(&bcrypt_2a(API_NEW_SECRET)),
        ));
    }

    out.extend(nodes(g));
    out.push(format!(
        "INSERT INTO policies (id, created_at, updated_at, deleted_at, data) VALUES \
         (1, '2024-06-01 00:00:00+00:00', '2024-06-01 00:00:00+00:00', \
          '2024-06-02 00:00:00+00:00', '{{\"acls\": []}}'), \
         (2, '2024-06-02 00:00:00+00:00', '2024-06-02 00:00:00+00:00', NULL, {})",
        q(POLICY)
    ));
    if g >= Gen::Main {
        out.push(
            "INSERT INTO oauth_clients (client_id, scopes, tags, description, created_at) \
             VALUES ('abc', '[]', '[]', 'ci', '2024-07-01 00:00:00+00:00')"
                .into(),
        );
    }
    out
}

fn nodes(g: Gen) -> Vec<String> {
    let tags_col = if g >= Gen::V028 {
        "tags"
    } else {
        "forced_tags"
    };
    let no_expiry = if g >= Gen::V029 {
        "NULL".to_string()
    } else {
        q(ZERO_TIME)
    };
    // Before 0.26 the routes table says what is announced and approved.
    let laptop_info = if g >= Gen::V026 {
        r#"{"Hostname":"Laptop","OS":"linux","RoutableIPs":["10.1.0.0/24"],"NetInfo":{"PreferredDERP":999}}"#
    } else {
        r#"{"Hostname":"Laptop","OS":"linux","NetInfo":{"PreferredDERP":999}}"#
    };
    let phone_info = r#"{"Hostname":"phone","OS":"iOS","RequestTags":["tag:bobs","tag:nope"]}"#;
    let phone_tags = if g >= Gen::V028 {
        r#"["tag:bobs"]"#
    } else {
        "[]"
    };
    let tagged_user = if g >= Gen::V029 { "NULL" } else { "1" };
    let phone_user = if g >= Gen::V029 { "NULL" } else { "2" };
    let mut out = vec![format!(
        "INSERT INTO nodes (id, machine_key, node_key, disco_key, endpoints, host_info, ipv4, \
         ipv6, hostname, given_name, user_id, register_method, {tags_col}, auth_key_id, \
         last_seen, expiry, created_at, updated_at) VALUES \
         (1, {}, {}, {}, '[\"192.0.2.1:41641\"]', {}, '100.64.0.1', 'fd7a:115c:a1e0::1', \
          'Laptop', 'laptop', 1, 'authkey', '[]', 1, '2025-03-03 03:03:03+00:00', {no_expiry}, \
          '2024-08-01 00:00:00+00:00', '2024-08-01 00:00:00+00:00'), \
         (2, {}, {}, {}, 'null', {}, '100.64.0.2', 'fd7a:115c:a1e0::2', 'phone', 'phone', \
          {phone_user}, 'authkey', {}, 2, NULL, '2030-06-01 00:00:00+00:00', \
          '2024-08-02 00:00:00+00:00', '2024-08-02 00:00:00+00:00'), \
         (3, {}, {}, '', NULL, NULL, '100.64.0.3', NULL, 'server', 'server', {tagged_user}, \
          'cli', '[\"tag:server\"]', NULL, NULL, {no_expiry}, '2024-08-03 00:00:00+00:00', \
          '2024-08-03 00:00:00+00:00'), \
         (4, {}, {}, '', NULL, NULL, NULL, NULL, 'broken', 'broken', 1, 'cli', '[]', NULL, NULL, \
          {no_expiry}, '2024-08-04 00:00:00+00:00', '2024-08-04 00:00:00+00:00')",
        q(&mkey(0x11)),
        q(&nodekey(0x21)),
        q(&discokey(0x31)),
        q(laptop_info),
        q(&mkey(0x12)),
        q(&nodekey(0x22)),
        q(&discokey(0x32)),
        q(phone_info),
        q(phone_tags),
        q(&mkey(0x13)),
        q(&nodekey(0x23)),
        q(&mkey(0x14)),
        q(&nodekey(0x24)),
    )];
    if g >= Gen::V026 {
        out.push("UPDATE nodes SET approved_routes = '[\"10.1.0.0/24\"]' WHERE id = 1".into());
    } else {
        out.push(format!(
            "INSERT INTO routes (created_at, updated_at, node_id, prefix, advertised, enabled, \
             is_primary) VALUES ('2024-08-01 00:00:00+00:00', '2024-08-01 00:00:00+00:00', 1, \
             '10.1.0.0/24', {b1}, {b1}, {b1}), ('2024-08-01 00:00:00+00:00', \
             '2024-08-01 00:00:00+00:00', 1, '10.9.0.0/24', {b1}, {b0}, {b0})",
            b1 = "1 = 1",
            b0 = "1 = 0",
        ));
    }
    out
}
