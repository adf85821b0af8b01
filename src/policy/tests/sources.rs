//! How a rule's sources are written into the filter in the edge cases
//! Tailscale treats specially: a grant with no sources written, one whose
//! sources match nothing, and `autogroup:danger-all`.

use std::net::Ipv4Addr;

use crate::policy::{Policy, TopoNode, TopoUser, Topology};
use crate::tailcfg::FilterRule;

/// alice's n1, and n2 tagged `tag:server`.
fn topo() -> Topology {
    let node = |id: u64, user: Option<u64>, tags: &[&str]| TopoNode {
        id,
        name: format!("n{id}"),
        hostname: format!("n{id}"),
        user,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ipv4: Some(Ipv4Addr::new(100, 64, 0, id as u8)),
        ipv6: Some(format!("fd7a:115c:a1e0::{id}").parse().expect("v6")),
        ..Default::default()
    };
    let alice = TopoUser {
        id: 1,
        name: "alice".into(),
        login: "alice@example.com".into(),
        groups: vec![],
    };
    Topology::new(
        vec![alice],
        vec![node(1, Some(1), &[]), node(2, None, &["tag:server"])],
    )
}

/// The server's (n2) filter under `body`.
fn server_filter(body: &str) -> Vec<FilterRule> {
    let text = format!(
        r#"{{"tagOwners": {{"tag:server": ["alice@example.com"]}},
            "groups": {{"group:empty": []}}, {body}}}"#
    );
    let p = Policy::parse(&text).expect("policy parses");
    let c = p.compile(&topo());
    c.node(2).expect("server").packet_filter.to_vec()
}

#[test]
fn an_app_grant_with_no_sources_written_grants_nothing() {
    let rules = server_filter(
        r#""grants": [{"src": [], "dst": ["tag:server"], "app": {"example.com/cap/x": [{}]}}]"#,
    );
    assert_eq!(rules, vec![]);
}

#[test]
fn an_app_grant_whose_sources_match_nothing_is_still_sent() {
    let rules = server_filter(
        r#""grants": [{"src": ["group:empty"], "dst": ["tag:server"],
            "app": {"example.com/cap/x": [{}]}}]"#,
    );
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert!(rules[0].src_ips.is_empty());
    assert_eq!(rules[0].cap_grant.len(), 1);
    assert_eq!(
        rules[0].cap_grant[0].dsts,
        vec![
            "100.64.0.2/32".to_string(),
            "fd7a:115c:a1e0::2/128".to_string()
        ]
    );
}

#[test]
fn danger_all_sources_are_written_as_the_wildcard() {
    let rules = server_filter(
        r#""grants": [{"src": ["autogroup:danger-all"], "dst": ["tag:server"], "ip": ["tcp:22"]}]"#,
    );
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(*rules[0].src_ips, vec!["*".to_string()]);
    // Together with narrower sources the union is still everything.
    let rules = server_filter(
        r#""acls": [{"action": "accept", "src": ["autogroup:danger-all", "alice@example.com"],
            "dst": ["tag:server:22"]}]"#,
    );
    assert_eq!(*rules[0].src_ips, vec!["*".to_string()]);
    // `*` is the tailnet's own ranges (and approved routes), never `*`.
    let rules =
        server_filter(r#""acls": [{"action": "accept", "src": ["*"], "dst": ["tag:server:22"]}]"#);
    assert!(!rules[0].src_ips.contains(&"*".to_string()));
    assert!(
        rules[0]
            .src_ips
            .contains(&"fd7a:115c:a1e0::/48".to_string())
    );
}
