//! What real clients need from the server beyond enrolment: a DERP map
//! that costs `tailscale up` no probe timeout, a DERP region taken only
//! from Headscale's `derp.paths` (its example config, which disables the
//! embedded relay), and a deleted node told to leave `Running`.

use std::time::{Duration, Instant};

use crate::harness::{
    ClientVersion, Db, KeyOptions, Listener, Server, Tailscaled, TailscaledOptions, Topology,
    skip_real_clients, wait_for,
};

const JOIN: Duration = Duration::from_secs(90);
const CONVERGE: Duration = Duration::from_secs(60);
const USER: &str = "alice";
/// The bound for `tailscale up` with a pre-auth key to reach `Running`.
const UP_BOUND: Duration = Duration::from_millis(1500);

fn reusable() -> KeyOptions {
    KeyOptions {
        reusable: true,
        ..KeyOptions::default()
    }
}

/// `tailscale up` (which waits for `Running`) on hosts with working IPv6:
/// a DERP node with an empty `IPv6` made netcheck wait its 3 s STUN
/// timeout for an IPv6 answer on every `up`.
#[test]
fn tailscale_up_reaches_running_well_under_a_second_and_a_half() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(2);
    topo.enable_ipv6();
    let server = Server::start(&topo);
    server.create_user(USER);
    let key = server.create_preauthkey(USER, &reusable());
    for (i, version) in [ClientVersion::V1_96_4, ClientVersion::V1_78_1]
        .into_iter()
        .enumerate()
    {
        let node = Tailscaled::start(topo.host(i), &format!("up{i}"), version);
        let t0 = Instant::now();
        node.up_ok(&server.url(), &key, &format!("up{i}"));
        let took = t0.elapsed();
        let st = node.status().expect("status");
        assert_eq!(st.backend_state, "Running", "{:#}", st.raw);
        eprintln!(
            "tailscale up ({}) to Running: {:.2} s",
            version.as_str(),
            took.as_secs_f64()
        );
        assert!(
            took < UP_BOUND,
            "tailscale up {} took {took:?} (bound {UP_BOUND:?})",
            version.as_str()
        );
    }
}

/// A node deleted by the admin leaves `Running` within seconds, for both
/// client versions, while the other node stays up.
#[test]
fn a_deleted_node_leaves_running() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(3);
    let server = Server::start(&topo);
    server.create_user(USER);
    let key = server.create_preauthkey(USER, &reusable());
    let versions = [
        ClientVersion::V1_96_4,
        ClientVersion::V1_78_1,
        ClientVersion::V1_96_4,
    ];
    let nodes: Vec<Tailscaled> = versions
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let n = Tailscaled::start(topo.host(i), &format!("del{i}"), v);
            n.up_ok(&server.url(), &key, &format!("del{i}"));
            n.wait_state("Running", JOIN);
            n
        })
        .collect();
    for (i, n) in nodes.iter().enumerate().take(2) {
        let id = server
            .nodes()
            .iter()
            .find(|r| r.name() == format!("del{i}"))
            .and_then(|r| r.id())
            .expect("node listed");
        let t0 = Instant::now();
        server.cli_ok(&[
            "nodes",
            "delete",
            "--identifier",
            &id.to_string(),
            "--force",
        ]);
        let st = n.wait_state("NeedsLogin", Duration::from_secs(5));
        eprintln!(
            "deleted {} ({}) left Running after {:.2} s",
            n.name(),
            n.version().as_str(),
            t0.elapsed().as_secs_f64()
        );
        assert_eq!(st.backend_state, "NeedsLogin");
    }
    assert_eq!(
        nodes[2].status().expect("status").backend_state,
        "Running",
        "the node that was not deleted stays up"
    );
}

/// Headscale's v0.29.2 example config relies on `derp.urls`/`derp.paths`
/// with the embedded relay disabled. Here the DERP map file (Headscale's
/// YAML: lower-case keys, a null region) names a relay served by a second
/// clawscale (DERP only), and the clients, which may use nothing but DERP,
/// reach `Running`, ping and carry TCP through it.
#[test]
fn headscale_example_config_relays_through_a_derp_paths_region() {
    if skip_real_clients() {
        return;
    }
    const DERP_PORT: u16 = 8443;
    const DERP_STUN_PORT: u16 = 3479;
    const REGION: u32 = 900;
    let topo = Topology::new(2);
    let hub = topo.hub_ip();
    let relay = Server::start_with(&topo, Db::Sqlite, |cfg| {
        cfg.set("server_url", format!("http://{hub}:{DERP_PORT}"))
            .set("listen_addr", format!("{hub}:{DERP_PORT}"))
            .set(
                "derp.server.stun_listen_addr",
                format!("{hub}:{DERP_STUN_PORT}"),
            )
            // It does not know the other server's nodes.
            .set("derp.server.verify_clients", false);
    });
    let pin = relay_pin(&relay);
    let map_dir = tempfile::tempdir().expect("dir");
    let map_path = map_dir.path().join("derp.yaml");
    std::fs::write(
        &map_path,
        format!(
            "# As Headscale's derp-example.yaml: yaml.v3 lower-case keys.\n\
             regions:\n  \
               1: null\n  \
               {REGION}:\n    \
                 regionid: {REGION}\n    \
                 regioncode: pathsderp\n    \
                 regionname: DERP from derp.paths\n    \
                 nodes:\n      \
                   - name: {REGION}a\n        \
                     regionid: {REGION}\n        \
                     hostname: \"{hub}\"\n        \
                     certname: \"sha256-raw:{pin}\"\n        \
                     ipv4: \"{hub}\"\n        \
                     ipv6: none\n        \
                     stunport: {DERP_STUN_PORT}\n        \
                     stunonly: false\n        \
                     derpport: {DERP_PORT}\n"
        ),
    )
    .expect("write DERP map");
    let control = Server::start_with(&topo, Db::Sqlite, |cfg| {
        headscale_example(cfg, &map_path);
    });
    assert!(
        !control.log().contains("derp.paths"),
        "derp.paths warned about:\n{}",
        control.log()
    );
    control.create_user(USER);
    let key = control.create_preauthkey(USER, &reusable());
    let nodes: Vec<Tailscaled> = (0..2)
        .map(|i| {
            let opts = TailscaledOptions {
                always_derp: true,
                ..TailscaledOptions::default()
            };
            let n = Tailscaled::start_with(topo.host(i), &format!("hs{i}"), opts);
            n.up_ok(&control.url(), &key, &format!("hs{i}"));
            n.wait_state("Running", JOIN);
            n
        })
        .collect();
    let ips: Vec<String> = nodes
        .iter()
        .map(|n| {
            let st = n.status().expect("status");
            st.self_node.expect("self").tailscale_ips[0].clone()
        })
        .collect();
    for (from, to) in [(0, 1), (1, 0)] {
        let pong = nodes[from].wait_ping(&ips[to], CONVERGE, |p| p.is_derp());
        assert_eq!(pong.via, "DERP(pathsderp)", "{pong:?}");
    }
    let listener = Listener::start(nodes[1].netns(), 8000);
    wait_for("TCP through the derp.paths relay", CONVERGE, || {
        listener.reached_from(&nodes[0], &ips[1], 8000)
    });
}

/// The SHA-256 of the relay's certificate (DER), as a `sha256-raw:` pin.
fn relay_pin(relay: &Server) -> String {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use sha2::Digest;
    let pem = relay.dir().join("data/derp_tls_cert.pem");
    let der = CertificateDer::pem_file_iter(&pem)
        .expect("relay certificate")
        .next()
        .expect("one certificate")
        .expect("PEM");
    hex::encode(sha2::Sha256::digest(der.as_ref()))
}

/// The keys of Headscale v0.29.2's `config-example.yaml` that shape the
/// DERP map and enrolment, with its values, except: addresses and paths
/// of this test, `derp.urls` empty (the test network has no route out; the
/// URL source is proven in-process), `derp.paths` naming `map`.
fn headscale_example(cfg: &mut crate::harness::ServerConfig, map: &std::path::Path) {
    cfg.set("grpc_allow_insecure", false)
        .set("trusted_proxies", Vec::<String>::new())
        .set("prefixes.v4", "100.64.0.0/10")
        .set("prefixes.v6", "fd7a:115c:a1e0::/48")
        .set("prefixes.allocation", "sequential")
        .set("derp.server.enabled", false)
        .set("derp.server.region_id", 999)
        .set("derp.server.region_code", "headscale")
        .set("derp.server.region_name", "Headscale Embedded DERP")
        .set("derp.server.verify_clients", true)
        .set("derp.server.stun_listen_addr", "0.0.0.0:3478")
        .set("derp.server.automatically_add_embedded_derp_region", true)
        .set("derp.server.ipv4", "198.51.100.1")
        .set("derp.server.ipv6", "2001:db8::1")
        .set("derp.urls", Vec::<String>::new())
        .set("derp.paths", vec![map.to_string_lossy().into_owned()])
        .set("derp.auto_update_enabled", true)
        .set("derp.update_frequency", "3h")
        .set("disable_check_updates", false)
        .set("node.expiry", 0)
        .set("database.sqlite.write_ahead_log", true)
        .set("tls_cert_path", "")
        .set("tls_key_path", "")
        .set("log.level", "info")
        .set("log.format", "text")
        .set("policy.mode", "file")
        .set("policy.path", "")
        .set("dns.override_local_dns", true)
        .set("dns.nameservers.global", vec!["1.1.1.1", "1.0.0.1"])
        .set("dns.search_domains", Vec::<String>::new())
        .set("unix_socket_permission", "0770")
        .set("logtail.enabled", false)
        .set("taildrop.enabled", true)
        .set("auto_update.enabled", false);
}
