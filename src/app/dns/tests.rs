//! The whole server (`app::start`) with `dns.server.enabled`, queried with
//! `dig`: the World→index wiring (join, rename, delete within a second),
//! services from the policy, the extra records file and its reload, and the
//! policy filter. Skipped loudly without `dig` unless `CI` is set.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use super::*;
use crate::state::{RegisterInput, RegisterOutcome};
use crate::types::{MachinePublic, Node, NodePublic};

/// The issue's freshness bound for names.
const FRESH: Duration = Duration::from_secs(1);

const POLICY: &str = r#"{
  "tagOwners": {"tag:mcp": ["alice@example.com"]},
  "services": {"svc:mcp": {"hosts": ["tag:mcp"], "ports": ["tcp:443"]}},
  "acls": [{"action": "accept", "src": ["alice@example.com"], "dst": ["svc:mcp:443"]}],
}"#;

fn dig_available() -> bool {
    let found = std::process::Command::new("dig").arg("-v").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "dig is required in CI (bind9-dnsutils)"
        );
        eprintln!("!!!!!!!! SKIPPING app dns tests: `dig` not found (bind9-dnsutils) !!!!!!!!");
    }
    found
}

/// `dig` answer lines (`+short`), or the status when there is no answer.
async fn dig(addr: SocketAddr, args: &[&str]) -> String {
    let out = tokio::process::Command::new("dig")
        .arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string(), "+time=1", "+tries=2"])
        .args(args)
        .output()
        .await
        .expect("run dig");
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
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
                .map(|l| l.split_whitespace().skip(4).collect::<Vec<_>>().join(" "))
                .collect()
        })
        .unwrap_or_default();
    format!("{status} {}", answers.join(" | "))
}

/// Polls until `dig` output contains `want`; returns how long it took.
async fn until(addr: SocketAddr, args: &[&str], want: &str, limit: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        let got = dig(addr, args).await;
        if got.contains(want) {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < limit,
            "dig {args:?}: wanted {want:?} within {limit:?}, last {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn test_config(dir: &Path) -> config::Config {
    let mut c = config::Config::embedded(dir.join("data"));
    c.listen_addr = "127.0.0.1:0".parse().unwrap();
    c.server_url = "http://127.0.0.1:0".into();
    c.unix_socket = dir.join("admin.sock");
    if let Some(d) = c.derp.server.as_mut() {
        d.stun_listen_addr = Some("127.0.0.1:0".parse().unwrap());
    }
    let policy = dir.join("policy.hujson");
    std::fs::write(&policy, POLICY).unwrap();
    c.policy.mode = config::PolicyMode::File;
    c.policy.path = Some(policy);
    c.dns.server.enabled = true;
    c.dns.server.listen_addr = "127.0.0.1:0".parse().unwrap();
    c.dns.server.ttl = 3;
    c
}

async fn register(state: &StateHandle, key: &str, n: u8, hostname: &str) -> std::sync::Arc<Node> {
    let input = RegisterInput {
        machine_key: MachinePublic([n; 32]),
        node_key: NodePublic([n + 100; 32]),
        old_node_key: None,
        auth_key: Some(key.to_string()),
        expiry: None,
        hostinfo: json!({ "Hostname": hostname }),
        ephemeral: false,
        version: 133,
    };
    match state.register(input).await.expect("register") {
        RegisterOutcome::Authorized { node, .. } => node,
        other => panic!("expected authorization, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_from_live_state() {
    if !dig_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("records.json");
    std::fs::write(
        &records,
        r#"[{"name": "grafana.clawql.local", "type": "A", "value": "100.64.9.9"}]"#,
    )
    .unwrap();
    let mut cfg = test_config(dir.path());
    cfg.dns.extra_records_path = Some(records.clone());
    let running = crate::app::start(cfg).await.expect("server starts");
    let addr = running.dns.expect("dns server enabled").udp;
    assert_eq!(running.dns.unwrap().tcp, addr, "TCP on the same port");
    let state = running.state.clone();
    let alice = state
        .create_user("alice", "", "alice@example.com")
        .await
        .unwrap()
        .id;
    let (_, plain) = state
        .create_preauth_key(alice, true, false, None, vec![])
        .await
        .unwrap();
    let (_, tagged) = state
        .create_preauth_key(alice, true, false, None, vec!["tag:mcp".into()])
        .await
        .unwrap();

    // Static parts: the file's record, SOA at the apex, REFUSED outside.
    assert!(
        dig(addr, &["grafana.clawql.local", "A"])
            .await
            .contains("100.64.9.9")
    );
    assert!(
        dig(addr, &["clawql.local", "SOA"])
            .await
            .starts_with("NOERROR")
    );
    assert!(
        dig(addr, &["example.com", "A"])
            .await
            .starts_with("REFUSED")
    );
    assert!(
        dig(addr, &["nobody.clawql.local", "A"])
            .await
            .starts_with("NXDOMAIN")
    );

    // Join: the name and its PTR answer within a second of registration.
    let laptop = register(&state, &plain, 1, "laptop").await;
    let took = until(addr, &["laptop.clawql.local", "A"], "100.64.", FRESH).await;
    eprintln!("join visible after {took:?}");
    let v4 = laptop.ipv4.unwrap().to_string();
    let v6 = laptop.ipv6.unwrap().to_string();
    assert!(dig(addr, &["laptop.clawql.local", "A"]).await.contains(&v4));
    assert!(
        dig(addr, &["laptop.clawql.local", "AAAA"])
            .await
            .contains(&v6)
    );
    assert!(
        dig(addr, &["-x", &v4])
            .await
            .contains("laptop.clawql.local."),
        "PTR"
    );

    // A tagged host makes svc:mcp resolve as mcp.clawql.local.
    let host = register(&state, &tagged, 2, "mcp-host").await;
    let host_v4 = host.ipv4.unwrap().to_string();
    until(addr, &["mcp.clawql.local", "A"], &host_v4, FRESH).await;
    let map_records = state.world().dns_config().extra_records.clone();
    assert!(
        map_records
            .iter()
            .any(|r| r.name == "mcp.clawql.local" && r.value == host_v4),
        "{map_records:?}"
    );

    // Rename: new name within a second, old one gone.
    state.rename_node(laptop.id, "desk").await.unwrap();
    let took = until(addr, &["desk.clawql.local", "A"], &v4, FRESH).await;
    eprintln!("rename visible after {took:?}");
    until(addr, &["laptop.clawql.local", "A"], "NXDOMAIN", FRESH).await;
    assert!(dig(addr, &["-x", &v4]).await.contains("desk.clawql.local."));

    // Delete: NXDOMAIN within a second.
    state.delete_node(laptop.id).await.unwrap();
    let took = until(addr, &["desk.clawql.local", "A"], "NXDOMAIN", FRESH).await;
    eprintln!("delete visible after {took:?}");

    // The records file is reloaded: every type is served, clients get A/AAAA.
    let long_txt = "x".repeat(1500);
    write_atomically(
        &records,
        &json!([
            {"name": "grafana.clawql.local", "type": "A", "value": "100.64.9.10"},
            {"name": "web.clawql.local", "type": "CNAME", "value": "mcp.clawql.local"},
            {"name": "info.clawql.local", "type": "TXT", "value": "hello world"},
            {"name": "big.clawql.local", "type": "TXT", "value": long_txt},
            {"name": "_mcp._tcp.clawql.local", "type": "SRV", "value": "10 5 443 mcp.clawql.local"},
        ])
        .to_string(),
    );
    until(
        addr,
        &["grafana.clawql.local", "A"],
        "100.64.9.10",
        Duration::from_secs(5),
    )
    .await;
    assert!(
        dig(addr, &["web.clawql.local", "CNAME"])
            .await
            .contains("mcp.clawql.local.")
    );
    assert!(
        dig(addr, &["info.clawql.local", "TXT"])
            .await
            .contains("\"hello world\"")
    );
    assert!(
        dig(addr, &["_mcp._tcp.clawql.local", "SRV"])
            .await
            .contains("10 5 443 mcp.clawql.local.")
    );
    // Too big for UDP: dig falls back to TCP on its own and gets it all.
    let big = dig(addr, &["big.clawql.local", "TXT"]).await;
    assert!(
        big.starts_with("NOERROR") && big.matches('x').count() >= 1500,
        "{big}"
    );
    let names: Vec<String> = state
        .world()
        .dns_config()
        .extra_records
        .iter()
        .map(|r| format!("{} {}", r.name, r.r#type))
        .collect();
    assert!(
        names.contains(&"grafana.clawql.local A".to_string()),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with(" TXT") || n.ends_with(" CNAME"))
    );

    // A broken file keeps the records in force.
    let generation = state.world().generation;
    write_atomically(&records, "[{\"name\": ");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        dig(addr, &["grafana.clawql.local", "A"])
            .await
            .contains("100.64.9.10")
    );
    assert_eq!(
        state.world().settings.dns.extra_records.len(),
        5,
        "generation {generation} records must stay"
    );

    // Policy filter: a node learns itself and the peers its policy shows.
    let other = register(&state, &plain, 3, "other").await;
    let bob = state
        .create_user("bob", "", "bob@example.com")
        .await
        .unwrap()
        .id;
    let (_, bob_key) = state
        .create_preauth_key(bob, false, false, None, vec![])
        .await
        .unwrap();
    let bobs = register(&state, &bob_key, 4, "bobs").await;
    let tailnet: Vec<IpNet> = vec![
        "100.64.0.0/10".parse().unwrap(),
        "fd7a:115c:a1e0::/48".parse().unwrap(),
    ];
    let visible = policy_filter(state.reader(), tailnet);
    let ip = |n: &Node| IpAddr::V4(n.ipv4.unwrap());
    let id = |n: &Node| n.id.0 as u64;
    assert!(
        visible(ip(&other), id(&host)),
        "alice's node may reach the service host"
    );
    assert!(visible(ip(&other), id(&other)), "itself");
    assert!(visible(ip(&host), id(&other)), "the host sees its client");
    assert!(
        !visible(ip(&bobs), id(&host)),
        "bob's node may reach nothing"
    );
    assert!(
        !visible(ip(&other), id(&bobs)),
        "and nobody may reach bob's node"
    );
    assert!(
        visible("127.0.0.1".parse().unwrap(), id(&other)),
        "operators see all"
    );
    assert!(
        !visible("100.64.200.1".parse().unwrap(), id(&other)),
        "unknown tailnet source sees nothing"
    );
}

#[test]
fn zone_data_drops_what_the_index_cannot_hold() {
    use crate::tailcfg::DnsRecord;
    let rec = |name: &str, kind: &str, value: &str| DnsRecord {
        name: name.into(),
        r#type: kind.into(),
        value: value.into(),
    };
    let settings = crate::state::Settings {
        base_domain: "clawql.local".into(),
        derp_map: Default::default(),
        dns: crate::tailcfg::DnsConfig {
            extra_records: vec![
                rec("a.clawql.local", "A", "100.64.1.1"),
                rec("a.clawql.local", "CNAME", "b.clawql.local"),
                rec("c.clawql.local", "CNAME", "b.clawql.local"),
                rec("bad.clawql.local", "A", "nope"),
            ],
            ..Default::default()
        },
        domain: "clawql.local".into(),
        certs: Default::default(),
        login_url: String::new(),
    };
    let mut w = World::new(settings, vec![], vec![]);
    w.generation = 42;
    let z = zone_data(&w, 7);
    assert_eq!((z.serial, z.ttl), (42, 7));
    let kept: Vec<&str> = z.extra.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(kept, vec!["a.clawql.local", "c.clawql.local"]);
    assert!(build_index(&z).is_ok());
}

#[test]
fn only_zone_relevant_changes_count_as_new_inputs() {
    use crate::types::{DnsLabel, UserId};
    let node = Node {
        id: crate::types::NodeId(1),
        machine_key: MachinePublic([1; 32]),
        node_key: NodePublic([2; 32]),
        disco_key: Default::default(),
        hostname: "a".into(),
        given_name: DnsLabel::from_hostname("a"),
        user_id: UserId(1),
        tags: vec![],
        ipv4: Some("100.64.0.1".parse().unwrap()),
        ipv6: None,
        endpoints: vec![],
        home_derp: 0,
        hostinfo: json!({}).into(),
        expiry: None,
        ephemeral: false,
        auth_key_id: None,
        cap_version: 133,
        created_at: chrono::Utc::now(),
        last_seen: None,
        approved_routes: vec![],
        authorized: true,
    };
    let settings = crate::state::Settings {
        base_domain: "clawql.local".into(),
        derp_map: Default::default(),
        dns: Default::default(),
        domain: "clawql.local".into(),
        certs: Default::default(),
        login_url: String::new(),
    };
    let w0 = Arc::new(World::new(settings, vec![], vec![node.clone()]));
    let mut w1 = (*w0).clone();
    let mut moved = node.clone();
    moved.endpoints = vec!["10.0.0.1:41641".into()];
    w1.put_node(Arc::new(moved));
    w1.online.insert(node.id);
    let w1 = Arc::new(w1);
    assert!(Inputs::of(&w0) == Inputs::of(&w1), "endpoints and presence");
    let mut w2 = (*w1).clone();
    let mut renamed = node.clone();
    renamed.given_name = DnsLabel::from_hostname("b");
    w2.put_node(Arc::new(renamed));
    assert!(Inputs::of(&w1) != Inputs::of(&Arc::new(w2)), "a rename");
    let mut w3 = (*w1).clone();
    w3.remove_node(node.id);
    assert!(Inputs::of(&w1) != Inputs::of(&Arc::new(w3)), "a delete");
}
