//! Durability of writes, on both engines: a write whose commit fails is
//! reported as failed and stores nothing; a failed write leaves no open
//! transaction behind (the next write on the same pool succeeds and is
//! committed); an id handed to a caller is never handed out again.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use chrono::Utc;
use serde_json::json;

use super::testing::{PgTemp, fail_commits_touching, heal, sqlite_observer, sqlite_one_connection};
use super::{Db, Error, NewPreAuthKey};
use crate::types::{DnsLabel, MachinePublic, Node, NodeId, NodePublic, Scope, UserId};

fn new_key(prefix: &str, user: UserId) -> NewPreAuthKey {
    NewPreAuthKey {
        prefix: prefix.into(),
        hash: [7; 32],
        user_id: user,
        reusable: true,
        ephemeral: false,
        tags: vec![],
        expiration: None,
        description: String::new(),
        preauthorized: false,
    }
}

fn node(user: UserId, i: u8, hostinfo: serde_json::Value) -> Node {
    Node {
        id: NodeId(0),
        machine_key: MachinePublic([i; 32]),
        node_key: NodePublic([i; 32]),
        disco_key: Default::default(),
        hostname: format!("host{i}"),
        given_name: DnsLabel::parse(&format!("host{i}")).expect("label"),
        user_id: user,
        tags: vec![],
        ipv4: Some(Ipv4Addr::new(100, 64, 0, i)),
        ipv6: Some(Ipv6Addr::new(
            0xfd7a,
            0x115c,
            0xa1e0,
            0,
            0,
            0,
            0,
            u16::from(i),
        )),
        endpoints: vec![],
        home_derp: 0,
        hostinfo: hostinfo.into(),
        expiry: None,
        ephemeral: false,
        auth_key_id: None,
        cap_version: 100,
        created_at: Utc::now(),
        last_seen: None,
        approved_routes: vec![],
        authorized: true,
    }
}

/// Every kind of insert the admin API acknowledges with the new row, with its
/// commit failing: each must be an error, and none may be stored.
async fn failed_commits_are_errors_and_store_nothing(db: &Db) {
    let now = Utc::now();
    let base = db.create_user("base", "", "", now).await.expect("user");

    fail_commits_touching(db, "users").await;
    let user = db.create_user("lost", "", "", now).await;
    assert!(
        user.is_err(),
        "a user whose commit failed was acknowledged: {user:?}"
    );
    heal(db, "users").await;

    fail_commits_touching(db, "pre_auth_keys").await;
    let key = db
        .create_preauth_key(&new_key("aaaaaaaaaaaa", base.id), now)
        .await;
    assert!(
        key.is_err(),
        "a pre-auth key whose commit failed was acknowledged: {key:?}"
    );
    heal(db, "pre_auth_keys").await;

    fail_commits_touching(db, "api_keys").await;
    let api = db
        .create_api_key("bbbbbbbbbbbb", &[8; 32], Scope::Admin, None, now)
        .await;
    assert!(
        api.is_err(),
        "an API key whose commit failed was acknowledged: {api:?}"
    );
    heal(db, "api_keys").await;

    fail_commits_touching(db, "nodes").await;
    let n = db
        .register_node(None, &node(base.id, 1, json!({})), true)
        .await;
    assert!(
        n.is_err(),
        "a node whose commit failed was acknowledged: {n:?}"
    );
    heal(db, "nodes").await;

    let users = db.list_users().await.expect("users");
    assert_eq!(
        users.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
        ["base"]
    );
    assert!(db.list_preauth_keys(None).await.expect("keys").is_empty());
    assert!(db.list_api_keys().await.expect("api keys").is_empty());
    assert!(db.list_nodes().await.expect("nodes").is_empty());
}

/// Acknowledged ids stay unique and stored while commits fail now and then.
async fn acknowledged_ids_are_never_handed_out_twice(db: &Db) {
    let now = Utc::now();
    let mut acknowledged = Vec::new();
    for round in 0..6 {
        let failing = round % 2 == 1;
        if failing {
            fail_commits_touching(db, "users").await;
        }
        for i in 0..3 {
            let name = format!("u{round}-{i}");
            if let Ok(u) = db.create_user(&name, "", "", now).await {
                acknowledged.push((u.id, name));
            }
        }
        if failing {
            heal(db, "users").await;
        }
    }
    let ids: BTreeSet<_> = acknowledged.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids.len(),
        acknowledged.len(),
        "an id was handed out twice: {acknowledged:?}"
    );
    let stored: Vec<_> = db
        .list_users()
        .await
        .expect("users")
        .into_iter()
        .map(|u| (u.id, u.name))
        .collect();
    assert_eq!(
        stored, acknowledged,
        "stored users differ from acknowledged ones"
    );
}

#[tokio::test]
async fn sqlite_failed_commits_are_errors_and_store_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = sqlite_one_connection(&dir.path().join("db.sqlite")).await;
    failed_commits_are_errors_and_store_nothing(&db).await;
}

#[tokio::test]
async fn postgres_failed_commits_are_errors_and_store_nothing() {
    let Some(pg) = PgTemp::create("failcommit").await else {
        return;
    };
    failed_commits_are_errors_and_store_nothing(&pg.db().await).await;
}

#[tokio::test]
async fn sqlite_acknowledged_ids_are_never_handed_out_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = sqlite_one_connection(&dir.path().join("db.sqlite")).await;
    acknowledged_ids_are_never_handed_out_twice(&db).await;
}

#[tokio::test]
async fn postgres_acknowledged_ids_are_never_handed_out_twice() {
    let Some(pg) = PgTemp::create("ids").await else {
        return;
    };
    acknowledged_ids_are_never_handed_out_twice(&pg.db().await).await;
}

/// Another connection can take the write lock at once: nobody holds it.
async fn assert_unlocked(observer: &sqlx::SqlitePool, after: &str) {
    let mut conn = observer.acquire().await.expect("observer connection");
    let begin = sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await;
    assert!(
        begin.is_ok(),
        "after {after}, the database is still locked: {begin:?}"
    );
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut *conn)
        .await
        .expect("rollback");
}

async fn observed_users(observer: &sqlx::SqlitePool) -> Vec<String> {
    sqlx::query_scalar("SELECT name FROM users ORDER BY id")
        .fetch_all(observer)
        .await
        .expect("observer reads users")
}

#[tokio::test]
async fn sqlite_failed_writes_leave_no_open_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db.sqlite");
    // One connection: every statement below runs on the one that failed.
    let db = sqlite_one_connection(&path).await;
    let observer = sqlite_observer(&path).await;
    let now = Utc::now();
    let alice = db.create_user("alice", "", "", now).await.expect("user");

    // A commit that fails inside an explicit transaction.
    fail_commits_touching(&db, "users").await;
    assert!(db.delete_user(alice.id).await.is_err());
    assert_unlocked(&observer, "a failed commit").await;
    heal(&db, "users").await;

    // A statement that fails for lack of space: SQLite rolls the whole
    // transaction back by itself, so the client's ROLLBACK then fails.
    let Db::Sqlite(pool) = &db else {
        unreachable!("sqlite")
    };
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(pool)
        .await
        .expect("page count");
    sqlx::raw_sql(&format!("PRAGMA max_page_count = {pages}"))
        .execute(pool)
        .await
        .expect("limit the database size");
    let big = json!({ "padding": "x".repeat(64 * 1024) });
    let full = db.register_node(None, &node(alice.id, 1, big), true).await;
    assert!(
        matches!(&full, Err(Error::Sqlx(_))),
        "a node that does not fit was stored: {full:?}"
    );
    sqlx::raw_sql("PRAGMA max_page_count = 1073741823")
        .execute(pool)
        .await
        .expect("lift the limit");
    assert_unlocked(&observer, "a full database").await;

    // A write refused for a logical reason on the same connection next.
    let mut ghost = node(alice.id, 2, json!({}));
    ghost.id = NodeId(999);
    let missing = db.register_node(None, &ghost, false).await;
    assert!(matches!(missing, Err(Error::NotFound(_))), "{missing:?}");
    assert_unlocked(&observer, "a refused update").await;

    // The next writes on the same pool succeed and are really committed.
    db.create_user("bob", "", "", now).await.expect("bob");
    let n = db
        .register_node(None, &node(alice.id, 3, json!({})), true)
        .await
        .expect("node after the failures");
    assert_unlocked(&observer, "successful writes").await;
    assert_eq!(observed_users(&observer).await, ["alice", "bob"]);
    let nodes: Vec<i64> = sqlx::query_scalar("SELECT id FROM nodes")
        .fetch_all(&observer)
        .await
        .expect("observer reads nodes");
    assert_eq!(nodes, [n.0]);
}

#[tokio::test]
async fn postgres_failed_writes_leave_no_open_transaction() {
    let Some(pg) = PgTemp::create("notx").await else {
        return;
    };
    let db = pg.db().await;
    let now = Utc::now();
    let alice = db.create_user("alice", "", "", now).await.expect("user");
    fail_commits_touching(&db, "users").await;
    assert!(db.delete_user(alice.id).await.is_err());
    assert!(db.create_user("lost", "", "", now).await.is_err());
    heal(&db, "users").await;
    let mut ghost = node(alice.id, 2, json!({}));
    ghost.id = NodeId(999);
    assert!(matches!(
        db.register_node(None, &ghost, false).await,
        Err(Error::NotFound(_))
    ));
    // No session of this database sits inside a transaction.
    let mut observer = <sqlx::PgConnection as sqlx::Connection>::connect(&pg.url)
        .await
        .expect("observer");
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'",
    )
    .fetch_one(&mut observer)
    .await
    .expect("pg_stat_activity");
    assert_eq!(open, 0, "a failed write left a transaction open");
    db.create_user("bob", "", "", now).await.expect("bob");
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM users ORDER BY id")
        .fetch_all(&mut observer)
        .await
        .expect("observer reads users");
    assert_eq!(names, ["alice", "bob"]);
}

/// API v2's tables and columns (migration 0006) round-trip on an engine:
/// OAuth clients (scopes, tags, hash), the stored DNS settings (NULL kept
/// apart from an empty list), a key's description and `preauthorized`.
async fn api_v2_tables_round_trip(db: &Db) {
    use crate::db::{DnsOverrides, NewOAuthClient};
    use crate::types::ScopeSet;
    let now = Utc::now();
    let scopes = ScopeSet::parse(["auth_keys devices:core"]).expect("scopes");
    let c = db
        .create_oauth_client(
            &NewOAuthClient {
                client_id: "0123456789ab".into(),
                hash: [9; 32],
                scopes,
                tags: vec!["tag:k8s".into()],
                description: "ops".into(),
            },
            now,
        )
        .await
        .expect("client");
    assert_eq!(
        db.list_oauth_clients().await.expect("list"),
        std::slice::from_ref(&c)
    );
    assert_eq!(c.scopes, scopes);
    assert!(matches!(
        db.delete_oauth_client("ffffffffffff").await,
        Err(Error::NotFound(_))
    ));
    db.delete_oauth_client(&c.client_id).await.expect("delete");
    assert!(db.list_oauth_clients().await.expect("list").is_empty());

    assert_eq!(
        db.dns_overrides().await.expect("read"),
        DnsOverrides::default()
    );
    let o = DnsOverrides {
        nameservers: Some(vec![]),
        search_paths: Some(vec!["corp.example".into()]),
        magic_dns: None,
    };
    db.save_dns_overrides(&o, now).await.expect("save");
    assert_eq!(db.dns_overrides().await.expect("read"), o);
    let o2 = DnsOverrides {
        magic_dns: Some(false),
        ..Default::default()
    };
    db.save_dns_overrides(&o2, now).await.expect("save again");
    assert_eq!(db.dns_overrides().await.expect("read"), o2);

    let u = db.create_user("v2", "", "", now).await.expect("user");
    let mut k = new_key("cccccccccccc", u.id);
    k.description = "terraform".into();
    k.preauthorized = true;
    let stored = db.create_preauth_key(&k, now).await.expect("key");
    assert_eq!(
        (stored.description.as_str(), stored.preauthorized),
        ("terraform", true)
    );
    let listed = db.list_preauth_keys(None).await.expect("keys");
    assert_eq!(listed, [stored]);
}

#[tokio::test]
async fn sqlite_api_v2_tables_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::connect(&super::Target::Sqlite {
        path: dir.path().join("db.sqlite"),
        write_ahead_log: true,
    })
    .await
    .expect("db");
    api_v2_tables_round_trip(&db).await;
}

#[tokio::test]
async fn postgres_api_v2_tables_round_trip() {
    let Some(pg) = PgTemp::create("apiv2").await else {
        return;
    };
    api_v2_tables_round_trip(&pg.db().await).await;
}

/// `nodes.authorized` (migration 0007) round-trips on an engine, both ways.
async fn authorized_round_trips(db: &Db) {
    let u = db
        .create_user("login", "", "", Utc::now())
        .await
        .expect("user");
    let mut n = node(u.id, 7, serde_json::json!({}));
    n.authorized = false;
    let id = db.register_node(None, &n, true).await.expect("insert");
    let stored = |db: &Db| {
        let db = db.clone();
        async move {
            db.list_nodes()
                .await
                .expect("nodes")
                .into_iter()
                .find(|x| x.id == id)
                .expect("stored")
        }
    };
    assert!(!stored(db).await.authorized);
    let n = Node {
        id,
        authorized: true,
        ..n
    };
    db.save_node(&n).await.expect("save");
    assert!(stored(db).await.authorized);
}

#[tokio::test]
async fn sqlite_authorized_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::connect(&super::Target::Sqlite {
        path: dir.path().join("db.sqlite"),
        write_ahead_log: true,
    })
    .await
    .expect("db");
    authorized_round_trips(&db).await;
}

#[tokio::test]
async fn postgres_authorized_round_trips() {
    let Some(pg) = PgTemp::create("login").await else {
        return;
    };
    authorized_round_trips(&pg.db().await).await;
}

/// OIDC users (migration 0008) round-trip on an engine: identity, picture
/// and groups are stored; a second login with the same (issuer, subject)
/// updates that user; another subject is another user; the pair is unique.
async fn oidc_users_round_trip(db: &Db) {
    use crate::db::OidcProfile;
    use crate::types::OidcIdentity;
    let now = Utc::now();
    let plain = db.create_user("plain", "", "", now).await.expect("plain");
    assert_eq!((plain.oidc.as_ref(), plain.groups.len()), (None, 0));
    let mut p = OidcProfile {
        identity: OidcIdentity {
            issuer: "https://id.example.com".into(),
            subject: "248289761001".into(),
        },
        display_name: "Alice".into(),
        email: "alice@example.com".into(),
        profile_pic_url: "https://id.example.com/alice.png".into(),
        groups: vec!["mcp-admins".into(), "dev".into()],
    };
    let (alice, created) = db.upsert_oidc_user("alice", &p, now).await.expect("alice");
    assert!(created);
    assert_eq!(alice.oidc.as_ref(), Some(&p.identity));
    assert_eq!(alice.groups, p.groups);
    assert_eq!(alice.profile_pic_url, p.profile_pic_url);
    p.email = "alice@example.org".into();
    p.groups = vec![];
    let (again, created) = db
        .upsert_oidc_user("ignored-name", &p, now)
        .await
        .expect("again");
    assert!(!created);
    assert_eq!((again.id, again.name.as_str()), (alice.id, "alice"));
    assert_eq!(again.email, "alice@example.org");
    assert!(again.groups.is_empty());
    let other = OidcProfile {
        identity: OidcIdentity {
            subject: "other".into(),
            ..p.identity.clone()
        },
        ..p.clone()
    };
    let (bob, created) = db.upsert_oidc_user("bob", &other, now).await.expect("bob");
    assert!(created && bob.id != alice.id);
    let listed = db.list_users().await.expect("list");
    assert_eq!(listed, [plain, again, bob]);
    // A name clash is reported, not merged.
    let third = OidcProfile {
        identity: OidcIdentity {
            subject: "third".into(),
            ..p.identity.clone()
        },
        ..p
    };
    assert!(matches!(
        db.upsert_oidc_user("alice", &third, now).await,
        Err(Error::Conflict(_))
    ));
}

#[tokio::test]
async fn sqlite_oidc_users_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::connect(&super::Target::Sqlite {
        path: dir.path().join("db.sqlite"),
        write_ahead_log: true,
    })
    .await
    .expect("db");
    oidc_users_round_trip(&db).await;
}

#[tokio::test]
async fn postgres_oidc_users_round_trip() {
    let Some(pg) = PgTemp::create("oidcusers").await else {
        return;
    };
    oidc_users_round_trip(&pg.db().await).await;
}
