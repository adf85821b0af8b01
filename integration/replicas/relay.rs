//! Relaying across replicas with stock clients: each replica's embedded
//! DERP server is its own region, and nodes homed on different replicas'
//! relays carry TCP with UDP off (`TS_DEBUG_ALWAYS_USE_DERP`). A client
//! sends to a peer through the peer's home region (and answers through the
//! region a packet came in on), so a connection opened towards a node
//! crosses that node's home relay. No relay-to-relay mesh is involved: the
//! shared DERP map and each node's home region, told to every replica
//! through the database, are enough.
//!
//! node0 streams from replica A and is homed on A's region; node1 streams
//! from B, homed on B's; node2 streams from B, homed on A's. node1 opens a
//! connection to node0 (A's relay must carry it), then node2 to node1 (B's
//! relay must carry it); each relay's `derp_packets_relayed` counter shows
//! it did.

use std::time::Duration;

use super::{pair, user_key};
use crate::certs::metric;
use crate::harness::{
    ClientVersion, Listener, PgServer, Server, Tailscaled, TailscaledOptions, Topology,
    skip_real_clients, wait_for,
};

const USER: &str = "alice";
const JOIN: Duration = Duration::from_secs(90);
const TCP_PORT: u16 = 8000;
/// Replica r listens on `PORTS[r]` with relay region `REGIONS[r]`.
const PORTS: [u16; 2] = [8081, 8082];
const REGIONS: [u32; 2] = [901, 902];
/// Node i streams from replica `STREAM[i]` and is homed on `HOME[i]`'s
/// relay.
const STREAM: [usize; 3] = [0, 1, 1];
const HOME: [usize; 3] = [0, 1, 0];

fn host(i: usize) -> String {
    format!("node{i}")
}

const RELAYED: &str = "clawscale_derp_packets_relayed_total ";

/// `from` opens a TCP connection to `to`; the packets relayed by `via`
/// rise while it does.
fn connect_through(
    topo: &Topology,
    via: (usize, &Server),
    nodes: &[Tailscaled],
    ips: &[String],
    (from, to): (usize, usize),
) {
    let (via, replica) = via;
    let listener = Listener::start(nodes[to].netns(), TCP_PORT);
    let before = metric(topo, replica, RELAYED);
    wait_for(
        &format!("TCP from {} to {}", host(from), host(to)),
        JOIN,
        || listener.reached_from(&nodes[from], &ips[to], TCP_PORT),
    );
    let after = metric(topo, replica, RELAYED);
    eprintln!(
        "{} -> {}: replica {via}'s relay carried {} packets",
        host(from),
        host(to),
        after - before
    );
    assert!(
        after > before,
        "{} -> {} did not cross replica {via}'s relay (region {})",
        host(from),
        host(to),
        REGIONS[via]
    );
}

#[test]
fn nodes_homed_on_different_replicas_relay_through_each_other() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(3);
    let pg = PgServer::start();
    let (a, b) = pair(&topo, &pg, PORTS, REGIONS);
    let servers = [&a, &b];
    let key = user_key(&a, USER);
    let nodes: Vec<Tailscaled> = (0..3)
        .map(|i| {
            let opts = TailscaledOptions {
                version: ClientVersion::V1_96_4,
                always_derp: true,
                ..TailscaledOptions::default()
            };
            Tailscaled::start_with(topo.host(i), &host(i), opts)
        })
        .collect();
    for (i, n) in nodes.iter().enumerate() {
        n.up_ok(&servers[STREAM[i]].url(), &key, &host(i));
        // Both relays are equally near, so the home region is set.
        let region = REGIONS[HOME[i]].to_string();
        let out = n.cli(&["debug", "force-prefer-derp", &region], JOIN);
        assert!(out.success(), "force-prefer-derp {region}: {out}");
    }
    let ips: Vec<String> = nodes
        .iter()
        .map(|n| {
            let st = n.wait_state("Running", JOIN);
            let ip = st.self_node.and_then(|s| {
                s.tailscale_ips
                    .into_iter()
                    .find(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
            });
            ip.unwrap_or_else(|| panic!("{} has no IPv4 tailnet address", n.name()))
        })
        .collect();
    // Every node learns every other's home region from the replica it
    // streams from, whichever replica that node reported it to.
    wait_for("every node to see the others' home regions", JOIN, || {
        for n in &nodes {
            // A netcheck applies the forced preference.
            let _ = n.cli(&["debug", "restun"], Duration::from_secs(10));
        }
        for n in &nodes {
            let st = n.status()?;
            for other in (0..nodes.len()).filter(|o| host(*o) != n.name()) {
                let peer = st
                    .peer(&host(other))
                    .ok_or_else(|| format!("{} does not list {}", n.name(), host(other)))?;
                let want = format!("r{}", REGIONS[HOME[other]]);
                if peer.relay != want {
                    return Err(format!(
                        "{} sees {} homed on {:?}, not {want}",
                        n.name(),
                        host(other),
                        peer.relay
                    ));
                }
            }
        }
        Ok(())
    });

    // node1 (on B) to node0 (homed on A), then node2 (homed on A) to node1
    // (homed on B): neither has talked to its peer before, so each goes
    // through the peer's home relay.
    connect_through(&topo, (0, &a), &nodes, &ips, (1, 0));
    connect_through(&topo, (1, &b), &nodes, &ips, (2, 1));
    for n in &nodes {
        n.assert_only_relayed();
    }
    drop(nodes);
    drop((a, b)); // before their database server
}
