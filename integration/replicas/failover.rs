//! Failover with stock clients: Debian's haproxy is the one login server
//! URL, in front of two replicas on one PostgreSQL database, each with its
//! own relay region. Three tailscaled 1.96.4 nodes enrol (haproxy's
//! `balance first` puts them all on replica A); A is killed with SIGKILL;
//! within 15 s all three are Running through B, see each other and ping; a
//! fourth node enrolled meanwhile is seen by all; A starts again and catches
//! up; no node is lost, duplicated or given a second address. Then a node
//! deletion made on A reaches the clients streaming from B within 1 s.

use std::thread;
use std::time::{Duration, Instant};

use super::{LB_PORT, haproxy, pair, user_key};
use crate::harness::{
    ClientVersion, PgServer, Tailscaled, TailscaledOptions, Topology, skip_real_clients,
    try_wait_for, wait_for,
};

const USER: &str = "alice";
const JOIN: Duration = Duration::from_secs(90);
const FAILOVER: Duration = Duration::from_secs(15);

fn host(i: usize) -> String {
    format!("node{i}")
}

/// Each of `nodes` lists every other one online with the IPs in `ips`.
fn all_see_each_other(nodes: &[&Tailscaled], ips: &[Vec<String>]) -> Result<(), String> {
    for (me, n) in nodes.iter().enumerate() {
        let st = n.status()?;
        if st.backend_state != "Running" {
            return Err(format!("{} is {}", n.name(), st.backend_state));
        }
        for (j, other) in nodes.iter().enumerate().filter(|(j, _)| *j != me) {
            let peer = st
                .peer(other.name())
                .ok_or_else(|| format!("{} does not list {}", n.name(), other.name()))?;
            let mut got = peer.tailscale_ips.clone();
            got.sort();
            if !peer.online || got != ips[j] {
                return Err(format!(
                    "{} sees {}: online {} IPs {got:?}",
                    n.name(),
                    other.name(),
                    peer.online
                ));
            }
        }
    }
    Ok(())
}

/// The region ids of the DERP map `n` holds.
fn derp_regions(n: &Tailscaled) -> Result<Vec<String>, String> {
    let out = n.cli(&["debug", "derp-map"], Duration::from_secs(20));
    if !out.success() {
        return Err(out.to_string());
    }
    let map: serde_json::Value =
        serde_json::from_str(out.stdout.trim()).map_err(|e| format!("{e}: {out}"))?;
    let regions = map["Regions"]
        .as_object()
        .ok_or_else(|| format!("no Regions: {map}"))?;
    Ok(regions.keys().cloned().collect())
}

fn my_ips(n: &Tailscaled) -> Vec<String> {
    let st = n.wait_state("Running", JOIN);
    let mut ips = st.self_node.map(|s| s.tailscale_ips).unwrap_or_default();
    ips.sort();
    assert!(!ips.is_empty(), "{} has no tailnet IPs", n.name());
    ips
}

#[test]
fn clients_fail_over_between_replicas_behind_haproxy() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(4);
    let pg = PgServer::start();
    let (mut a, b) = pair(&topo, &pg, [8081, 8082], [901, 902]);
    let _lb = haproxy(&topo, &[8081, 8082]);
    let url = format!("http://{}:{LB_PORT}", topo.hub_ip());

    let key = user_key(&a, USER);
    let nodes: Vec<Tailscaled> = (0..4)
        .map(|i| {
            let opts = TailscaledOptions {
                version: ClientVersion::V1_96_4,
                ..TailscaledOptions::default()
            };
            Tailscaled::start_with(topo.host(i), &host(i), opts)
        })
        .collect();
    thread::scope(|s| {
        for (i, n) in nodes.iter().take(3).enumerate() {
            let (url, key) = (&url, &key);
            s.spawn(move || n.up_ok(url, key, &host(i)));
        }
    });
    let mut ips: Vec<Vec<String>> = nodes.iter().take(3).map(my_ips).collect();
    let first: Vec<&Tailscaled> = nodes.iter().take(3).collect();
    wait_for("three nodes to see each other", JOIN, || {
        all_see_each_other(&first, &ips)
    });

    // Each replica's relay is its own region in the map the clients got.
    wait_for("both relays in the clients' DERP map", JOIN, || {
        let regions = derp_regions(first[0])?;
        if regions == ["901", "902"] {
            Ok(())
        } else {
            Err(format!("regions {regions:?}"))
        }
    });

    // Kill the replica every stream goes to.
    let killed = Instant::now();
    a.kill();
    // A fourth node enrols meanwhile (through haproxy, so on B). The
    // three learning of it proves they stream from B: a client keeps its
    // last map while its control connection is down, so "Running and
    // seeing each other" alone would hold without any failover.
    thread::scope(|s| {
        s.spawn(|| nodes[3].up_ok(&url, &key, &host(3)));
    });
    ips.push(my_ips(&nodes[3]));
    let all: Vec<&Tailscaled> = nodes.iter().collect();
    if let Err(e) = try_wait_for(FAILOVER.saturating_sub(killed.elapsed()), || {
        all_see_each_other(&all, &ips)
    }) {
        b.dump_log();
        panic!("the nodes did not recover within {FAILOVER:?} of the kill: {e}");
    }
    let recovered = killed.elapsed();
    eprintln!(
        "four nodes Running through replica B, seeing each other, {recovered:?} after kill -9 of A"
    );
    for (i, n) in first.iter().enumerate() {
        for j in (0..3).filter(|&j| j != i) {
            let left = FAILOVER.saturating_sub(killed.elapsed());
            n.wait_ping(&ips[j][0], left, |_| true);
        }
    }
    eprintln!(
        "and the first three pinging each other {:?} after the kill",
        killed.elapsed()
    );

    // A comes back and knows everything B did.
    a.start_again();
    for server in [&a, &b] {
        let listed = server.nodes();
        assert_eq!(listed.len(), 4, "not four nodes: {listed:?}");
        for (i, want) in ips.iter().enumerate() {
            let rec = listed
                .iter()
                .find(|r| r.name() == host(i))
                .unwrap_or_else(|| panic!("{} not listed: {listed:?}", host(i)));
            let mut got = rec.ip_addresses();
            got.sort();
            assert_eq!(&got, want, "{} addresses", host(i));
        }
    }

    // A deletion on A reaches the clients streaming from B.
    let id = a
        .nodes()
        .iter()
        .find(|r| r.name() == host(3))
        .and_then(|r| r.id())
        .expect("node3 id");
    let deleted = Instant::now();
    a.cli_ok(&["nodes", "delete", "-i", &id.to_string(), "--force"]);
    let gone = try_wait_for(Duration::from_secs(1), || {
        for n in &first {
            if n.status()?.peer(&host(3)).is_some() {
                return Err(format!("{} still lists node3", n.name()));
            }
        }
        Ok(())
    });
    eprintln!(
        "deletion on A gone from clients on B after {:?}",
        deleted.elapsed()
    );
    gone.expect("deletion on A reached B's clients within 1 s");
    drop((a, b)); // before their database server
}
