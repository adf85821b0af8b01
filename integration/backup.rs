//! `clawscale backup` of a running server under writes, `clawscale restore`
//! into a second server's data directory, and that server started on it:
//! every user whose creation was acknowledged before the backup began is
//! there, and the copy is one moment of the first server (a prefix of the
//! acknowledged creations, which are sequential). Plus the refusals a real
//! operator meets: an existing backup file, a data directory that still has
//! its database. Runs on loopback; no `tailscaled`.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::server::Db;
use crate::harness::{CmdOutput, Server};

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
