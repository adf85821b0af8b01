//! `clawscale backup` of a running server under writes, `clawscale restore`
//! into a second server's data directory, and that server started on it:
//! every user whose creation was acknowledged before the backup began is
//! there, and the copy is one moment of the first server (a prefix of the
//! acknowledged creations, which are sequential). Plus the refusals a real
//! operator meets: an existing backup file, a data directory that still has
//! its database or its own keys. Runs on loopback; no `tailscaled`.
//!
//! Then the disaster drill with real clients: stock `tailscaled` 1.96.4
//! nodes stream from a server that is backed up while they do, killed, and
//! restored into an empty data directory; the server started there on the
//! same URL has the same Noise and DERP keys, and the clients carry on, at
//! the same addresses and able to reach each other, without `tailscale up`.
//! A data directory holding a database, or another key, is refused.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::server::Db;
use crate::harness::{
    ClientVersion, CmdOutput, KeyOptions, Server, Tailscaled, TailscaledOptions, Topology,
    skip_real_clients, wait_for,
};

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn users(server: &Server) -> Vec<String> {
    let out = server.cli_ok(&["users", "list", "-o", "json"]);
    let list: Value = serde_json::from_str(out.stdout.trim()).expect("users json");
    let mut names: Vec<String> = list
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|u| u["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[track_caller]
fn refused(out: CmdOutput, says: &str) {
    assert!(!out.success(), "expected a refusal:\n{out}");
    assert!(out.stderr.contains(says), "expected {says:?}:\n{out}");
}

#[test]
fn backup_of_a_busy_server_restores_every_acknowledged_user() {
    let first = Server::start_local(Db::Sqlite, |_| {});
    let dir = tempfile::tempdir().expect("tempdir");
    let backup = dir.path().join("clawscale.backup");
    let backup_arg = backup.to_str().expect("utf-8 path");
    let acked = Mutex::new(Vec::<String>::new());
    let stop = AtomicBool::new(false);
    let count = || acked.lock().expect("lock").len();
    let (before, during) = std::thread::scope(|s| {
        s.spawn(|| {
            // Bounded, so a failing wait below cannot leave it running.
            for i in 0..500 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let name = format!("w{i:04}");
                first.create_user(&name);
                acked.lock().expect("lock").push(name);
            }
        });
        wait_until("5 users", || count() >= 5);
        let before = count();
        first.cli_ok(&["backup", "--to", backup_arg]);
        let during = count();
        // Creations go on after the copy; none may reach it.
        wait_until("3 more users", || count() >= during + 3);
        stop.store(true, Ordering::SeqCst);
        (before, during)
    });
    let acked = acked.into_inner().expect("lock");
    refused(
        first.cli(&["backup", "--to", backup_arg]),
        "refusing to overwrite",
    );

    let mut second = Server::start_local(Db::Sqlite, |_| {});
    second.stop();
    refused(second.cli(&["restore", "--from", backup_arg]), "exists");
    let data = second.dir().join("data");
    for f in ["db.sqlite", "db.sqlite-wal", "db.sqlite-shm"] {
        let _ = std::fs::remove_file(data.join(f));
    }
    // Its own keys are not the first server's.
    refused(
        second.cli(&["restore", "--from", backup_arg]),
        "holds another key",
    );
    assert!(!data.join("db.sqlite").exists(), "nothing restored");
    for f in ["noise_private.key", "derp_server_private.key"] {
        std::fs::remove_file(data.join(f)).expect("remove key");
    }
    let out = second.cli_ok(&["restore", "--from", backup_arg]);
    assert!(out.stdout.contains("schema version"), "{out}");
    second.start_again();

    let restored = users(&second);
    let k = restored.len();
    assert_eq!(
        restored,
        acked[..k],
        "the backup is a prefix of the commits"
    );
    assert!(
        k >= before && k <= during + 1,
        "{k} users restored; {before} acknowledged before the backup began, {during} when it ended"
    );
    let audit = second.cli_ok(&["audit", "list", "-o", "json"]);
    assert!(audit.stdout.contains("database.restore"), "{audit}");
    assert_private(&backup);
}

fn assert_private(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", p.display());
}

/// What `GET /key` answers: the server's public Noise key, as clients see it.
fn control_key(topo: &Topology, server: &Server) -> String {
    match topo
        .hub()
        .http_get(server.ip(), server.port(), "/key?v=130")
    {
        Ok((200, body)) => body,
        other => panic!("GET /key: {other:?}"),
    }
}

fn sorted_ips(node: &Tailscaled) -> Vec<String> {
    let st = node.wait_state("Running", Duration::from_secs(90));
    let mut ips = st.self_node.unwrap_or_default().tailscale_ips;
    ips.sort();
    assert!(!ips.is_empty(), "{} has no tailnet address", node.name());
    ips
}

#[test]
fn restored_server_keeps_its_keys_and_its_clients() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(2);
    let mut server = Server::start(&topo);
    server.create_user("alice");
    let authkey = server.create_preauthkey(
        "alice",
        &KeyOptions {
            reusable: true,
            ..KeyOptions::default()
        },
    );
    let nodes: Vec<Tailscaled> = (0..2)
        .map(|i| {
            // Relay only: a pong after the restore crossed the restored
            // server's DERP, reached with the map the restored server sent.
            let opts = TailscaledOptions {
                version: ClientVersion::V1_96_4,
                always_derp: true,
                ..TailscaledOptions::default()
            };
            let node = Tailscaled::start_with(topo.host(i), &format!("node{i}"), opts);
            node.up_ok(&server.url(), &authkey, &format!("node{i}"));
            node
        })
        .collect();
    let ips: Vec<Vec<String>> = nodes.iter().map(sorted_ips).collect();
    nodes[0].wait_ping(&ips[1][0], Duration::from_secs(60), |p| p.is_derp());
    wait_for("both nodes online", Duration::from_secs(60), || {
        let online = server.nodes().iter().filter(|n| n.online()).count();
        (online == 2)
            .then_some(())
            .ok_or(format!("{online} online"))
    });
    let ids = node_ids(&server);
    let noise_key = control_key(&topo, &server);
    let old_data = server.dir().join("data");
    let key_names = ["noise_private.key", "derp_server_private.key"];
    let old_keys: Vec<Vec<u8>> = key_names
        .iter()
        .map(|n| std::fs::read(old_data.join(n)).expect("key file"))
        .collect();

    // Online: both clients hold their map streams open meanwhile.
    let backup = server.dir().join("clawscale.backup");
    let backup_arg = backup.to_str().expect("utf-8 path");
    let out = server.cli_ok(&["backup", "--to", backup_arg, "-o", "json"]);
    let report: Value = serde_json::from_str(out.stdout.trim()).expect("backup json");
    assert_eq!(report["key_files"], serde_json::json!(key_names), "{out}");
    assert_private(&backup);
    for key in &old_keys {
        let text = String::from_utf8_lossy(key);
        assert!(
            !out.combined().contains(text.trim()),
            "key material printed:\n{out}"
        );
    }

    server.kill();
    refused(server.cli(&["restore", "--from", backup_arg]), "exists");

    // A fresh data directory on the same URL.
    let fresh = server.dir().join("fresh");
    server.edit_config(|cfg| {
        let p = |name: &str| fresh.join(name).to_string_lossy().into_owned();
        cfg.set("data_dir", p(""))
            .set("database.sqlite.path", p("db.sqlite"))
            .set("noise.private_key_path", p(key_names[0]))
            .set("derp.server.private_key_path", p(key_names[1]));
    });
    // Another server's key there: refused, and nothing written.
    std::fs::create_dir(&fresh).expect("fresh dir");
    let foreign = format!("privkey:{}", "5a".repeat(32));
    std::fs::write(fresh.join(key_names[0]), &foreign).expect("foreign key");
    refused(
        server.cli(&["restore", "--from", backup_arg]),
        "holds another key",
    );
    assert!(!fresh.join("db.sqlite").exists());
    assert!(!fresh.join(key_names[1]).exists());
    std::fs::remove_file(fresh.join(key_names[0])).expect("rm");

    let out = server.cli_ok(&["restore", "--from", backup_arg]);
    assert!(!out.combined().contains("warning"), "{out}");
    for (name, old) in key_names.iter().zip(&old_keys) {
        let path = fresh.join(name);
        assert_eq!(&std::fs::read(&path).expect("restored key"), old, "{name}");
        assert_private(&path);
    }
    server.start_again();
    assert_eq!(control_key(&topo, &server), noise_key, "the same Noise key");

    // No `tailscale up`: the clients reconnect on their own. Online is the
    // restored server's own view (it starts with nobody online): each
    // client opened a map stream over Noise with the key it knew.
    assert_eq!(node_ids(&server), ids, "the same nodes");
    wait_for("both nodes online again", Duration::from_secs(90), || {
        let online = server.nodes().iter().filter(|n| n.online()).count();
        (online == 2)
            .then_some(())
            .ok_or(format!("{online} online"))
    });
    for (node, want) in nodes.iter().zip(&ips) {
        assert_eq!(
            &sorted_ips(node),
            want,
            "{} kept its addresses",
            node.name()
        );
    }
    nodes[0].wait_ping(&ips[1][0], Duration::from_secs(90), |p| p.is_derp());
    nodes[1].wait_ping(&ips[0][0], Duration::from_secs(90), |p| p.is_derp());
}

fn node_ids(server: &Server) -> Vec<Option<u64>> {
    let mut ids: Vec<_> = server.nodes().iter().map(|n| n.id()).collect();
    ids.sort();
    ids
}

/// With PostgreSQL, `clawscale backup` holds the key files alone (and says
/// the database is `pg_dump`'s); `restore --from` checks the database's
/// schema, then puts the keys into an empty data directory, byte for byte.
#[test]
fn postgres_backup_holds_the_key_files() {
    if crate::harness::postgres::admin_url().is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} must be set in CI",
            crate::harness::postgres::URL_ENV
        );
        eprintln!("skipping: {} is not set", crate::harness::postgres::URL_ENV);
        return;
    }
    let mut server = Server::start_local(Db::Postgres, |_| {});
    let dir = tempfile::tempdir().expect("tempdir");
    let backup = dir.path().join("keys.backup");
    let backup_arg = backup.to_str().expect("utf-8 path");
    let out = server.cli_ok(&["backup", "--to", backup_arg, "-o", "json"]);
    let report: Value = serde_json::from_str(out.stdout.trim()).expect("backup json");
    assert_eq!(
        report["key_files"],
        serde_json::json!(["noise_private.key", "derp_server_private.key"]),
        "{out}"
    );
    assert!(report["database"].is_null(), "{out}");
    assert!(out.stdout.contains("pg_dump"), "{out}");
    assert_private(&backup);

    server.stop();
    let old = server.dir().join("data");
    let fresh = server.dir().join("fresh");
    server.edit_config(|cfg| {
        let p = |name: &str| fresh.join(name).to_string_lossy().into_owned();
        cfg.set("data_dir", p(""))
            .set("noise.private_key_path", p("noise_private.key"))
            .set("derp.server.private_key_path", p("derp_server_private.key"));
    });
    let out = server.cli_ok(&["restore", "--from", backup_arg]);
    assert!(out.stdout.contains("schema version"), "{out}");
    for name in ["noise_private.key", "derp_server_private.key"] {
        assert_eq!(
            std::fs::read(fresh.join(name)).expect("restored key"),
            std::fs::read(old.join(name)).expect("old key"),
            "{name}"
        );
        assert_private(&fresh.join(name));
    }
    // Again: the same keys are in place, nothing to write, nothing refused.
    let out = server.cli_ok(&["restore", "--from", backup_arg]);
    assert!(out.stdout.contains("already holds"), "{out}");
    server.start_again();
    let audit = server.cli_ok(&["audit", "list", "-o", "json"]);
    assert!(audit.stdout.contains("keys.restore"), "{audit}");
}
