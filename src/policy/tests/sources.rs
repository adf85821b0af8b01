//! How a rule's sources are written in the edge cases Tailscale treats
//! specially: a grant with no sources written, one whose sources match
//! nothing, `autogroup:danger-all`, and SSH principals selected by
//! `autogroup:tagged`.

use super::node;
use crate::policy::{NodeOutput, Policy, TopoUser, Topology};
use crate::tailcfg::FilterRule;

/// alice's n1, n2 tagged `tag:server`, n3 tagged `tag:a` and `tag:b`.
fn topo() -> Topology {
    let alice = TopoUser {
        id: 1,
        name: "alice".into(),
        login: "alice@example.com".into(),
        groups: vec![],
    };
    Topology::new(
        vec![alice],
        vec![
            node(1, Some(1), &[]),
            node(2, None, &["tag:server"]),
            node(3, None, &["tag:a", "tag:b"]),
        ],
    )
}

/// The server's (n2) output under `body`.
fn server(body: &str) -> NodeOutput {
    let owners = r#"["alice@example.com"]"#;
    let text = format!(
        r#"{{"tagOwners": {{"tag:server": {owners}, "tag:a": {owners}, "tag:b": {owners}}},
            "groups": {{"group:empty": []}}, {body}}}"#
    );
    let p = Policy::parse(&text).expect("policy parses");
    p.compile(&topo()).node(2).expect("server")
}

fn server_filter(body: &str) -> Vec<FilterRule> {
    server(body).packet_filter.to_vec()
}

/// The principals of the server's one SSH rule under `body`.
fn ssh_principals(body: &str) -> Vec<String> {
    let out = server(body);
    let rules = &out.ssh_policy.as_ref().expect("ssh policy").rules;
    assert_eq!(rules.len(), 1, "{rules:?}");
    rules[0]
        .principals
        .iter()
        .map(|p| p.node_ip.clone())
        .collect()
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

#[test]
fn autogroup_tagged_lists_a_node_once_per_tag_among_ssh_principals() {
    let ssh = |src: &str| {
        ssh_principals(&format!(
            r#""ssh": [{{"action": "accept", "src": [{src}], "dst": ["tag:server"],
                "users": ["root"]}}]"#
        ))
    };
    let n3 = ["100.64.0.3", "fd7a:115c:a1e0::3"].map(String::from);
    let count = |p: &[String], ip: &str| p.iter().filter(|x| *x == ip).count();
    let by_group = ssh(r#""autogroup:tagged""#);
    for ip in &n3 {
        assert_eq!(count(&by_group, ip), 2, "{by_group:?}");
    }
    // The server itself (one tag) once; alice's untagged n1 not at all.
    assert_eq!(count(&by_group, "100.64.0.2"), 1, "{by_group:?}");
    assert_eq!(count(&by_group, "100.64.0.1"), 0, "{by_group:?}");
    // Named by one of its tags, a node is listed once.
    let by_tag = ssh(r#""tag:a""#);
    assert_eq!(by_tag, n3.to_vec());
}
