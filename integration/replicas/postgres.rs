//! Two real `clawscale serve` processes on one (private) PostgreSQL server:
//! a write through either is listed by the other within a second, a replica
//! killed with SIGKILL catches up when it starts again, and losing the
//! database makes both answer 503 and refuse writes until it is back.
//! Each answers `clawscale audit list` with the other's lines too, even
//! after the other's audit file is gone.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Db, PgServer, Server, try_wait_for};

fn users(server: &Server) -> Vec<String> {
    let out = server.cli_ok(&["users", "list", "-o", "json"]);
    match serde_json::from_str(out.stdout.trim()) {
        Ok(Value::Array(items)) => items
            .iter()
            .map(|u| u["name"].as_str().unwrap_or_default().to_owned())
            .collect(),
        Ok(Value::Null) => Vec::new(),
        other => panic!("users list -o json is not a list: {other:?}\n{out}"),
    }
}

/// Waits until `server` lists user `name`; returns how long that took.
fn lists(server: &Server, name: &str, within: Duration) -> Duration {
    let start = Instant::now();
    let seen = try_wait_for(within, || {
        if users(server).iter().any(|u| u == name) {
            Ok(())
        } else {
            Err(format!("{name} not listed"))
        }
    });
    if let Err(e) = seen {
        server.dump_log();
        panic!("{e} within {within:?}");
    }
    start.elapsed()
}

/// The users whose creation `server`'s audit trail lists.
fn audited_users(server: &Server) -> Vec<String> {
    let out = server.cli_ok(&["audit", "list", "--object", "user", "-o", "json"]);
    let entries: Vec<Value> = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("audit list -o json: {e}\n{out}"));
    entries
        .iter()
        .filter(|e| e["action"] == "user.create" && e["result"] == "ok")
        .filter_map(|e| e["after"]["name"].as_str().map(str::to_owned))
        .collect()
}

fn health(server: &Server, code: u16, within: Duration) {
    let ok = try_wait_for(within, || match server.healthz() {
        Ok((c, _)) if c == code => Ok(()),
        Ok((c, body)) => Err(format!("{c}: {body}")),
        Err(e) => Err(e),
    });
    if let Err(e) = ok {
        server.dump_log();
        panic!("/healthz never answered {code}: {e}");
    }
}

#[test]
fn two_servers_on_one_postgres_database_serve_one_tailnet() {
    let mut pg = PgServer::start();
    let mut a = Server::start_local(Db::Sqlite, |cfg| pg.configure(cfg));
    let b = Server::start_local(Db::Sqlite, |cfg| pg.configure(cfg));

    a.create_user("alice");
    // The CLI round trip is part of the time measured.
    let took = lists(&b, "alice", Duration::from_secs(1));
    eprintln!("user created on A listed by B after {took:?}");
    b.create_user("bob");
    let took = lists(&a, "bob", Duration::from_secs(1));
    eprintln!("user created on B listed by A after {took:?}");

    // SIGKILL: B goes on serving writes; A catches up when it is back.
    a.kill();
    health(&b, 200, Duration::from_secs(5));
    b.create_user("carol");
    a.start_again();
    lists(&a, "carol", Duration::from_secs(1));

    // The database goes away: neither claims to be healthy, writes fail
    // and say why.
    pg.stop();
    health(&a, 503, Duration::from_secs(30));
    health(&b, 503, Duration::from_secs(30));
    let out = b.cli(&["users", "create", "lost"]);
    assert!(!out.success() && !out.timed_out(), "{out}");
    assert!(
        out.stderr.to_lowercase().contains("database unavailable"),
        "the refusal does not say why:\n{out}"
    );

    pg.start_again();
    health(&a, 200, Duration::from_secs(60));
    health(&b, 200, Duration::from_secs(60));
    b.create_user("dave");
    lists(&a, "dave", Duration::from_secs(1));
    assert!(!users(&a).iter().any(|u| u == "lost"));

    // One trail: each replica lists every replica's creations, even once
    // the other's audit file is gone (as with its machine).
    let all = ["alice", "bob", "carol", "dave"];
    assert_eq!(audited_users(&a), all);
    std::fs::remove_file(b.dir().join("data/audit.jsonl")).expect("B's audit file");
    assert_eq!(audited_users(&b), all);
    drop((a, b)); // before their database server
}
