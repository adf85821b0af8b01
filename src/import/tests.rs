//! Imports of a Headscale database of every schema generation (0.23,
//! 0.24.3–0.25, 0.26–0.27, 0.28, 0.29, main) on SQLite and PostgreSQL
//! (`CLAWSCALE_TEST_POSTGRES_URL`), checking every carried field; imported
//! keys authenticating with their original hash through the real
//! registration and API-key paths; all-or-nothing writes; refusals.

mod cli;
mod fixture;
mod rows;

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use fixture::{ALL, Engine, Gen};
use rows::*;

use super::{Error, Options, Report, headscale};
use crate::admin::KeyCache;
use crate::db::testing::PgTemp;
use crate::db::{Db, ImportSet, Target};
use crate::state::{RegisterInput, RegisterOutcome};
use crate::types::{
    ApiSecret, KeyHash, MachinePublic, NodePublic, OidcIdentity, PreAuthSecret, UserId,
};

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .expect("time")
}

fn now() -> DateTime<Utc> {
    at(2026, 1, 1, 0, 0, 0)
}

/// A Headscale database of generation `g`: a SQLite file in `dir`, or a
/// PostgreSQL database (kept alive by the returned guard).
async fn source(g: Gen, engine: Engine, dir: &Path) -> Option<(String, Option<PgTemp>)> {
    let mut sql = fixture::ddl(g, engine);
    sql.extend(seed(g, engine));
    match engine {
        Engine::Sqlite => {
            let path = dir.join(format!("headscale-{g:?}.sqlite"));
            fixture::run_sqlite(&path, &sql).await;
            Some((path.display().to_string(), None))
        }
        Engine::Postgres => {
            let pg = PgTemp::create("hs_source").await?;
            fixture::run_postgres(&pg.url, &sql).await;
            Some((pg.url.clone(), Some(pg)))
        }
    }
}

/// An empty clawscale database on `engine`.
async fn target(engine: Engine, dir: &Path) -> Option<(Db, Option<PgTemp>)> {
    match engine {
        Engine::Sqlite => {
            let db = Db::connect(&Target::Sqlite {
                path: dir.join("clawscale.sqlite"),
                write_ahead_log: true,
            })
            .await
            .expect("target");
            Some((db, None))
        }
        Engine::Postgres => {
            let pg = PgTemp::create("import_target").await?;
            Some((pg.db().await, Some(pg)))
        }
    }
}

fn options<'a>(src: &'a str, key: &'a Path, target_key: &'a Path, dry_run: bool) -> Options<'a> {
    Options {
        source: src,
        noise_key: Some(key),
        policy: None,
        target_noise_key: target_key,
        dry_run,
    }
}

fn headscale_key(dir: &Path) -> PathBuf {
    let p = dir.join("headscale_noise_private.key");
    std::fs::write(&p, format!("privkey:{}", "7e".repeat(32))).expect("key");
    p
}

async fn every_generation_imports_every_field(engine: Engine) {
    for g in ALL {
        let dir = tempfile::tempdir().expect("tempdir");
        let Some((src, _src_guard)) = source(g, engine, dir.path()).await else {
            return;
        };
        let Some((db, _db_guard)) = target(engine, dir.path()).await else {
            return;
        };
        let key = headscale_key(dir.path());
        let our_key = dir.path().join("data/noise_private.key");
        let report = headscale(&options(&src, &key, &our_key, false), Some(&db), now())
            .await
            .unwrap_or_else(|e| panic!("{g:?}: {e}"));
        check_everything(g, &db, &report).await;
        let loaded = crate::noise::load_or_create(&our_key).expect("our key file");
        assert_eq!(hex::encode(loaded.as_bytes()), "7e".repeat(32), "{g:?}");
        db.close().await;
    }
}

#[tokio::test]
async fn every_generation_imports_every_field_sqlite() {
    every_generation_imports_every_field(Engine::Sqlite).await;
}

#[tokio::test]
async fn every_generation_imports_every_field_postgres() {
    every_generation_imports_every_field(Engine::Postgres).await;
}

async fn check_everything(g: Gen, db: &Db, report: &Report) {
    let tagged_owner = g >= Gen::V029;
    // Users: carol was deleted in Headscale; the tagged owner is created
    // when Headscale (0.29+) keeps tagged keys and nodes without a user.
    let users = db.list_users().await.expect("users");
    let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
    let mut want_names = vec!["alice", "bob"];
    if tagged_owner {
        want_names.push(crate::admin::TAGGED_OWNER);
    }
    assert_eq!(names, want_names, "{g:?}");
    assert_eq!(users[0].id, UserId(1));
    assert_eq!(users[0].created_at, at(2024, 1, 1, 10, 0, 0));
    assert_eq!(users[0].oidc, None);
    let bob = &users[1];
    assert_eq!(bob.id, UserId(2));
    if g >= Gen::V025 {
        assert_eq!(bob.display_name, "Bob B", "{g:?}");
        assert_eq!(bob.email, "bob@example.com");
        assert_eq!(bob.profile_pic_url, "https://idp.example.com/bob.png");
        assert_eq!(
            bob.oidc,
            Some(OidcIdentity {
                issuer: "https://idp.example.com/realms/corp".into(),
                subject: "sub-bob".into(),
            })
        );
    } else {
        assert_eq!(bob.oidc, None);
        assert_eq!(bob.email, "");
    }
    assert!(
        report
            .skipped
            .iter()
            .any(|s| s.what == "user 3 (carol)" && s.reason == "deleted in Headscale"),
        "{g:?}: {report}"
    );

    // Pre-auth keys.
    let keys = db.list_preauth_keys(None).await.expect("keys");
    let k1 = &keys[0];
    assert_eq!(k1.id.0, 1);
    assert_eq!(k1.prefix, &LEGACY_KEY_1[..12]);
    assert_eq!(
        k1.hash.kind(),
        "sha256",
        "clear-text keys are stored hashed"
    );
    assert_eq!(k1.user_id, UserId(1));
    assert!(k1.reusable && k1.used && !k1.ephemeral);
    assert_eq!(k1.tags, vec!["tag:ci"], "{g:?}");
    assert_eq!(k1.expiration, Some(at(2030, 1, 1, 0, 0, 0)));
    assert_eq!(k1.created_at, at(2024, 3, 1, 12, 0, 0));
    let k2 = &keys[1];
    assert_eq!((k2.id.0, k2.user_id), (2, UserId(2)));
    assert!(k2.ephemeral);
    if g >= Gen::V028 {
        assert!(k2.reusable && !k2.used, "{g:?}");
    } else {
        assert!(!k2.reusable && k2.used, "{g:?}");
    }
    assert!(k2.tags.is_empty(), "{g:?}: a nil tag list reads as none");
    if g >= Gen::V028 {
        assert_eq!(k2.prefix, NEW_KEY_PREFIX);
        assert!(matches!(&k2.hash, KeyHash::Bcrypt(h) if h.starts_with("$2a$04$")));
        assert!(
            report.skipped.iter().any(|s| s.what == "pre-auth key 3"
                && s.reason == "its hash is of an unknown kind (not bcrypt)"),
            "{report}"
        );
    } else {
        assert_eq!(k2.prefix, &LEGACY_KEY_2[..12]);
    }
    let ids: Vec<i64> = keys.iter().map(|k| k.id.0).collect();
    let mut want_ids = vec![1, 2];
    if g >= Gen::V029 {
        want_ids.push(4);
        let k4 = &keys[2];
        assert_eq!(k4.tags, vec!["tag:server"]);
        assert_eq!(k4.user_id, UserId(3), "owned by the tagged owner");
    }
    if g >= Gen::Main {
        want_ids.push(5);
        let k5 = keys.last().expect("key 5");
        assert_eq!(k5.description, "old CI key");
        assert_eq!(
            k5.expiration,
            Some(at(2024, 4, 1, 0, 0, 0)),
            "a revoked key is expired at its revocation"
        );
    }
    assert_eq!(ids, want_ids, "{g:?}");

    // API keys.
    let api = db.list_api_keys().await.expect("api keys");
    assert_eq!(api[0].prefix, API_LEGACY_PREFIX);
    assert_eq!(api[0].hash.kind(), "bcrypt");
    assert_eq!(api[0].scope, crate::types::Scope::Admin);
    assert_eq!(api[0].expiration, Some(at(2031, 1, 1, 0, 0, 0)));
    assert_eq!(api[0].last_seen, Some(at(2025, 2, 2, 2, 2, 2)));
    assert_eq!(api[0].created_at, at(2024, 5, 1, 0, 0, 0));
    assert_eq!(api.len(), if g >= Gen::V028 { 2 } else { 1 }, "{g:?}");

    // Nodes.
    let nodes = db.list_nodes().await.expect("nodes");
    assert_eq!(nodes.len(), 3, "{g:?}: {report}");
    let laptop = &nodes[0];
    assert_eq!(laptop.id.0, 1);
    assert_eq!(laptop.machine_key, MachinePublic([0x11; 32]));
    assert_eq!(laptop.node_key, NodePublic([0x21; 32]));
    assert_eq!(laptop.disco_key.0, [0x31; 32]);
    assert_eq!(laptop.ipv4, Some("100.64.0.1".parse().expect("ip")));
    assert_eq!(laptop.ipv6, Some("fd7a:115c:a1e0::1".parse().expect("ip")));
    assert_eq!(laptop.hostname, "Laptop");
    assert_eq!(laptop.given_name.as_str(), "laptop");
    assert_eq!(laptop.user_id, UserId(1));
    assert!(laptop.tags.is_empty());
    assert_eq!(laptop.endpoints, vec!["192.0.2.1:41641"]);
    assert_eq!(laptop.home_derp, 999);
    assert_eq!(laptop.hostinfo["OS"], "linux");
    assert_eq!(
        laptop.approved_routes,
        vec!["10.1.0.0/24".parse::<ipnet::IpNet>().expect("route")],
        "{g:?}: only enabled routes are approved"
    );
    assert_eq!(
        laptop.served_routes(),
        laptop.approved_routes,
        "{g:?}: announced routes are in RoutableIPs"
    );
    assert_eq!(laptop.expiry, None, "{g:?}: Go's zero time is no expiry");
    assert_eq!(laptop.last_seen, Some(at(2025, 3, 3, 3, 3, 3)));
    assert_eq!(laptop.created_at, at(2024, 8, 1, 0, 0, 0));
    assert_eq!(laptop.auth_key_id.map(|k| k.0), Some(1));
    assert!(!laptop.ephemeral && laptop.authorized);
    let phone = &nodes[1];
    assert_eq!(phone.given_name.as_str(), "phone");
    assert_eq!(
        phone.tags,
        vec!["tag:bobs"],
        "{g:?}: requested tags the policy allows are carried, others not"
    );
    assert_eq!(
        phone.user_id,
        if tagged_owner { UserId(3) } else { UserId(2) }
    );
    assert!(phone.ephemeral, "its key was ephemeral");
    assert_eq!(phone.expiry, Some(at(2030, 6, 1, 0, 0, 0)));
    assert!(phone.endpoints.is_empty());
    let server = &nodes[2];
    assert_eq!(server.tags, vec!["tag:server"]);
    assert_eq!(server.ipv6, None);
    assert!(server.disco_key.is_zero());
    assert!(
        report
            .skipped
            .iter()
            .any(|s| s.what == "node 4 (broken)" && s.reason == "it has no IPv4 or IPv6 address"),
        "{report}"
    );

    assert_eq!(
        db.current_policy().await.expect("policy").as_deref(),
        Some(POLICY)
    );
    let first = report.to_string();
    let want_keys = want_ids.len();
    let want_api = api.len();
    assert!(
        first.starts_with(&format!(
            "imported {} users, 3 nodes, {want_keys} pre-auth keys, {want_api} API keys, \
             policy: yes\n",
            want_names.len()
        )),
        "{first}"
    );
}

#[tokio::test]
async fn imported_keys_authenticate_with_their_original_hash() {
    for g in [Gen::V026, Gen::V028, Gen::Main] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (src, _) = source(g, Engine::Sqlite, dir.path()).await.expect("source");
        let (db, _) = target(Engine::Sqlite, dir.path()).await.expect("target");
        let key = headscale_key(dir.path());
        headscale(
            &options(&src, &key, &dir.path().join("k"), false),
            Some(&db),
            now(),
        )
        .await
        .expect("import");
        let state = crate::state::testing::restart(&dir, db.clone()).await;

        // Pre-auth keys through the real registration path.
        let register = |text: String, m: u8| {
            let state = state.clone();
            async move {
                state
                    .register(RegisterInput {
                        machine_key: MachinePublic([m; 32]),
                        node_key: NodePublic([m.wrapping_add(1); 32]),
                        old_node_key: None,
                        auth_key: Some(text),
                        expiry: None,
                        hostinfo: serde_json::json!({"Hostname": format!("new-{m}")}),
                        ephemeral: false,
                        version: 106,
                    })
                    .await
                    .expect("register")
            }
        };
        // Key 1 is reusable (clear text before 0.28, kept so after).
        let ok = register(LEGACY_KEY_1.to_string(), 0x50).await;
        assert!(
            matches!(ok, RegisterOutcome::Authorized { .. }),
            "{g:?}: {ok:?}"
        );
        let wrong = format!("{}{}", &LEGACY_KEY_1[..12], "0".repeat(36));
        let refused = register(wrong, 0x52).await;
        assert!(
            matches!(refused, RegisterOutcome::Refused(_)),
            "{refused:?}"
        );
        if g >= Gen::V028 {
            // Key 2: bcrypt, reusable, bob's.
            let text = format!("hskey-auth-{NEW_KEY_PREFIX}-{NEW_KEY_SECRET}");
            let ok = register(text, 0x54).await;
            let RegisterOutcome::Authorized { user, node } = ok else {
                panic!("{g:?}: bcrypt key refused: {ok:?}");
            };
            assert_eq!(user.name, "bob");
            assert!(node.ephemeral, "the key's flags came along");
            let wrong = format!("hskey-auth-{NEW_KEY_PREFIX}-{}", "x".repeat(64));
            let refused = register(wrong, 0x56).await;
            assert!(
                matches!(&refused, RegisterOutcome::Refused(m) if m == "invalid pre-auth key"),
                "{refused:?}"
            );
        }
        // API keys through the key cache every transport uses.
        let cache = KeyCache::new(state.clone());
        let legacy = format!("{API_LEGACY_PREFIX}.{API_LEGACY_SECRET}");
        let k = cache.authenticate(&legacy).await.expect("legacy API key");
        assert_eq!(k.prefix, API_LEGACY_PREFIX);
        // Again: now from the remembered bcrypt success.
        cache.authenticate(&legacy).await.expect("cached");
        let wrong = format!("{API_LEGACY_PREFIX}.{}", "z".repeat(32));
        assert!(cache.authenticate(&wrong).await.is_err(), "{g:?}");
        if g >= Gen::V028 {
            let new = format!("hskey-api-{API_NEW_PREFIX}-{API_NEW_SECRET}");
            cache.authenticate(&new).await.expect("hskey-api key");
            let wrong = format!("hskey-api-{API_NEW_PREFIX}-{}", "q".repeat(64));
            assert!(cache.authenticate(&wrong).await.is_err());
        }
        // New keys are ours.
        let (_, created) = state
            .create_api_key(crate::types::Scope::Admin, None)
            .await
            .expect("new key");
        assert!(created.starts_with("cskey-api-"), "{created}");
        assert_eq!(ApiSecret::parse(&created).map(|s| s.prefix.len()), Some(12));
        let _ = PreAuthSecret::parse_any(LEGACY_KEY_1).expect("legacy form parses");
    }
}

async fn failing_write_leaves_the_target_empty(engine: Engine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((src, _g)) = source(Gen::V029, engine, dir.path()).await else {
        return;
    };
    let Some((db, _t)) = target(engine, dir.path()).await else {
        return;
    };
    // What a real import would write, with the last node made to collide
    // with the first: the database refuses it at the end of the writes.
    let key = headscale_key(dir.path());
    let dry = headscale(
        &options(&src, &key, &dir.path().join("k"), true),
        Some(&db),
        now(),
    )
    .await
    .expect("dry run");
    assert_eq!(dry.nodes, 3);
    let mut set = mapped_set(&src).await;
    let first_ip = set.nodes[0].ipv4;
    set.nodes.last_mut().expect("node").ipv4 = first_ip;
    let err = db.import(&set, now()).await.expect_err("collision");
    assert!(err.to_string().contains("collides"), "{err}");
    assert_eq!(db.first_non_empty_table().await.expect("count"), None);
    assert!(!dir.path().join("k").exists(), "a dry run writes no key");
}

/// The set an import of `src` would write.
async fn mapped_set(src: &str) -> ImportSet {
    let source = super::source::Source::open(src).await.expect("open");
    let schema = super::schema::Schema::detect(&source)
        .await
        .expect("schema");
    let data = super::read::read_all(&source, &schema).await.expect("read");
    let policy = data
        .policy
        .as_deref()
        .map(|t| crate::policy::Policy::parse(t).expect("policy"));
    let mut report = Report::default();
    let mut set = super::mapping::map(&data, policy.as_ref(), now(), &mut report);
    set.policy = data.policy.clone();
    set
}

#[tokio::test]
async fn failing_write_leaves_the_target_empty_sqlite() {
    failing_write_leaves_the_target_empty(Engine::Sqlite).await;
}

#[tokio::test]
async fn failing_write_leaves_the_target_empty_postgres() {
    failing_write_leaves_the_target_empty(Engine::Postgres).await;
}

#[tokio::test]
async fn a_non_empty_target_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (src, _) = source(Gen::V028, Engine::Sqlite, dir.path())
        .await
        .expect("source");
    let (db, _) = target(Engine::Sqlite, dir.path()).await.expect("target");
    db.create_user("zoe", "", "", now()).await.expect("user");
    let key = headscale_key(dir.path());
    let err = headscale(
        &options(&src, &key, &dir.path().join("k"), false),
        Some(&db),
        now(),
    )
    .await
    .expect_err("non-empty");
    assert!(matches!(err, Error::Target(_)), "{err}");
    assert!(err.to_string().contains("users holds 1 rows"), "{err}");
    let users = db.list_users().await.expect("users");
    assert_eq!(users.len(), 1);
    assert!(db.list_nodes().await.expect("nodes").is_empty());
    assert!(!dir.path().join("k").exists(), "no key written");
    // The same check holds inside the write transaction.
    let set = mapped_set(&src).await;
    assert!(matches!(
        db.import(&set, now()).await,
        Err(crate::db::Error::Conflict(_))
    ));
}

#[tokio::test]
async fn dry_run_prints_the_summary_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (src, _) = source(Gen::V025, Engine::Sqlite, dir.path())
        .await
        .expect("source");
    let (db, _) = target(Engine::Sqlite, dir.path()).await.expect("target");
    let key = headscale_key(dir.path());
    let our_key = dir.path().join("noise.key");
    let report = headscale(&options(&src, &key, &our_key, true), Some(&db), now())
        .await
        .expect("dry run");
    let text = report.to_string();
    assert!(
        text.starts_with("would import 2 users, 3 nodes, 2 pre-auth keys, 1 API keys, policy: yes"),
        "{text}"
    );
    assert!(text.contains("would be written to"), "{text}");
    assert_eq!(db.first_non_empty_table().await.expect("count"), None);
    assert!(!our_key.exists());
    // A dry run without a target database (a fresh data dir) works too.
    headscale(&options(&src, &key, &our_key, true), None, now())
        .await
        .expect("dry run without target");
}

#[tokio::test]
async fn a_policy_clawscale_rejects_fails_the_import_with_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (src, _) = source(Gen::V026, Engine::Sqlite, dir.path())
        .await
        .expect("source");
    let (db, _) = target(Engine::Sqlite, dir.path()).await.expect("target");
    let bad = dir.path().join("policy.hujson");
    std::fs::write(
        &bad,
        "{\n  \"acls\": [\n    {\"action\": \"allow\", \"src\": [\"*\"]}\n  ]\n}\n",
    )
    .expect("policy");
    let key = headscale_key(dir.path());
    let our_key = dir.path().join("k");
    let mut opts = options(&src, &key, &our_key, false);
    opts.policy = Some(&bad);
    let err = headscale(&opts, Some(&db), now())
        .await
        .expect_err("rejected policy");
    let Error::Policy { error, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(error.position.map(|(line, _)| line), Some(3), "{err}");
    assert!(err.to_string().contains("line 3, column"), "{err}");
    assert_eq!(db.first_non_empty_table().await.expect("count"), None);
    // The same file, fixed, imports.
    std::fs::write(&bad, POLICY).expect("policy");
    headscale(&opts, Some(&db), now())
        .await
        .expect("fixed policy");
    assert_eq!(
        db.current_policy().await.expect("policy").as_deref(),
        Some(POLICY)
    );
}

#[tokio::test]
async fn not_a_headscale_database_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("other.sqlite");
    fixture::run_sqlite(&path, &["CREATE TABLE things (id integer)".to_string()]).await;
    let key = headscale_key(dir.path());
    let src = path.display().to_string();
    let err = headscale(
        &options(&src, &key, &dir.path().join("k"), true),
        None,
        now(),
    )
    .await
    .expect_err("refused");
    assert!(
        err.to_string().contains("not a Headscale database"),
        "{err}"
    );
    let missing = dir.path().join("missing.sqlite").display().to_string();
    let err = headscale(
        &options(&missing, &key, &dir.path().join("k"), true),
        None,
        now(),
    )
    .await
    .expect_err("missing");
    assert!(
        err.to_string().contains("no Headscale SQLite database"),
        "{err}"
    );
    assert!(!dir.path().join("missing.sqlite").exists(), "never created");
}
