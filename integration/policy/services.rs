//! A service written the way TailOpsMCP's tailnet guide writes it, with
//! stock clients: the `allowedTags` node reaches the service by its
//! MagicDNS name on its port, an untagged node does not. The host also
//! carries the `funnel` node attribute: its client holds the CapMap
//! entries `tailscale funnel` checks.

use std::fs;
use std::thread;

use super::{CONVERGE, sees, v4};
use crate::harness::Listener;
use crate::harness::{
    BASE_DOMAIN, ClientVersion, Db, KeyOptions, Server, Tailscaled, Topology, skip_real_clients,
    wait_for,
};

const POLICY: &str = r#"{
  "tagOwners": {
    "tag:systemmanager-server": ["alice@example.com"],
    "tag:systemmanager-client": ["alice@example.com"],
  },
  "services": {
    "svc:systemmanager-mcp": {"protocol": "tcp", "port": 8080,
      "tags": ["tag:systemmanager-server"], "allowedTags": ["tag:systemmanager-client"]},
  },
  "acls": [],
  "nodeAttrs": [{"target": ["tag:systemmanager-server"], "attr": ["funnel"]}],
}"#;

#[test]
fn tailops_service_is_reached_by_name_from_its_allowed_tags_only() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(3);
    let dir = tempfile::tempdir().expect("policy dir");
    let path = dir.path().join("policy.hujson");
    fs::write(&path, POLICY).expect("write policy");
    let server = Server::start_with(&topo, Db::Sqlite, |cfg| {
        cfg.set("policy.mode", "file");
        cfg.set("policy.path", path.to_string_lossy().to_string());
    });
    server.cli_ok(&["users", "create", "alice", "--email", "alice@example.com"]);
    let tagged = |tag: &str| {
        server.create_preauthkey(
            "alice",
            &KeyOptions {
                tags: vec![tag.into()],
                ..KeyOptions::default()
            },
        )
    };
    let keys = [
        tagged("tag:systemmanager-server"),
        tagged("tag:systemmanager-client"),
        server.create_preauthkey("alice", &KeyOptions::default()),
    ];
    let names = ["sysmgr", "agent", "laptop"];
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
    let (host, agent, laptop) = (&nodes[0], &nodes[1], &nodes[2]);
    let host_ip = v4(host);
    let svc = Listener::start(host.netns(), 8080);
    let other = Listener::start(host.netns(), 22);
    let name = format!("systemmanager-mcp.{BASE_DOMAIN}");

    // The tagged client dials the service's name; its own tailscaled
    // resolves it from the netmap.
    wait_for("agent to reach the service by name", CONVERGE, || {
        svc.reached_from(agent, &name, 8080)
    });
    assert!(
        other.reached_from(agent, &host_ip, 22).is_err(),
        "only the service's port is open"
    );
    // The untagged node has no grant: it does not see the host, by name or
    // by address.
    assert!(
        !sees(laptop, "sysmgr").unwrap(),
        "laptop must not see sysmgr"
    );
    assert!(svc.reached_from(laptop, &name, 8080).is_err());
    assert!(svc.reached_from(laptop, &host_ip, 8080).is_err());

    // Funnel's node attributes, as the client sees them.
    for (node, want) in [(host, true), (agent, false)] {
        let st = node.status_json().expect("status");
        let caps = &st["Self"]["CapMap"];
        for key in [
            "funnel",
            "https://tailscale.com/cap/funnel-ports?ports=443,8443,10000",
        ] {
            assert_eq!(
                caps.get(key).is_some(),
                want,
                "{}: {key} in {caps}",
                node.name()
            );
        }
    }
}
