//! HTTPS certificates with replicas: a CA may ask any replica's DNS server
//! for a challenge, not only the one the client published it through. A
//! tailscale 1.96.4 node streams from replica A; Debian's `pebble` resolves
//! through replica B's DNS server only. `tailscale cert` gets a chain
//! `openssl verify` accepts, B counts the challenge it served, and A
//! served none: the value crossed the replicas through the database.

use std::time::Duration;

use super::{pair_with, user_key};
use crate::certs::{cert, metric, verify};
use crate::harness::pebble::Pebble;
use crate::harness::{
    BASE_DOMAIN, ClientVersion, PgServer, Tailscaled, TailscaledOptions, Topology,
    skip_real_clients,
};

const JOIN: Duration = Duration::from_secs(90);
const PORTS: [u16; 2] = [8081, 8082];
const DNS_PORTS: [u16; 2] = [5353, 5354];
const SERVED: &str = "clawscale_acme_challenges_served_total";

#[test]
fn a_challenge_published_through_one_replica_is_answered_by_the_other() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(1);
    let hub = topo.hub_ip();
    let pg = PgServer::start();
    let (a, b) = pair_with(&topo, &pg, PORTS, [901, 902], |i, cfg| {
        cfg.set("dns.server.enabled", true);
        cfg.set("dns.server.listen_addr", format!("{hub}:{}", DNS_PORTS[i]));
        cfg.set("dns.certs.enabled", true);
    });
    let pebble = Pebble::start(
        topo.hub(),
        hub,
        format!("{hub}:{}", DNS_PORTS[1]).parse().unwrap(),
    );
    let env = vec![
        (
            "TS_DEBUG_ACME_DIRECTORY_URL".to_string(),
            pebble.directory_url(),
        ),
        (
            "SSL_CERT_FILE".to_string(),
            pebble.tls_ca().to_string_lossy().into_owned(),
        ),
    ];
    let key = user_key(&a, "alice");
    let node = Tailscaled::start_with(
        topo.host(0),
        "web",
        TailscaledOptions {
            version: ClientVersion::V1_96_4,
            env,
            ..TailscaledOptions::default()
        },
    );
    node.up_ok(&a.url(), &key, "web");
    node.wait_state("Running", JOIN);

    let name = format!("web.{BASE_DOMAIN}");
    let chain = cert(&node, &name).unwrap_or_else(|e| {
        pebble.dump_log();
        a.dump_log();
        b.dump_log();
        panic!("tailscale cert {name} through replica A, validated on B: {e}")
    });
    let verdict = verify(topo.host(0), &pebble.root_pem(), &chain, &name);
    assert!(verdict.contains(": OK"), "openssl verify: {verdict}");
    let served = [metric(&topo, &a, SERVED), metric(&topo, &b, SERVED)];
    assert!(served[1] >= 1.0, "B served no challenge: {served:?}");
    assert_eq!(served[0], 0.0, "pebble asked only B: {served:?}");
    drop(node);
    drop((a, b)); // before their database server
}
