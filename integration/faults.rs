//! Fault-injection tier (issue 11, "acknowledged writes are never lost"): a
//! real `clawscale serve` whose database fails under it, checked from the
//! outside through the CLI, `/healthz` and the control protocol.
//!
//! - `disk_full`: SQLite on a small tmpfs that the test fills and frees.
//! - `postgres`: a private PostgreSQL server stopped and started again.
//! - `kill`: SIGKILL of the server while nodes register, in a loop.
//! - `files`: the SQLite files' modes and the errors about their path.
//!
//! The contract each checks: a write acknowledged to its caller survives a
//! restart; a write that fails is reported as failed (non-zero exit, a clear
//! message) and leaves nothing behind; `/healthz` answers 503 while the
//! database refuses writes; the server recovers when the database does,
//! with what it lists unchanged by a restart (the World equals the
//! database). Servers run on loopback in the root namespace: no `tailscaled`
//! is involved. Needs root (mounts, `runuser`).

mod disk_full;
mod files;
mod kill;
mod postgres;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{CmdOutput, Server, wait_for};

/// What the server lists through the CLI: users, pre-auth keys and API
/// keys, by their identities.
#[derive(Debug, Default, PartialEq, Eq)]
struct Listing {
    users: BTreeSet<String>,
    /// (id, masked key text, used)
    keys: BTreeSet<(u64, String, bool)>,
    /// API key prefixes.
    api_keys: BTreeSet<String>,
}

fn json_list(server: &Server, args: &[&str]) -> Vec<Value> {
    let mut args = args.to_vec();
    args.extend(["-o", "json"]);
    let out = server.cli_ok(&args);
    match serde_json::from_str(out.stdout.trim()) {
        Ok(Value::Array(items)) => items,
        Ok(Value::Null) => Vec::new(),
        other => panic!("{} -o json is not a list: {other:?}\n{out}", args.join(" ")),
    }
}

fn listing(server: &Server) -> Listing {
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    Listing {
        users: json_list(server, &["users", "list"])
            .iter()
            .map(|u| text(u, "name"))
            .collect(),
        keys: json_list(server, &["preauthkeys", "list"])
            .iter()
            .map(|k| {
                let id = k["id"].as_u64().expect("key id");
                (id, text(k, "key"), k["used"].as_bool().unwrap_or(false))
            })
            .collect(),
        api_keys: json_list(server, &["apikeys", "list"])
            .iter()
            // Listed masked, as Headscale does: `cskey-api-<prefix>-***`.
            .map(|k| {
                let shown = text(k, "prefix");
                shown
                    .strip_prefix("cskey-api-")
                    .and_then(|p| p.strip_suffix("-***"))
                    .unwrap_or(&shown)
                    .to_owned()
            })
            .collect(),
    }
}

/// The writes a test saw acknowledged, by identity.
#[derive(Debug, Default)]
struct Acked {
    users: BTreeSet<String>,
    /// Key ids.
    keys: BTreeSet<u64>,
    /// API key prefixes.
    api_keys: BTreeSet<String>,
}

/// How many writes of each kind failed.
#[derive(Debug, Default)]
struct Failed {
    users: BTreeSet<String>,
    keys: usize,
    api_keys: usize,
}

impl Failed {
    fn total(&self) -> usize {
        self.users.len() + self.keys + self.api_keys
    }
}

/// A failed CLI write: non-zero exit, and a message saying the database
/// failed the request and nothing changed.
#[track_caller]
fn assert_reported(out: &CmdOutput) {
    assert!(
        !out.success() && !out.timed_out(),
        "not a clean failure:\n{out}"
    );
    let said = out.stderr.to_lowercase();
    assert!(
        said.contains("database unavailable") && said.contains("changed nothing"),
        "the failure does not say what happened:\n{out}"
    );
}

/// One user, one pre-auth key (owned by `base`) and one API key, each
/// recorded as acknowledged or failed.
fn write_each_kind(server: &Server, name: &str, acked: &mut Acked, failed: &mut Failed) {
    let out = server.cli(&["users", "create", name]);
    if out.success() {
        acked.users.insert(name.to_owned());
    } else {
        assert_reported(&out);
        failed.users.insert(name.to_owned());
    }
    let out = server.cli(&["preauthkeys", "create", "--user", "base", "-o", "json"]);
    if out.success() {
        let key: Value = serde_json::from_str(out.stdout.trim()).expect("key json");
        acked.keys.insert(key["id"].as_u64().expect("key id"));
    } else {
        assert_reported(&out);
        failed.keys += 1;
    }
    let out = server.cli(&["apikeys", "create", "-o", "json"]);
    if out.success() {
        let key: Value = serde_json::from_str(out.stdout.trim()).expect("api key json");
        let secret = key["api_key"].as_str().expect("api_key");
        let prefix = secret
            .strip_prefix("cskey-api-")
            .and_then(|rest| rest.split('-').next())
            .expect("cskey-api-<prefix>-<secret>");
        acked.api_keys.insert(prefix.to_owned());
    } else {
        assert_reported(&out);
        failed.api_keys += 1;
    }
}

/// What is listed is exactly what was acknowledged (plus `base`): every
/// acknowledged write is there, no failed one left anything.
#[track_caller]
fn assert_listing_is(listed: &Listing, acked: &Acked) {
    let mut users = acked.users.clone();
    users.insert("base".into());
    assert_eq!(
        listed.users, users,
        "users differ from the acknowledged ones"
    );
    let ids: BTreeSet<u64> = listed.keys.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(
        ids, acked.keys,
        "pre-auth keys differ from the acknowledged ones"
    );
    assert_eq!(
        listed.api_keys, acked.api_keys,
        "API keys differ from the acknowledged ones"
    );
}

/// Waits until `/healthz` answers `code`.
#[track_caller]
fn wait_for_health(server: &Server, code: u16, within: Duration) {
    wait_for(
        &format!("/healthz to answer {code}"),
        within,
        || match server.healthz() {
            Ok((c, _)) if c == code => Ok(()),
            Ok((c, body)) => Err(format!("{c}: {body}")),
            Err(e) => Err(e),
        },
    );
}
