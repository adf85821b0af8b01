//! DNSConfig in maps: services and A/AAAA extra records in the full map, and
//! a delta carrying DNSConfig exactly when the client's copy is stale.

use std::sync::Arc;

use super::{frame, install, node, now, world};
use crate::mapper::build::{Delta, SentState, build_delta, build_full};
use crate::state::change::Change;
use crate::state::{Settings, World};
use crate::tailcfg::DnsRecord;
use crate::types::NodeId;

const MCP_SERVICE: &str = r#"{
  "tagOwners": {"tag:mcp": ["alice@example.com"]},
  "services": {"svc:mcp": {"hosts": ["tag:mcp"], "ports": ["tcp:443"]}},
  "acls": [{"action": "accept", "src": ["alice@example.com"], "dst": ["svc:mcp:443"]}],
}"#;

fn rec(name: &str, kind: &str, value: &str) -> DnsRecord {
    DnsRecord {
        name: name.into(),
        r#type: kind.into(),
        value: value.into(),
    }
}

fn with_records(w: &mut World, records: Vec<DnsRecord>) {
    let mut s: Settings = (*w.settings).clone();
    s.dns.extra_records = records;
    w.settings = Arc::new(s);
}

#[test]
fn full_map_carries_services_and_address_records_only() {
    let mut w = world(vec![node(1, 1, &[]), node(3, 1, &["tag:mcp"])]);
    install(&mut w, MCP_SERVICE);
    with_records(
        &mut w,
        vec![
            rec("grafana.clawql.local", "A", "100.64.0.77"),
            rec("web.clawql.local", "CNAME", "grafana.clawql.local"),
            rec("info.clawql.local", "TXT", "hello"),
        ],
    );
    let r = build_full(&w, NodeId(1), &mut SentState::default(), now()).unwrap();
    let dns = r.dns_config.unwrap();
    assert_eq!(
        dns.extra_records,
        vec![
            rec("grafana.clawql.local", "A", "100.64.0.77"),
            rec("mcp.clawql.local", "", "fd7a:115c:a1e0::3"),
            rec("mcp.clawql.local", "", "100.64.0.3"),
        ]
    );
}

#[test]
fn dns_delta_only_when_the_clients_copy_is_stale() {
    let mut w = world(vec![node(1, 1, &[]), node(2, 2, &[])]);
    let mut sent = SentState::default();
    build_full(&w, NodeId(1), &mut sent, now()).unwrap();

    // New extra records: the settings delta carries the new DNSConfig.
    with_records(
        &mut w,
        vec![rec("grafana.clawql.local", "A", "100.64.0.77")],
    );
    let r = frame(build_delta(
        &w,
        NodeId(1),
        &Change::settings(),
        &mut sent,
        now(),
    ));
    assert_eq!(r.dns_config.unwrap().extra_records.len(), 1);
    assert!(r.node.is_none() && r.peers_changed.is_empty());

    // Replaced settings with the same content: nothing to send.
    with_records(
        &mut w,
        vec![rec("grafana.clawql.local", "A", "100.64.0.77")],
    );
    assert!(matches!(
        build_delta(&w, NodeId(1), &Change::settings(), &mut sent, now()),
        Delta::Nothing
    ));

    // A policy that adds a service host's records reaches the client as a
    // DNSConfig in the policy delta; a non-DNS change later does not repeat it.
    w.put_node(Arc::new(node(3, 1, &["tag:mcp"])));
    install(&mut w, MCP_SERVICE);
    let r = frame(build_delta(
        &w,
        NodeId(1),
        &Change::policy([NodeId(1), NodeId(2), NodeId(3)]),
        &mut sent,
        now(),
    ));
    let names: Vec<String> = r
        .dns_config
        .expect("dns config in the delta")
        .extra_records
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert!(names.contains(&"mcp.clawql.local".to_string()), "{names:?}");
    w.put_node(Arc::new(node(2, 2, &["tag:other"])));
    let d = build_delta(&w, NodeId(1), &Change::upsert(NodeId(2)), &mut sent, now());
    if let Delta::Frame(r) = d {
        assert!(r.dns_config.is_none());
    }
}
