//! Remote administration with real clients: the server in the hub
//! namespace, `clawscale --remote` run from a host namespace over REST
//! `/api/v1` with an API key, a pre-auth key created that way enrolling a
//! stock tailscaled 1.96.4, which then shows in the REST node list; the
//! audit trail names who did what.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::netns::CLEAN_PATH;
use crate::harness::process::run;
use crate::harness::{
    ClientVersion, CmdOutput, Netns, Server, Tailscaled, Topology, skip_real_clients, wait_for,
};

const JOIN: Duration = Duration::from_secs(90);

/// `clawscale --remote <url> --api-key <key> <args> -o json` in `ns`, with
/// no config file and a clean environment: everything comes from flags.
fn remote(ns: &Netns, url: &str, key: &str, args: &[&str]) -> CmdOutput {
    let mut cmd: Command = ns.command(env!("CARGO_BIN_EXE_clawscale"));
    cmd.env_clear()
        .env("PATH", CLEAN_PATH)
        .env("HOME", "/nonexistent")
        .args(["--remote", url, "--api-key", key])
        .args(args)
        .args(["-o", "json"]);
    run(&mut cmd, Duration::from_secs(60))
}

#[track_caller]
fn remote_json(ns: &Netns, url: &str, key: &str, args: &[&str]) -> Value {
    let out = remote(ns, url, key, args);
    assert!(
        out.success(),
        "clawscale --remote {}:\n{out}",
        args.join(" ")
    );
    serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

#[test]
fn remote_cli_creates_a_key_that_enrolls_tailscaled_and_lists_it() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(2);
    let server = Server::start(&topo);
    // The first key comes from the local socket (no key needed there).
    let out = server.cli_ok(&["apikeys", "create", "--scope", "admin", "-o", "json"]);
    let created: Value = serde_json::from_str(out.stdout.trim()).expect("json");
    let key = created["api_key"].as_str().expect("api_key").to_owned();
    let read_only = server.cli_ok(&["apikeys", "create", "--scope", "admin:read", "-o", "json"]);
    let read_only: Value = serde_json::from_str(read_only.stdout.trim()).expect("json");
    let read_only = read_only["api_key"].as_str().expect("api_key").to_owned();

    let admin_ns = topo.host(0);
    let url = server.url();
    let user = remote_json(admin_ns, &url, &key, &["users", "create", "alice"]);
    assert_eq!(user["name"], "alice");
    let pak = remote_json(
        admin_ns,
        &url,
        &key,
        &["preauthkeys", "create", "--user", "alice", "--reusable"],
    );
    let pak = pak["key"].as_str().expect("key").to_owned();
    assert!(pak.starts_with("cskey-auth-"), "{pak}");

    let node = Tailscaled::start(topo.host(1), "laptop", ClientVersion::V1_96_4);
    node.up_ok(&url, &pak, "laptop");
    node.wait_state("Running", JOIN);

    // Listed over REST from the other namespace, with a read-only key.
    let listed = wait_for("the node listed online", JOIN, || {
        let nodes = remote_json(admin_ns, &url, &read_only, &["nodes", "list"]);
        let n = nodes
            .as_array()
            .and_then(|a| a.iter().find(|n| n["given_name"] == "laptop").cloned())
            .ok_or_else(|| format!("laptop not listed: {nodes}"))?;
        if n["online"] == true {
            Ok(n)
        } else {
            Err(format!("not online yet: {n}"))
        }
    });
    assert_eq!(listed["user"]["name"], "alice");
    assert_eq!(listed["register_method"], "REGISTER_METHOD_AUTH_KEY");
    assert_eq!(listed["ip_addresses"].as_array().map(Vec::len), Some(2));

    // admin:read may not change anything; a bad key gets nothing.
    let refused = remote(admin_ns, &url, &read_only, &["users", "create", "mallory"]);
    assert!(
        !refused.success() && refused.stderr.contains("admin:read"),
        "{refused}"
    );
    let bad = remote(
        admin_ns,
        &url,
        "cskey-api-000000000000-0",
        &["nodes", "list"],
    );
    assert!(!bad.success(), "{bad}");

    // Who did what: the API key's prefix for the operator's actions, the
    // node itself for its registration.
    let prefix = &key["cskey-api-".len()..][..12];
    let audit = remote_json(admin_ns, &url, &key, &["audit", "list"]);
    let entries = audit.as_array().expect("entries");
    let find = |action: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("no {action} in {audit}"))
    };
    assert_eq!(find("user.create")["actor"], format!("apikey:{prefix}"));
    assert_eq!(
        find("preauthkey.create")["actor"],
        format!("apikey:{prefix}")
    );
    let reg = find("node.register");
    assert_eq!(reg["actor"], format!("node:{}", listed["id"]));
    assert_eq!(reg["transport"], "control");
    let denied = entries
        .iter()
        .find(|e| e["action"] == "user.create" && e["result"] == "error")
        .expect("the refused attempt is on record");
    assert!(denied["actor"].as_str().unwrap().starts_with("apikey:"));
    assert!(
        !audit.to_string().contains(&pak[30..]),
        "no secret in the audit"
    );
}
