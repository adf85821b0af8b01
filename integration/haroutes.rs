//! HA subnet routers with stock clients: two routers advertise the same
//! LAN, a third node reaches a host on it through the elected primary;
//! the primary crashes and the other router takes over within seconds;
//! the old primary comes back and does not take the route back.
//!
//! The LAN (`Topology::add_lan`) is a namespace only the two routers have
//! a leg into, so an ICMP echo from the client (`tailscale ping --icmp`,
//! which goes through WireGuard) can only be answered through a router:
//! the userspace router's netstack forwards it with the host's `ping`
//! (iputils-ping) into the LAN. The pong names the router it went through.

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{
    ClientVersion, Db, KeyOptions, Server, Status, Tailscaled, Topology, skip_real_clients,
    try_wait_for, wait_for,
};

const JOIN: Duration = Duration::from_secs(90);
const CONVERGE: Duration = Duration::from_secs(60);
/// The issue's bound for a failover to reach the other nodes.
const FAILOVER: Duration = Duration::from_secs(10);
/// How long the old primary's return is watched for a steal-back.
const NO_STEAL_BACK: Duration = Duration::from_secs(8);

/// Routers (tag:router) get their LAN routes approved by `autoApprovers`.
fn policy(lan: &str) -> String {
    format!(
        r#"{{
  "tagOwners": {{"tag:router": ["alice@example.com"]}},
  "autoApprovers": {{"routes": {{"{lan}": ["tag:router"]}}}},
  "acls": [{{"action": "accept", "src": ["*"], "dst": ["*:*"]}}],
}}
"#
    )
}

/// `PrimaryRoutes` of peer `host` in `st` (empty when it has none).
fn primary_routes(st: &Status, host: &str) -> Result<Vec<String>, String> {
    let peers = st.raw["Peer"].as_object().ok_or("no peers in status")?;
    let peer = peers
        .values()
        .find(|p| p["HostName"] == host)
        .ok_or_else(|| format!("{host} is not a peer"))?;
    Ok(peer["PrimaryRoutes"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// Which of `routers` `client`'s status shows as the primary for `lan`
/// (exactly one must).
fn primary_of<'a>(client: &Tailscaled, routers: &[&'a str], lan: &str) -> Result<&'a str, String> {
    let st = client.status()?;
    let mut holders = Vec::new();
    for r in routers {
        if primary_routes(&st, r)?.iter().any(|p| p == lan) {
            holders.push(*r);
        }
    }
    match holders.as_slice() {
        [one] => Ok(one),
        other => Err(format!("primaries for {lan}: {other:?}")),
    }
}

/// One ICMP echo to the LAN host through the tailnet; the router that
/// forwarded it.
fn ping_lan(client: &Tailscaled, host: &str) -> Result<String, String> {
    let out = client.cli(
        &["ping", "--icmp", "--c=1", "--timeout=2s", host],
        Duration::from_secs(10),
    );
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("pong from "))
        .ok_or_else(|| format!("no pong from {host}:\n{out}"))?;
    let name = line["pong from ".len()..]
        .split_whitespace()
        .next()
        .unwrap_or_default();
    Ok(name.to_owned())
}

#[test]
fn subnet_router_failover_moves_the_route_and_never_steals_it_back() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(3);
    let lan = topo.add_lan(&[0, 1]);
    let lan_net = lan.subnet().to_string();
    let lan_host = lan.host().to_string();
    let policy_dir = tempfile::tempdir().expect("policy dir");
    let policy_path = policy_dir.path().join("policy.hujson");
    fs::write(&policy_path, policy(&lan_net)).expect("write policy");
    let server = Server::start_with(&topo, Db::Sqlite, |cfg| {
        cfg.set("policy.mode", "file");
        cfg.set("policy.path", policy_path.to_string_lossy().to_string());
    });
    server.cli_ok(&["users", "create", "alice", "--email", "alice@example.com"]);
    let router_key = server.create_preauthkey(
        "alice",
        &KeyOptions {
            reusable: true,
            tags: vec!["tag:router".into()],
            ..KeyOptions::default()
        },
    );
    let client_key = server.create_preauthkey("alice", &KeyOptions::default());
    let url = server.url();

    // r1 joins first: lowest id and first online, so it is the primary.
    let advertise = format!("--advertise-routes={lan_net}");
    let mut r1 = Tailscaled::start(topo.host(0), "r1", ClientVersion::V1_96_4);
    let r2 = Tailscaled::start(topo.host(1), "r2", ClientVersion::V1_96_4);
    let client = Tailscaled::start(topo.host(2), "client", ClientVersion::V1_96_4);
    for (node, name) in [(&r1, "r1"), (&r2, "r2")] {
        let out = node.up_with(&url, &router_key, name, &[&advertise]);
        assert!(out.success(), "up {name}:\n{out}");
        node.wait_state("Running", JOIN);
    }
    let out = client.up_with(&url, &client_key, "client", &["--accept-routes"]);
    assert!(out.success(), "up client:\n{out}");
    client.wait_state("Running", JOIN);

    let routers = ["r1", "r2"];
    wait_for(
        "the client to see r1 as primary",
        CONVERGE,
        || match primary_of(&client, &routers, &lan_net)? {
            "r1" => Ok(()),
            other => Err(format!("primary is {other}")),
        },
    );
    wait_for(
        "the LAN host to answer through r1",
        CONVERGE,
        || match ping_lan(&client, &lan_host)?.as_str() {
            "r1" => Ok(()),
            other => Err(format!("answered through {other}")),
        },
    );

    // The primary crashes. The server sees its map stream end, elects r2,
    // and the client's netmap moves the route.
    let t0 = Instant::now();
    r1.kill();
    let moved = try_wait_for(FAILOVER, || {
        match primary_of(&client, &routers, &lan_net)? {
            "r2" => Ok(t0.elapsed()),
            other => Err(format!("primary is still {other}")),
        }
    });
    let status_after = moved.unwrap_or_else(|e| panic!("no failover within {FAILOVER:?}: {e}"));
    let pinged = try_wait_for(FAILOVER, || match ping_lan(&client, &lan_host)?.as_str() {
        "r2" => Ok(t0.elapsed()),
        other => Err(format!("answered through {other}")),
    });
    let ping_after = pinged.unwrap_or_else(|e| panic!("LAN unreachable through r2: {e}"));
    eprintln!(
        "haroutes: failover after killing the primary: client status shows r2 as primary \
         after {status_after:?}; first LAN ping answered through r2 after {ping_after:?}"
    );
    assert!(ping_after <= FAILOVER);

    // The old primary comes back (same state, reconnects by itself): r2
    // keeps the route, and the LAN stays reachable through it.
    r1.start_again();
    r1.wait_state("Running", JOIN);
    wait_for("the client to see r1 online again", CONVERGE, || {
        let st = client.status()?;
        match st.peer("r1") {
            Some(p) if p.online => Ok(()),
            _ => Err("r1 not online yet".to_string()),
        }
    });
    let watch = Instant::now();
    while watch.elapsed() < NO_STEAL_BACK {
        assert_eq!(
            primary_of(&client, &routers, &lan_net).expect("one primary"),
            "r2",
            "r1 took the route back"
        );
        assert_eq!(ping_lan(&client, &lan_host).expect("LAN reachable"), "r2");
        thread::sleep(Duration::from_millis(500));
    }
    let r1_self = r1.status().expect("r1 status");
    assert!(
        r1_self.raw["Self"]["PrimaryRoutes"]
            .as_array()
            .is_none_or(|v| v.is_empty()),
        "r1 must know it is a standby: {}",
        r1_self.raw["Self"]
    );
    drop((r1, r2, client, lan));
}
