//! MagicDNS and the authoritative DNS server with stock clients and `dig`:
//! a `clawscale serve` with `dns.server.enabled`, a policy with a service,
//! an extra records file and a split-DNS route; two tailscale 1.96.4 nodes.
//!
//! Proves, against the whole server configured through YAML keys: `dig`
//! from outside the tailnet gets A/AAAA for nodes and the service, PTR,
//! extra records of every type, NXDOMAIN in the zone, REFUSED outside it
//! and for sources off the allow-list, answers over TCP; a join, rename and
//! delete show in the zone within 1 s; the clients resolve each other, the
//! service and the extra records through their own MagicDNS resolver
//! (`tailscale dns query`), see the split route, and follow a rename within
//! 2 s and an edit of the records file.

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{
    BASE_DOMAIN, ClientVersion, Db, KeyOptions, Netns, Server, Tailscaled, Topology,
    skip_real_clients, wait_for,
};

const JOIN: Duration = Duration::from_secs(90);
/// The issue's bound for the authoritative zone.
const ZONE_FRESH: Duration = Duration::from_secs(1);
/// The issue's bound for a rename to reach clients.
const CLIENT_FRESH: Duration = Duration::from_secs(2);
const DNS_PORT: u16 = 5353;

const POLICY: &str = r#"{
  "tagOwners": {"tag:mcp-server": ["alice@example.com"]},
  "services": {"svc:mcp-gw": {"hosts": ["tag:mcp-server"], "ports": ["tcp:443"]}},
  "acls": [{"action": "accept", "src": ["alice@example.com"], "dst": ["*:*"]}],
}"#;

fn records(grafana: &str) -> String {
    serde_json::json!([
        {"name": "grafana.clawql.local", "type": "A", "value": grafana},
        {"name": "docs.clawql.local", "type": "CNAME", "value": "mcp-gw.clawql.local"},
        {"name": "info.clawql.local", "type": "TXT", "value": "clawscale test"},
        {"name": "_mcp._tcp.clawql.local", "type": "SRV", "value": "10 5 443 mcp-gw.clawql.local"},
    ])
    .to_string()
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text).expect("write records");
    fs::rename(&tmp, path).expect("replace records");
}

/// `dig` from `ns` against the server: "STATUS answer | answer …" (answer
/// = type and data of each answer line).
fn dig(ns: &Netns, server: &Server, args: &[&str]) -> String {
    let at = format!("@{}", server.ip());
    let port = DNS_PORT.to_string();
    let mut argv = vec!["dig", &at, "-p", &port, "+time=1", "+tries=2"];
    argv.extend_from_slice(args);
    let out = ns.run(&argv, Duration::from_secs(10));
    let raw = out.stdout;
    let status = raw
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("NO-RESPONSE");
    let answers: Vec<String> = raw
        .split(";; ANSWER SECTION:\n")
        .nth(1)
        .map(|s| {
            s.lines()
                .take_while(|l| !l.trim().is_empty())
                .map(|l| l.split_whitespace().skip(3).collect::<Vec<_>>().join(" "))
                .collect()
        })
        .unwrap_or_default();
    format!("{status} {}", answers.join(" | "))
}

/// Polls `check` every 50 ms until it holds; panics after `limit`.
#[track_caller]
fn within(what: &str, limit: Duration, mut check: impl FnMut() -> Result<(), String>) -> Duration {
    let t0 = Instant::now();
    loop {
        match check() {
            Ok(()) => return t0.elapsed(),
            Err(e) if t0.elapsed() > limit => {
                panic!("{what}: not within {limit:?}; last: {e}")
            }
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn expect(got: String, want: &str) -> Result<(), String> {
    if got.contains(want) { Ok(()) } else { Err(got) }
}

/// A lookup through the client's own MagicDNS resolver (quad-100).
fn client_query(node: &Tailscaled, name: &str) -> String {
    node.cli(&["dns", "query", name], Duration::from_secs(10))
        .combined()
}

fn v4(node: &Tailscaled) -> String {
    let st = node.wait_state("Running", JOIN);
    st.self_node
        .and_then(|s| s.tailscale_ips.into_iter().find(|ip| ip.contains('.')))
        .expect("an IPv4 tailnet address")
}

#[test]
fn magicdns_and_authoritative_server_follow_the_tailnet() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(2);
    let dir = tempfile::tempdir().expect("temp dir");
    let policy_path = dir.path().join("policy.hujson");
    fs::write(&policy_path, POLICY).expect("write policy");
    let records_path = dir.path().join("records.json");
    fs::write(&records_path, records("100.64.50.50")).expect("write records");
    let hub_ip = topo.hub_ip();
    let server = Server::start_with(&topo, Db::Sqlite, |cfg| {
        cfg.set("policy.mode", "file");
        cfg.set("policy.path", policy_path.to_string_lossy().to_string());
        cfg.set(
            "dns.extra_records_path",
            records_path.to_string_lossy().to_string(),
        );
        cfg.set(
            "dns.nameservers.split",
            serde_json::json!({"corp.example": ["192.0.2.53"]}),
        );
        cfg.set("dns.server.enabled", true);
        cfg.set("dns.server.listen_addr", format!("{hub_ip}:{DNS_PORT}"));
        // The hub may ask; the client namespaces' LAN addresses may not.
        cfg.set(
            "dns.server.allow",
            vec![format!("{hub_ip}/32"), "127.0.0.0/8".into()],
        );
        cfg.set("dns.server.ttl", "2s");
    });
    let hub = topo.hub();
    server.cli_ok(&["users", "create", "alice", "--email", "alice@example.com"]);
    let gw_key = server.create_preauthkey(
        "alice",
        &KeyOptions {
            tags: vec!["tag:mcp-server".into()],
            ..KeyOptions::default()
        },
    );
    let laptop_key = server.create_preauthkey("alice", &KeyOptions::default());

    // Zone basics before any node: extra records of every type, SOA, the
    // two negative answers.
    assert!(dig(hub, &server, &["grafana.clawql.local", "A"]).contains("100.64.50.50"));
    assert!(dig(hub, &server, &["clawql.local", "SOA"]).starts_with("NOERROR SOA"));
    assert!(dig(hub, &server, &["clawql.local", "NS"]).contains("NS clawql.local."));
    assert!(
        dig(hub, &server, &["docs.clawql.local", "CNAME"]).contains("CNAME mcp-gw.clawql.local.")
    );
    assert!(dig(hub, &server, &["info.clawql.local", "TXT"]).contains("\"clawscale test\""));
    assert!(
        dig(hub, &server, &["_mcp._tcp.clawql.local", "SRV"])
            .contains("SRV 10 5 443 mcp-gw.clawql.local.")
    );
    assert!(dig(hub, &server, &["nobody.clawql.local", "A"]).starts_with("NXDOMAIN"));
    assert!(dig(hub, &server, &["example.com", "A"]).starts_with("REFUSED"));
    assert!(
        dig(topo.host(0), &server, &["grafana.clawql.local", "A"]).starts_with("REFUSED"),
        "a source off the allow-list is refused"
    );

    // Join: each name is in the zone within a second of `up` returning.
    let gw = Tailscaled::start(topo.host(0), "gw", ClientVersion::V1_96_4);
    let laptop = Tailscaled::start(topo.host(1), "laptop", ClientVersion::V1_96_4);
    gw.up_ok(&server.url(), &gw_key, "gw");
    let took = within("gw in the zone", ZONE_FRESH, || {
        expect(dig(hub, &server, &["gw.clawql.local", "A"]), "A 100.64.")
    });
    eprintln!("join visible in the zone after {took:?}");
    laptop.up_ok(&server.url(), &laptop_key, "laptop");
    // Userspace networking never touches the host's resolver; with
    // accept-dns the client also takes the split routes.
    let set = laptop.cli(&["set", "--accept-dns=true"], Duration::from_secs(30));
    assert!(set.success(), "{set}");
    let (gw_ip, laptop_ip) = (v4(&gw), v4(&laptop));

    // The zone: nodes, the service (svc:mcp-gw → the tagged host), PTR, TCP.
    within("laptop in the zone", ZONE_FRESH, || {
        expect(dig(hub, &server, &["laptop.clawql.local", "A"]), &laptop_ip)
    });
    assert!(dig(hub, &server, &["gw.clawql.local", "AAAA"]).contains("AAAA fd7a:115c:a1e0:"));
    assert!(dig(hub, &server, &["mcp-gw.clawql.local", "A"]).contains(&gw_ip));
    assert!(dig(hub, &server, &["-x", &gw_ip]).contains("PTR gw.clawql.local."));
    assert!(dig(hub, &server, &["+tcp", "laptop.clawql.local", "A"]).contains(&laptop_ip));

    // Clients resolve each other, the service and the extra record through
    // MagicDNS, and the laptop holds the split-DNS route.
    wait_for("laptop resolves gw", JOIN, || {
        expect(client_query(&laptop, &format!("gw.{BASE_DOMAIN}")), &gw_ip)
    });
    wait_for("gw resolves laptop", JOIN, || {
        expect(
            client_query(&gw, &format!("laptop.{BASE_DOMAIN}")),
            &laptop_ip,
        )
    });
    expect(client_query(&laptop, "mcp-gw.clawql.local"), &gw_ip).expect("service via MagicDNS");
    expect(
        client_query(&laptop, "grafana.clawql.local"),
        "100.64.50.50",
    )
    .expect("extra record via MagicDNS");
    let status = laptop
        .cli(&["dns", "status"], Duration::from_secs(10))
        .combined();
    assert!(
        status.contains("corp.example"),
        "split route missing:\n{status}"
    );

    // Rename: zone within 1 s, the other client within 2 s.
    let gw_id = server
        .nodes()
        .into_iter()
        .find(|n| n.name() == "gw")
        .and_then(|n| n.id())
        .expect("gw in nodes list");
    server.cli_ok(&["nodes", "rename", "-i", &gw_id.to_string(), "gateway"]);
    let t0 = Instant::now();
    let took = within("rename in the zone", ZONE_FRESH, || {
        expect(dig(hub, &server, &["gateway.clawql.local", "A"]), &gw_ip)
    });
    eprintln!("rename visible in the zone after {took:?}");
    assert!(dig(hub, &server, &["gw.clawql.local", "A"]).starts_with("NXDOMAIN"));
    within(
        "rename at the client",
        CLIENT_FRESH.saturating_sub(t0.elapsed()),
        || expect(client_query(&laptop, "gateway.clawql.local"), &gw_ip),
    );
    eprintln!("rename visible to the client after {:?}", t0.elapsed());

    // Editing the records file reaches the zone and the clients.
    write_atomically(&records_path, &records("100.64.50.51"));
    within("new record in the zone", Duration::from_secs(3), || {
        expect(
            dig(hub, &server, &["grafana.clawql.local", "A"]),
            "100.64.50.51",
        )
    });
    within("new record at the client", Duration::from_secs(5), || {
        expect(
            client_query(&laptop, "grafana.clawql.local"),
            "100.64.50.51",
        )
    });
    // A broken edit keeps the records in force.
    write_atomically(&records_path, "[{");
    thread::sleep(Duration::from_millis(700));
    assert!(dig(hub, &server, &["grafana.clawql.local", "A"]).contains("100.64.50.51"));
    assert!(
        server.log().contains("DNS extra records file rejected"),
        "the broken file is reported"
    );

    // Delete: NXDOMAIN within a second.
    let laptop_id = server
        .nodes()
        .into_iter()
        .find(|n| n.name() == "laptop")
        .and_then(|n| n.id())
        .expect("laptop in nodes list");
    server.cli_ok(&["nodes", "delete", "-i", &laptop_id.to_string(), "--force"]);
    let took = within("delete in the zone", ZONE_FRESH, || {
        expect(dig(hub, &server, &["laptop.clawql.local", "A"]), "NXDOMAIN")
    });
    eprintln!("delete visible in the zone after {took:?}");
}
