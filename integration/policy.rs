//! Policy scenarios with stock clients: a file-backed policy decides who sees
//! whom and which TCP ports answer over the tailnet, and edits to the file
//! reach running clients within 2 s, while a broken edit changes nothing.
//!
//! Traffic goes through the clients' own `tailscale nc` to a
//! `harness::Listener` on 127.0.0.1 in the destination's namespace, so a
//! connection only completes if the destination's packet filter (built
//! from the policy) let the SYN in.

mod deny;
mod services;

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{
    ClientVersion, Db, KeyOptions, Listener, Server, Tailscaled, Topology, skip_real_clients,
    try_wait_for, wait_for,
};

const JOIN: Duration = Duration::from_secs(90);
const CONVERGE: Duration = Duration::from_secs(60);
/// The issue's bound for a policy edit to reach running clients.
const POLICY_PROPAGATION: Duration = Duration::from_secs(2);
const ALLOWED_PORT: u16 = 443;
const DENIED_PORT: u16 = 8080;

/// tag:mcp-client and group:mcp-users (alice, and bob once `bob_allowed`)
/// may reach svc:mcp on 443; the group's members also get MCP tool caps.
/// The rule also names 24 addresses of no node, so that the server's
/// filter rule has more sources than one chunk takes and reaches its
/// client (tailscaled 1.78.1) as runs (`mapper/build/filter.rs`): alice's
/// access comes from a full map's runs, bob's from a delta's.
fn policy(bob_allowed: bool) -> String {
    let members = if bob_allowed {
        r#"["alice@example.com", "bob@example.com"]"#
    } else {
        r#"["alice@example.com"]"#
    };
    let others: Vec<String> = (0..24)
        .map(|i| format!(r#""10.77.{i}.{}""#, 2 * i + 1))
        .collect();
    let others = others.join(", ");
    format!(
        r#"// test policy (HuJSON: comments and trailing commas)
{{
  "groups": {{
    "group:mcp-users": {members},
  }},
  "tagOwners": {{
    "tag:mcp-server": ["alice@example.com"],
    "tag:mcp-client": ["alice@example.com"],
  }},
  "services": {{
    "svc:mcp": {{"hosts": ["tag:mcp-server"], "ports": ["tcp:{ALLOWED_PORT}"]}},
  }},
  "acls": [
    {{"action": "accept", "src": ["tag:mcp-client", "group:mcp-users", {others}], "dst": ["svc:mcp:{ALLOWED_PORT}"]}},
  ],
  "grants": [
    // MCP tool capabilities: sent to the server's tailscaled as CapGrant.
    {{
      "src": ["group:mcp-users"],
      "dst": ["tag:mcp-server"],
      "app": {{"clawql.dev/cap/mcp": [{{"tools": ["search_*"], "servers": ["svc:mcp"]}}]}},
    }},
  ],
}}
"#
    )
}

/// Does `node` have `peer` in its netmap?
fn sees(node: &Tailscaled, peer: &str) -> Result<bool, String> {
    Ok(node.status()?.peer(peer).is_some())
}

/// The node's IPv4 tailnet address, once it runs.
fn v4(node: &Tailscaled) -> String {
    let st = node.wait_state("Running", JOIN);
    st.self_node
        .and_then(|s| s.tailscale_ips.into_iter().find(|ip| ip.contains('.')))
        .expect("an IPv4 tailnet address")
}

fn write_policy(path: &Path, text: &str) {
    // Write-then-rename, the way editors and config management do it.
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text).expect("write policy");
    fs::rename(&tmp, path).expect("replace policy");
}

#[test]
fn policy_file_controls_visibility_and_ports_and_reloads_live() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(4);
    let policy_dir = tempfile::tempdir().expect("policy dir");
    let policy_path: PathBuf = policy_dir.path().join("policy.hujson");
    fs::write(&policy_path, policy(false)).expect("write initial policy");
    let server = Server::start_with(&topo, Db::Sqlite, |cfg| {
        cfg.set("policy.mode", "file");
        cfg.set("policy.path", policy_path.to_string_lossy().to_string());
    });
    for (user, email) in [("alice", "alice@example.com"), ("bob", "bob@example.com")] {
        server.cli_ok(&["users", "create", user, "--email", email]);
    }
    let server_key = server.create_preauthkey(
        "alice",
        &KeyOptions {
            tags: vec!["tag:mcp-server".into()],
            ..KeyOptions::default()
        },
    );
    let alice_key = server.create_preauthkey("alice", &KeyOptions::default());
    let bob_key = server.create_preauthkey("bob", &KeyOptions::default());

    let names = ["mcp", "alice-laptop", "bob-laptop"];
    let keys = [&server_key, &alice_key, &bob_key];
    // The destination, whose filter decides, is the older client: 1.78
    // applies the filter's runs (`policy`) as 1.96 does.
    let versions = [
        ClientVersion::V1_78_1,
        ClientVersion::V1_96_4,
        ClientVersion::V1_96_4,
    ];
    let nodes: Vec<Tailscaled> = (0..3)
        .map(|i| Tailscaled::start(topo.host(i), names[i], versions[i]))
        .collect();
    let url = server.url();
    thread::scope(|s| {
        for (i, n) in nodes.iter().enumerate() {
            let (url, key, name) = (&url, keys[i], names[i]);
            s.spawn(move || n.up_ok(url, key, name));
        }
    });
    let ips: Vec<String> = nodes.iter().map(v4).collect();
    let (mcp, alice, bob) = (&nodes[0], &nodes[1], &nodes[2]);
    let allowed = Listener::start(mcp.netns(), ALLOWED_PORT);
    let denied = Listener::start(mcp.netns(), DENIED_PORT);

    // Alice may reach the service: she and the server see each other.
    wait_for("alice and mcp to see each other", CONVERGE, || {
        match (sees(alice, "mcp")?, sees(mcp, "alice-laptop")?) {
            (true, true) => Ok(()),
            other => Err(format!("alice sees mcp / mcp sees alice: {other:?}")),
        }
    });
    // Bob may reach nothing, and nobody may reach bob: nobody sees him.
    for (who, peer) in [
        (bob, "mcp"),
        (bob, "alice-laptop"),
        (mcp, "bob-laptop"),
        (alice, "bob-laptop"),
    ] {
        assert!(
            !sees(who, peer).unwrap(),
            "{} must not see {peer}",
            who.name()
        );
    }
    // Alice and bob's laptops do not see each other either (no rule joins them).
    assert!(!sees(alice, "bob-laptop").unwrap());

    wait_for("alice to reach mcp:443", CONVERGE, || {
        allowed.reached_from(alice, &ips[0], ALLOWED_PORT)
    });
    assert!(
        denied.reached_from(alice, &ips[0], DENIED_PORT).is_err(),
        "port {DENIED_PORT} is not in the policy and must not answer"
    );
    assert!(
        allowed.reached_from(bob, &ips[0], ALLOWED_PORT).is_err(),
        "bob is not allowed yet"
    );

    // Let bob in by editing the file; running clients follow within 2 s.
    let t0 = Instant::now();
    write_policy(&policy_path, &policy(true));
    let seen = try_wait_for(POLICY_PROPAGATION, || match sees(bob, "mcp")? {
        true => Ok(()),
        false => Err("bob does not see mcp yet".to_string()),
    });
    let took = t0.elapsed();
    assert!(
        seen.is_ok(),
        "policy edit not visible to bob within {POLICY_PROPAGATION:?}"
    );
    eprintln!("policy edit reached bob's client in {took:?}");
    wait_for("bob to reach mcp:443", CONVERGE, || {
        allowed.reached_from(bob, &ips[0], ALLOWED_PORT)
    });
    assert!(denied.reached_from(bob, &ips[0], DENIED_PORT).is_err());

    // A broken edit is rejected and bob keeps his access.
    write_policy(&policy_path, "{ \"acls\": [ { \"action\": \"accept\", ");
    let rejected = try_wait_for(Duration::from_secs(5), || {
        let log = server.log();
        if log.contains("policy file rejected") {
            Ok(())
        } else {
            Err("no rejection logged yet".to_string())
        }
    });
    assert!(
        rejected.is_ok(),
        "the broken policy was not reported:\n{}",
        server.log()
    );
    thread::sleep(Duration::from_secs(1));
    assert!(sees(bob, "mcp").unwrap(), "old policy must stay in force");
    allowed
        .reached_from(bob, &ips[0], ALLOWED_PORT)
        .expect("old policy must stay in force");

    // The server refuses a tag the key's owner does not own.
    let rogue = server.create_preauthkey(
        "bob",
        &KeyOptions {
            tags: vec!["tag:mcp-server".into()],
            ..KeyOptions::default()
        },
    );
    let extra = Tailscaled::start(topo.host(3), "rogue", ClientVersion::V1_96_4);
    let out = extra.up(&url, &rogue, "rogue");
    assert!(
        !out.success(),
        "bob must not be able to tag a node tag:mcp-server:\n{out}"
    );
    assert!(out.combined().contains("not permitted"), "{out}");
}

/// SIGHUP reloads the file even when no watch event came: the file is
/// rewritten through a hard link in another directory, which the server's
/// directory watch does not see.
#[test]
fn sighup_reloads_a_policy_file_changed_behind_the_watch() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(0);
    let dir = tempfile::tempdir().expect("policy dir");
    let elsewhere = tempfile::tempdir().expect("second dir");
    let path = dir.path().join("policy.hujson");
    let first =
        "// first\n{\"acls\": [{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:*\"]}]}\n";
    let second = "// second\n{\"acls\": []}\n";
    fs::write(&path, first).expect("write policy");
    let link = elsewhere.path().join("same-inode.hujson");
    fs::hard_link(&path, &link).expect("hard link");
    let server = Server::start_with(&topo, Db::Sqlite, |cfg| {
        cfg.set("policy.mode", "file");
        cfg.set("policy.path", path.to_string_lossy().to_string());
    });
    let current = || server.cli_ok(&["policy", "get"]).stdout;
    assert!(current().contains("// first"));

    fs::write(&link, second).expect("rewrite through the link");
    thread::sleep(Duration::from_secs(1));
    assert!(
        current().contains("// first"),
        "the watch was not supposed to see this write"
    );
    let pid = server.pid().expect("server pid");
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill -HUP");
    assert!(hup.success());
    wait_for(
        "SIGHUP to reload the policy",
        Duration::from_secs(5),
        || {
            let now = current();
            if now.contains("// second") {
                Ok(())
            } else {
                Err(now)
            }
        },
    );
}
