//! Enrolment scenarios with stock clients: joining with pre-auth keys, key
//! rules, logout, ephemeral nodes, server restarts and mixed client versions
//! carrying TCP directly and through the relay.
//!
//! Expectations mirror Headscale with the same config: MagicDNS names are
//! `<hostname>.clawql.local.`, a logged-out node stays registered unless it
//! is ephemeral. A refused key must make `tailscale up` fail at once with
//! `backend error: <text>`: the client only surfaces an error that way when
//! the server answers `/machine/register` with HTTP 200 and a non-empty
//! `RegisterResponse.Error` (a vizerror in `control/controlclient/direct.go`);
//! any non-200 status is retried with backoff and `up` just times out. The
//! texts follow Headscale ("authkey already used", "authkey expired").

use std::thread;
use std::time::Duration;

use crate::harness::{
    BASE_DOMAIN, ClientVersion, CmdOutput, Db, KeyOptions, Listener, Pong, Server, Tailscaled,
    TailscaledOptions, TestCa, Topology, assert_stays, postgres, skip_real_clients, wait_for,
};

const JOIN: Duration = Duration::from_secs(90);
pub(crate) const CONVERGE: Duration = Duration::from_secs(60);
const USER: &str = "alice";
/// How `tailscale up` reports a `RegisterResponse.Error`.
const BACKEND_ERROR: &str = "backend error:";
/// Part of the server's text for a reused single-use key (Headscale wording).
const ALREADY_USED: &str = "already used";
/// Part of the server's text for an expired key (Headscale wording).
const EXPIRED: &str = "expired";

/// Asserts that `up` was refused promptly with a message containing `what`.
#[track_caller]
fn assert_refused(out: &CmdOutput, what: &str) {
    assert!(!out.success(), "key was accepted:\n{out}");
    let text = out.combined().to_lowercase();
    assert!(
        text.contains(BACKEND_ERROR) && text.contains(what),
        "`tailscale up` did not fail with \"{BACKEND_ERROR} ...{what}...\"; the server must \
         answer /machine/register with 200 and RegisterResponse.Error:\n{out}"
    );
}

fn host(i: usize) -> String {
    format!("node{i}")
}

fn fqdn(hostname: &str) -> String {
    format!("{hostname}.{BASE_DOMAIN}.")
}

pub(crate) fn reusable() -> KeyOptions {
    KeyOptions {
        reusable: true,
        ..KeyOptions::default()
    }
}

/// Starts one client per topology host, `versions[i]` on host i.
pub(crate) fn start_clients(
    topo: &Topology,
    versions: &[ClientVersion],
    always_derp: bool,
) -> Vec<Tailscaled> {
    versions
        .iter()
        .enumerate()
        .map(|(i, &version)| {
            let opts = TailscaledOptions {
                version,
                always_derp,
                ..TailscaledOptions::default()
            };
            Tailscaled::start_with(topo.host(i), &host(i), opts)
        })
        .collect()
}

/// `tailscale up` on every client at once (hostname `node<i>`), then waits
/// for `Running` everywhere. Returns each node's tailnet IPs.
pub(crate) fn join_all(server: &Server, nodes: &[Tailscaled], key: &str) -> Vec<Vec<String>> {
    let url = server.url();
    let outputs: Vec<_> = thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let url = &url;
                s.spawn(move || n.up(url, key, &host(i)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("up thread"))
            .collect()
    });
    for (i, out) in outputs.iter().enumerate() {
        assert!(out.success(), "tailscale up on node{i} failed:\n{out}");
    }
    nodes
        .iter()
        .map(|n| {
            let st = n.wait_state("Running", JOIN);
            let me = st.self_node.clone().unwrap_or_default();
            assert!(
                !me.tailscale_ips.is_empty(),
                "{} has no tailnet IPs: {:#}",
                n.name(),
                st.raw
            );
            let mut ips = me.tailscale_ips;
            ips.sort();
            ips
        })
        .collect()
}

/// Waits for every client to be `Running` again (after a server restart or
/// move) with the addresses `ips` it had, and to see all the others.
pub(crate) fn assert_back_unchanged(nodes: &[Tailscaled], ips: &[Vec<String>]) {
    for (i, n) in nodes.iter().enumerate() {
        let st = n.wait_state("Running", CONVERGE);
        let mut got = st.self_node.unwrap_or_default().tailscale_ips;
        got.sort();
        assert_eq!(got, ips[i], "node{i} changed addresses");
    }
    for me in 0..nodes.len() {
        assert_sees_all(nodes, ips, me);
    }
}

/// Waits until node `me` lists every other node with its name, FQDN, IPs and
/// `Online`, and checks its own DNS name.
fn assert_sees_all(nodes: &[Tailscaled], ips: &[Vec<String>], me: usize) {
    wait_for(
        &format!("node{me} to see all peers online"),
        CONVERGE,
        || {
            let st = nodes[me].status()?;
            let self_dns = st
                .self_node
                .as_ref()
                .map(|s| s.dns_name.clone())
                .unwrap_or_default();
            if self_dns != fqdn(&host(me)) {
                return Err(format!("self DNSName is {self_dns:?}"));
            }
            for j in (0..nodes.len()).filter(|&j| j != me) {
                let name = host(j);
                let peer = st
                    .peer(&name)
                    .ok_or_else(|| format!("{name} not listed: {:#}", st.raw))?;
                let mut peer_ips = peer.tailscale_ips.clone();
                peer_ips.sort();
                if peer.dns_name != fqdn(&name) || peer_ips != ips[j] || !peer.online {
                    return Err(format!(
                        "{name}: DNSName {:?} IPs {peer_ips:?} (want {:?}) online {}",
                        peer.dns_name, ips[j], peer.online
                    ));
                }
            }
            if st.peers.len() != nodes.len() - 1 {
                return Err(format!(
                    "{} peers listed, want {}",
                    st.peers.len(),
                    nodes.len() - 1
                ));
            }
            Ok(())
        },
    );
}

#[test]
fn server_starts_and_admin_cli_works() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(0);
    let server = Server::start(&topo);
    server.create_user(USER);
    let key = server.create_preauthkey(USER, &reusable());
    assert!(key.len() >= 16, "suspiciously short key {key:?}");
    let other = server.create_preauthkey(USER, &KeyOptions::default());
    assert_ne!(key, other, "two keys must differ");
    assert!(server.nodes().is_empty());
}

#[test]
fn three_nodes_join_with_one_reusable_key_and_ping_via_derp() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(3);
    let server = Server::start(&topo);
    server.create_user(USER);
    let key = server.create_preauthkey(USER, &reusable());
    let nodes = start_clients(&topo, &[ClientVersion::V1_96_4; 3], true);
    let ips = join_all(&server, &nodes, &key);
    for me in 0..3 {
        assert_sees_all(&nodes, &ips, me);
    }

    // The server agrees on names and addresses.
    let listed = server.nodes();
    assert_eq!(listed.len(), 3, "{listed:?}");
    for (i, want) in ips.iter().enumerate() {
        let rec = listed
            .iter()
            .find(|r| r.name() == host(i))
            .unwrap_or_else(|| panic!("node{i} not in nodes list: {listed:?}"));
        let mut got = rec.ip_addresses();
        got.sort();
        assert_eq!(&got, want, "node{i} addresses");
    }

    // UDP is off in the clients, so every pong must come through DERP.
    for (from, node) in nodes.iter().enumerate() {
        for to in (0..3).filter(|&t| t != from) {
            let pong = node.wait_ping(&ips[to][0], CONVERGE, |p| p.is_derp());
            assert_eq!(pong.ip, ips[to][0]);
        }
    }
}

#[test]
fn single_use_key_is_refused_the_second_time() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(2);
    let server = Server::start(&topo);
    server.create_user(USER);
    let key = server.create_preauthkey(USER, &KeyOptions::default());
    let nodes = start_clients(&topo, &[ClientVersion::V1_96_4; 2], false);
    nodes[0].up_ok(&server.url(), &key, &host(0));
    nodes[0].wait_state("Running", JOIN);

    let second = nodes[1].up(&server.url(), &key, &host(1));
    assert_refused(&second, ALREADY_USED);
    assert_ne!(nodes[1].status().expect("status").backend_state, "Running");
    let names: Vec<String> = server.nodes().iter().map(|n| n.name().to_owned()).collect();
    assert_eq!(names, vec![host(0)]);
}

#[test]
fn expired_key_is_refused() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(1);
    let server = Server::start(&topo);
    server.create_user(USER);
    let opts = KeyOptions {
        reusable: true,
        expiration: Some("1s".to_owned()),
        ..KeyOptions::default()
    };
    let key = server.create_preauthkey(USER, &opts);
    thread::sleep(Duration::from_secs(3));
    let node = Tailscaled::start(topo.host(0), &host(0), ClientVersion::V1_96_4);
    let out = node.up(&server.url(), &key, &host(0));
    assert_refused(&out, EXPIRED);
    assert!(server.nodes().is_empty());
}

#[test]
fn logout_leaves_the_node_logged_out() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(1);
    let server = Server::start(&topo);
    server.create_user(USER);
    let key = server.create_preauthkey(USER, &reusable());
    let node = Tailscaled::start(topo.host(0), &host(0), ClientVersion::V1_96_4);
    node.up_ok(&server.url(), &key, &host(0));
    node.wait_state("Running", JOIN);

    node.logout().expect_success("tailscale logout");
    node.wait_state("NeedsLogin", CONVERGE);
    assert_stays("node0 logged out", Duration::from_secs(5), || {
        let st = node.status()?.backend_state;
        if st == "NeedsLogin" { Ok(()) } else { Err(st) }
    });
    // A regular node stays registered after logging out.
    assert!(server.nodes().iter().any(|n| n.name() == host(0)));
}

#[test]
fn ephemeral_nodes_are_removed_after_logout_or_inactivity() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(2);
    let server = Server::start_with(&topo, Db::Sqlite, |cfg| {
        // Below Headscale's 65 s floor: accepted with a warning.
        cfg.set("node.ephemeral.inactivity_timeout", "10s");
    });
    server.create_user(USER);
    let key = server.create_preauthkey(
        USER,
        &KeyOptions {
            reusable: true,
            ephemeral: true,
            ..KeyOptions::default()
        },
    );
    let mut nodes = start_clients(&topo, &[ClientVersion::V1_96_4; 2], false);
    join_all(&server, &nodes, &key);
    assert_eq!(server.nodes().len(), 2);

    // node0 logs out; node1 just goes away without a word.
    nodes[0].logout().expect_success("tailscale logout");
    nodes[1].stop();
    wait_for("both ephemeral nodes to be removed", CONVERGE, || {
        let left: Vec<String> = server.nodes().iter().map(|n| n.name().to_owned()).collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("still listed: {left:?}"))
        }
    });
}

fn restart_keeps_nodes(db: Db) {
    let topo = Topology::new(3);
    let mut server = Server::start_with(&topo, db, |_| {});
    server.create_user(USER);
    let key = server.create_preauthkey(USER, &reusable());
    let mut nodes = start_clients(&topo, &[ClientVersion::V1_96_4; 2], false);
    let ips = join_all(&server, &nodes, &key);
    let mut ids: Vec<_> = server.nodes().iter().map(|n| n.id()).collect();
    ids.sort();
    assert!(ids.len() == 2 && ids.iter().all(Option::is_some), "{ids:?}");

    server.restart();

    // Same nodes, same addresses, no `tailscale up` in between.
    let mut after: Vec<_> = server.nodes().iter().map(|n| n.id()).collect();
    after.sort();
    assert_eq!(ids, after, "node ids changed across the restart");
    assert_back_unchanged(&nodes, &ips);
    nodes[0].wait_ping(&ips[1][0], CONVERGE, |_| true);

    // Their map streams are live again: a newcomer shows up at both.
    let newcomer = Tailscaled::start(topo.host(2), &host(2), ClientVersion::V1_96_4);
    newcomer.up_ok(&server.url(), &key, &host(2));
    let st = newcomer.wait_state("Running", JOIN);
    let mut new_ips = st.self_node.unwrap_or_default().tailscale_ips;
    new_ips.sort();
    nodes.push(newcomer);
    let all_ips = [ips[0].clone(), ips[1].clone(), new_ips];
    for me in 0..3 {
        assert_sees_all(&nodes, &all_ips, me);
    }
}

#[test]
fn server_restart_keeps_nodes_without_reauth() {
    if skip_real_clients() {
        return;
    }
    restart_keeps_nodes(Db::Sqlite);
}

#[test]
fn server_restart_keeps_nodes_on_postgres() {
    if skip_real_clients() {
        return;
    }
    if postgres::admin_url().is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} must be set in CI",
            postgres::URL_ENV
        );
        eprintln!("skipping: {} is not set", postgres::URL_ENV);
        return;
    }
    restart_keeps_nodes(Db::Postgres);
}

/// Port of the listeners the mixed-version tests connect to.
const TCP_PORT: u16 = 8000;

/// Tailscale 1.78.1 (capver 109) and 1.96.4 in one tailnet see each other
/// and carry TCP both ways, directly or (`relayed`) only through the
/// embedded DERP relay. A disco ping alone proves little: 1.78 answered it
/// while its nil AllowedIPs routed no traffic.
///
/// For the relay the server has a certificate from a test CA: 1.96 checks
/// it by the pin in its DERP map, 1.78 (which cannot check pins) by name,
/// trusting the CA through `SSL_CERT_FILE` as an operator's clients would
/// trust a public CA.
fn mixed_versions_carry_tcp(relayed: bool) {
    let topo = Topology::new(2);
    let certs = tempfile::tempdir().expect("certs dir");
    let ca = TestCa::issue(certs.path(), topo.hub_ip().into());
    let server = Server::start_with(&topo, Db::Sqlite, |cfg| {
        if relayed {
            cfg.set("tls_cert_path", ca.cert_pem.to_string_lossy())
                .set("tls_key_path", ca.key_pem.to_string_lossy());
        }
    });
    server.create_user(USER);
    let key = server.create_preauthkey(USER, &reusable());
    let versions = [ClientVersion::V1_96_4, ClientVersion::V1_78_1];
    let nodes: Vec<Tailscaled> = versions
        .iter()
        .enumerate()
        .map(|(i, &version)| {
            let mut opts = TailscaledOptions {
                version,
                always_derp: relayed,
                ..TailscaledOptions::default()
            };
            if relayed && version == ClientVersion::V1_78_1 {
                opts.env.push((
                    "SSL_CERT_FILE".to_owned(),
                    ca.ca_pem.to_string_lossy().into_owned(),
                ));
            }
            Tailscaled::start_with(topo.host(i), &host(i), opts)
        })
        .collect();
    let ips = join_all(&server, &nodes, &key);
    // With its own self-signed certificate the server warns that 1.78
    // cannot relay; with the CA's it has no reason to.
    let warned = server.log().contains("older than tailscale 1.82");
    assert_eq!(warned, !relayed, "warning about 1.78 and the relay");
    assert_sees_all(&nodes, &ips, 0);
    assert_sees_all(&nodes, &ips, 1);
    let path_ok = |p: &Pong| p.is_derp() == relayed;
    nodes[0].wait_ping(&ips[1][0], CONVERGE, path_ok);
    nodes[1].wait_ping(&ips[0][0], CONVERGE, path_ok);

    let listeners = [
        Listener::start(nodes[0].netns(), TCP_PORT),
        Listener::start(nodes[1].netns(), TCP_PORT),
    ];
    for (from, to) in [(0, 1), (1, 0)] {
        wait_for(
            &format!(
                "TCP from {} to {} ({})",
                versions[from].as_str(),
                versions[to].as_str(),
                if relayed { "relayed" } else { "direct" }
            ),
            CONVERGE,
            || listeners[to].reached_from(&nodes[from], &ips[to][0], TCP_PORT),
        );
    }
    if relayed {
        // Both paths went through the relay, none directly.
        for n in &nodes {
            n.assert_only_relayed();
        }
    }
}

#[test]
fn mixed_versions_carry_tcp_directly() {
    if skip_real_clients() {
        return;
    }
    mixed_versions_carry_tcp(false);
}

#[test]
fn mixed_versions_carry_tcp_through_the_relay() {
    if skip_real_clients() {
        return;
    }
    mixed_versions_carry_tcp(true);
}
