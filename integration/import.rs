//! Switching from Headscale with real clients: genuine `tailscaled` 1.96.4
//! nodes enrolled against a control server keep working after its tailnet
//! is moved into a fresh clawscale data dir by `clawscale import headscale`.
//!
//! Headscale itself cannot be fetched from the registries reachable here,
//! so the test stands in for it: the nodes enroll against clawscale, and a
//! test-side exporter writes that server's users and nodes (keys,
//! addresses, names, routes, hostinfo) into a database with Headscale
//! 0.29's schema and its control key into a Headscale-format key file
//! (`privkey:<hex>`). The server is stopped, its database and key removed,
//! the import run into the empty data dir, and the server started again on
//! the same URL: the clients must come back to `Running` without
//! `tailscale up`, with the same addresses and names, and ping each other.

use std::path::Path;

use sqlx::{Connection, Executor, SqliteConnection};

use crate::enroll::{CONVERGE, assert_back_unchanged, join_all, reusable, start_clients};
use crate::harness::{ClientVersion, Db, Server, Topology, skip_real_clients};

/// Headscale 0.29's tables as its `hscontrol/db/schema.sql` declares them
/// (columns the import reads; SQLite types as gorm creates them).
const HEADSCALE_0_29: [&str; 6] = [
    "CREATE TABLE migrations (id text PRIMARY KEY)",
    "CREATE TABLE users (id integer PRIMARY KEY AUTOINCREMENT, name text, display_name text, \
     email text, provider_identifier text, provider text, profile_pic_url text, \
     created_at datetime, updated_at datetime, deleted_at datetime)",
    "CREATE TABLE pre_auth_keys (id integer PRIMARY KEY AUTOINCREMENT, key text, prefix text, \
     hash blob, user_id integer, reusable numeric, ephemeral numeric DEFAULT false, \
     used numeric DEFAULT false, tags text, expiration datetime, created_at datetime)",
    "CREATE TABLE api_keys (id integer PRIMARY KEY AUTOINCREMENT, prefix text, hash blob, \
     expiration datetime, last_seen datetime, created_at datetime)",
    "CREATE TABLE nodes (id integer PRIMARY KEY AUTOINCREMENT, machine_key text, node_key text, \
     disco_key text, endpoints text, host_info text, ipv4 text, ipv6 text, hostname text, \
     given_name varchar(63), user_id integer, register_method text, tags text, \
     auth_key_id integer, last_seen datetime, expiry datetime, approved_routes text, \
     created_at datetime, updated_at datetime, deleted_at datetime)",
    "CREATE TABLE policies (id integer PRIMARY KEY AUTOINCREMENT, data text, \
     created_at datetime, updated_at datetime, deleted_at datetime)",
];

/// Writes clawscale's users and nodes at `ours` into a new Headscale 0.29
/// database at `theirs`, as Headscale would hold the same tailnet.
fn export_as_headscale(ours: &Path, theirs: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let url = format!("sqlite://{}?mode=rwc", theirs.display());
        let mut c = SqliteConnection::connect(&url).await.expect("headscale db");
        for ddl in HEADSCALE_0_29 {
            c.execute(ddl).await.expect("ddl");
        }
        let attach = format!("ATTACH DATABASE '{}' AS cs", ours.display());
        c.execute(attach.as_str()).await.expect("attach");
        for stmt in [
            "INSERT INTO migrations (id) VALUES ('202602201200-clear-tagged-node-user-id'), \
             ('202606181200-recover-null-tags-node-user-id')",
            "INSERT INTO users (id, name, display_name, email, provider, created_at, updated_at) \
             SELECT id, name, display_name, email, '', created_at, created_at FROM cs.users",
            // Headscale 0.29 keeps tagged nodes without a user.
            "INSERT INTO nodes (id, machine_key, node_key, disco_key, endpoints, host_info, ipv4, \
             ipv6, hostname, given_name, user_id, register_method, tags, last_seen, expiry, \
             approved_routes, created_at, updated_at) \
             SELECT id, machine_key, node_key, disco_key, endpoints, hostinfo, ipv4, ipv6, \
             hostname, given_name, CASE WHEN tags = '[]' THEN user_id END, 'authkey', tags, \
             last_seen, expiry, approved_routes, created_at, created_at FROM cs.nodes",
        ] {
            c.execute(stmt)
                .await
                .unwrap_or_else(|e| panic!("{stmt}: {e}"));
        }
        c.close().await.expect("close");
    });
}

#[test]
fn headscale_clients_reconnect_after_import_without_logging_in() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(2);
    let mut server = Server::start_with(&topo, Db::Sqlite, |_| {});
    server.create_user("alice");
    let key = server.create_preauthkey("alice", &reusable());
    let nodes = start_clients(&topo, &[ClientVersion::V1_96_4; 2], false);
    let ips = join_all(&server, &nodes, &key);
    nodes[0].wait_ping(&ips[1][0], CONVERGE, |_| true);
    let names_before: Vec<String> = server
        .nodes()
        .iter()
        .map(|n| n.name().to_string())
        .collect();
    server.stop();

    // "Headscale": its database and its noise_private.key.
    let hs = tempfile::tempdir().expect("tempdir");
    let data = server.dir().join("data");
    let hs_db = hs.path().join("db.sqlite");
    export_as_headscale(&data.join("db.sqlite"), &hs_db);
    let control_key = std::fs::read_to_string(data.join("noise_private.key")).expect("key");
    assert!(control_key.starts_with("privkey:"), "Headscale's format");
    let hs_key = hs.path().join("noise_private.key");
    std::fs::write(&hs_key, control_key.trim()).expect("headscale key");

    // A fresh clawscale data dir: no database, no control key.
    for f in [
        "db.sqlite",
        "db.sqlite-wal",
        "db.sqlite-shm",
        "noise_private.key",
    ] {
        let _ = std::fs::remove_file(data.join(f));
    }
    let (db_arg, key_arg) = (hs_db.to_string_lossy(), hs_key.to_string_lossy());
    let dry = server.cli_ok(&["import", "headscale", "--db", &db_arg, "--dry-run"]);
    assert!(
        dry.stdout.starts_with("would import 1 users, 2 nodes"),
        "{dry}"
    );
    assert!(
        !data.join("db.sqlite").exists(),
        "a dry run creates nothing"
    );
    let out = server.cli_ok(&[
        "import",
        "headscale",
        "--db",
        &db_arg,
        "--noise-key",
        &key_arg,
    ]);
    assert!(
        out.stdout
            .starts_with("imported 1 users, 2 nodes, 0 pre-auth keys, 0 API keys, policy: no"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("noise_private.key")).expect("key"),
        control_key.trim(),
        "the same control key"
    );
    server.start_again();

    // No `tailscale up` since: the clients come back by themselves.
    assert_back_unchanged(&nodes, &ips);
    nodes[0].wait_ping(&ips[1][0], CONVERGE, |_| true);
    nodes[1].wait_ping(&ips[0][0], CONVERGE, |_| true);
    let names_after: Vec<String> = server
        .nodes()
        .iter()
        .map(|n| n.name().to_string())
        .collect();
    assert_eq!(names_before, names_after);
    let audit = server.cli_ok(&["audit", "list", "-o", "json"]);
    assert!(audit.stdout.contains("database.import"), "{audit}");
}
