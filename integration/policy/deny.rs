//! Ordered `deny` rules with stock clients: the issue's two-rule policy
//! (group:mcp-users may reach the MCP host on 3010, nobody anything else
//! there) and an exception carved out of a broad accept by a deny placed
//! before it. Connections are opened with the clients' own `tailscale nc`
//! and counted at a listener in the destination's namespace.

use std::fs;
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use super::{CONVERGE, sees, v4, write_policy};
use crate::harness::Listener;
use crate::harness::{
    ClientVersion, Db, KeyOptions, Server, Tailscaled, Topology, skip_real_clients, wait_for,
};

const HEAD: &str = r#"
  "groups": {
    "group:mcp-users": ["alice@example.com"],
    "group:contractors": ["bob@example.com"],
  },
  "tagOwners": {"tag:server": ["alice@example.com"]},
"#;

/// The issue's policy, `mcp-host` being the MCP node's IPv4 address.
fn mcp_only(mcp_ip: &str) -> String {
    format!(
        r#"{{{HEAD}
  "hosts": {{"mcp-host": "{mcp_ip}"}},
  "acls": [
    {{"action": "accept", "src": ["group:mcp-users"], "dst": ["mcp-host:3010"]}},
    {{"action": "deny",   "src": ["*"],              "dst": ["mcp-host:*"]}},
  ],
}}"#
    )
}

/// Everyone may reach tag:server on every port, except contractors on 22.
fn exception() -> String {
    format!(
        r#"{{{HEAD}
  "acls": [
    {{"action": "deny",   "src": ["group:contractors"], "dst": ["tag:server:22"]}},
    {{"action": "accept", "src": ["*"],                 "dst": ["tag:server:*"]}},
  ],
}}"#
    )
}

#[test]
fn deny_rules_are_enforced_by_real_clients() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(3);
    let dir = tempfile::tempdir().expect("policy dir");
    let path: PathBuf = dir.path().join("policy.hujson");
    // Until the nodes have addresses the host alias can name: no rules.
    fs::write(&path, format!("{{{HEAD} \"acls\": []}}")).expect("write policy");
    let server = Server::start_with(&topo, Db::Sqlite, |cfg| {
        cfg.set("policy.mode", "file");
        cfg.set("policy.path", path.to_string_lossy().to_string());
    });
    for (user, email) in [("alice", "alice@example.com"), ("bob", "bob@example.com")] {
        server.cli_ok(&["users", "create", user, "--email", email]);
    }
    let keys = [
        server.create_preauthkey(
            "alice",
            &KeyOptions {
                tags: vec!["tag:server".into()],
                ..KeyOptions::default()
            },
        ),
        server.create_preauthkey("alice", &KeyOptions::default()),
        server.create_preauthkey("bob", &KeyOptions::default()),
    ];
    let names = ["mcp", "alice-laptop", "bob-laptop"];
    let nodes: Vec<Tailscaled> = (0..3)
        .map(|i| Tailscaled::start(topo.host(i), names[i], ClientVersion::V1_96_4))
        .collect();
    let url = server.url();
    thread::scope(|s| {
        for (i, n) in nodes.iter().enumerate() {
            let (url, key, name) = (&url, &keys[i], names[i]);
            s.spawn(move || n.up_ok(url, key, name));
        }
    });
    let (mcp, alice, bob) = (&nodes[0], &nodes[1], &nodes[2]);
    let mcp_ip = v4(mcp);
    let listeners: Vec<Listener> = [3010, 22, 8080]
        .iter()
        .map(|p| Listener::start(mcp.netns(), *p))
        .collect();
    let [l3010, l22, l8080] = &listeners[..] else {
        unreachable!()
    };

    // The two-rule policy: alice (group:mcp-users) reaches 3010 only.
    write_policy(&path, &mcp_only(&mcp_ip));
    wait_for("alice to reach mcp-host:3010", CONVERGE, || {
        l3010.reached_from(alice, &mcp_ip, 3010)
    });
    for (l, port) in [(l22, 22), (l8080, 8080)] {
        assert!(
            l.reached_from(alice, &mcp_ip, port).is_err(),
            "alice must be refused on {port}"
        );
    }
    // bob is outside the group: refused on 3010, and with no accept left
    // between them the two do not even see each other.
    assert!(l3010.reached_from(bob, &mcp_ip, 3010).is_err());
    assert!(!sees(bob, "mcp").unwrap(), "bob must not see mcp");
    assert!(!sees(mcp, "bob-laptop").unwrap(), "mcp must not see bob");

    // An exception-deny before a broad accept: bob (a contractor) reaches
    // every port of tag:server but 22; alice reaches 22 as well.
    write_policy(&path, &exception());
    wait_for("bob to reach tag:server:8080", CONVERGE, || {
        l8080.reached_from(bob, &mcp_ip, 8080)
    });
    l3010
        .reached_from(bob, &mcp_ip, 3010)
        .expect("bob may reach 3010 now");
    assert!(
        l22.reached_from(bob, &mcp_ip, 22).is_err(),
        "the excepted port must stay closed to bob"
    );
    wait_for(
        "alice to reach tag:server:22",
        Duration::from_secs(10),
        || l22.reached_from(alice, &mcp_ip, 22),
    );
}
