//! `DNSConfig.CertDomains` and the `https` capability in maps (`dns.certs`).

use std::sync::Arc;

use super::{frame, install, node, now, world};
use crate::certs::HTTPS;
use crate::mapper::build::{SentState, build_delta, build_full};
use crate::state::change::Change;
use crate::state::{Certs, Settings, World};
use crate::types::{DnsLabel, NodeId};

const POLICY: &str = r#"{
  "tagOwners": {"tag:mcp": ["alice@example.com"], "tag:off": ["alice@example.com"]},
  "services": {"svc:mcp": {"hosts": ["tag:mcp"], "ports": ["tcp:443"]}},
  "nodeAttrs": [{"target": ["tag:off"], "attr": ["disable-https"]}],
  "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
}"#;

fn with_certs(w: &mut World, certs: Certs) {
    let mut s: Settings = (*w.settings).clone();
    s.certs = certs;
    w.settings = Arc::new(s);
}

#[test]
fn maps_carry_cert_domains_and_https_only_when_certs_are_on() {
    let mut w = world(vec![node(1, 1, &[]), node(3, 1, &["tag:mcp"])]);
    install(&mut w, POLICY);
    let r = build_full(&w, NodeId(1), &mut SentState::default(), now()).unwrap();
    assert!(r.dns_config.unwrap().cert_domains.is_empty());
    assert!(!r.node.unwrap().cap_map.contains_key(HTTPS));

    with_certs(&mut w, Certs::AllNodes);
    let r = build_full(&w, NodeId(1), &mut SentState::default(), now()).unwrap();
    assert_eq!(r.dns_config.unwrap().cert_domains, vec!["h1.clawql.local"]);
    assert!(r.node.unwrap().cap_map.contains_key(HTTPS));
    // The service host may also prove the service's name.
    let r = build_full(&w, NodeId(3), &mut SentState::default(), now()).unwrap();
    let j = serde_json::to_value(&r).unwrap();
    assert_eq!(
        j["DNSConfig"]["CertDomains"],
        serde_json::json!(["h3.clawql.local", "mcp.clawql.local"])
    );
    assert_eq!(j["Node"]["CapMap"]["https"], serde_json::json!([]));
}

#[test]
fn policy_and_renames_move_cert_domains_in_deltas() {
    let mut w = world(vec![node(1, 1, &[]), node(2, 1, &[])]);
    with_certs(&mut w, Certs::AllNodes);
    install(&mut w, POLICY);
    let mut sent = SentState::default();
    build_full(&w, NodeId(1), &mut sent, now()).unwrap();

    // Tagged tag:off by policy: the capability and the domains go.
    let mut off = (**w.node(NodeId(1)).unwrap()).clone();
    off.tags = vec!["tag:off".into()];
    w.put_node(Arc::new(off));
    install(&mut w, POLICY);
    let mut change = Change::upsert(NodeId(1));
    change.policy.insert(NodeId(1));
    let r = frame(build_delta(&w, NodeId(1), &change, &mut sent, now()));
    assert!(!r.node.unwrap().cap_map.contains_key(HTTPS));
    assert_eq!(r.dns_config.unwrap().cert_domains, Vec::<String>::new());

    // Back on, then renamed: the new name replaces the old one.
    let mut on = (**w.node(NodeId(1)).unwrap()).clone();
    on.tags = vec![];
    on.given_name = DnsLabel::from_hostname("renamed");
    w.put_node(Arc::new(on));
    install(&mut w, POLICY);
    let r = frame(build_delta(&w, NodeId(1), &change, &mut sent, now()));
    assert!(r.node.unwrap().cap_map.contains_key(HTTPS));
    assert_eq!(
        r.dns_config.unwrap().cert_domains,
        vec!["renamed.clawql.local"]
    );
    // Nothing moved for node 1: no DNSConfig in its next delta.
    let r = build_delta(&w, NodeId(1), &Change::upsert(NodeId(2)), &mut sent, now());
    if let crate::mapper::build::Delta::Frame(r) = r {
        assert!(r.dns_config.is_none());
    }
}
