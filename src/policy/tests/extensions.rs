//! clawscale's extensions and how they meet the rest of the policy:
//! ordered `deny` rules (with grants, peers, SSH, `tests`, `explain`),
//! TailOpsMCP's service syntax, Funnel's node attribute, and `--strict`.

use super::node;
use crate::policy::{Policy, TopoUser, Topology};

/// alice (group:mcp-users), bob and carol (group:contractors); n1 alice,
/// n2 bob, n3 the MCP host (100.64.0.3, tag:mcp-host and tag:server), n4
/// carol, n5 another tag:server, n6 a tag:systemmanager-client, n7 a
/// tag:systemmanager-server.
fn topo() -> Topology {
    let user = |id: u64, name: &str| TopoUser {
        id,
        name: name.into(),
        login: format!("{name}@example.com"),
        groups: vec![],
    };
    Topology::new(
        vec![user(1, "alice"), user(2, "bob"), user(3, "carol")],
        vec![
            node(1, Some(1), &[]),
            node(2, Some(2), &[]),
            node(3, None, &["tag:mcp-host", "tag:server"]),
            node(4, Some(3), &[]),
            node(5, None, &["tag:server"]),
            node(6, None, &["tag:systemmanager-client"]),
            node(7, None, &["tag:systemmanager-server"]),
        ],
    )
}

const HEAD: &str = r#"
  "groups": {"group:mcp-users": ["alice@example.com"],
             "group:contractors": ["bob@example.com", "carol@example.com"]},
  "tagOwners": {"tag:server": [], "tag:mcp-host": [], "tag:systemmanager-client": [],
                "tag:systemmanager-server": []},
  "hosts": {"mcp-host": "100.64.0.3", "n5": "100.64.0.5"},
"#;

fn policy(body: &str) -> Policy {
    Policy::parse(&format!("{{{HEAD}{body}}}")).expect("policy parses")
}

/// Members of group:mcp-users reach port 3010 on the MCP host, nobody
/// reaches anything else there; everything else stays open.
const MCP_ONLY: &str = r#""acls": [
    {"action": "accept", "src": ["group:mcp-users"], "dst": ["tag:mcp-host:3010"]},
    {"action": "deny",   "src": ["*"],              "dst": ["tag:mcp-host:*"]},
    {"action": "accept", "src": ["*"],              "dst": ["*:*"]},
]"#;

#[test]
fn a_deny_after_an_accept_closes_the_rest_of_the_host() {
    let c = policy(MCP_ONLY).compile(&topo());
    let e = c.explain(1, 3, 3010, Some(6));
    assert!(e.allowed, "{e}");
    assert_eq!(e.rules, vec!["acls[0]"]);
    for (src, port) in [(1, 22), (1, 8080), (2, 3010), (4, 22)] {
        let e = c.explain(src, 3, port, Some(6));
        assert!(!e.allowed, "n{src} → mcp-host:{port}: {e}");
        assert_eq!(e.denied_by.as_deref(), Some("acls[1]"), "{e}");
        assert_eq!(e.to_string(), "denied by acls[1] (a deny rule)");
    }
    // The host's filter admits alice on 3010 and nothing else.
    let host = c.node(3).expect("host");
    assert!(!host.packet_filter.is_empty());
    for r in host.packet_filter.iter() {
        assert!(
            r.dst_ports
                .iter()
                .all(|d| (d.ports.first, d.ports.last) == (3010, 3010)),
            "{r:?}"
        );
        assert_eq!(*r.src_ips, vec!["100.64.0.1", "fd7a:115c:a1e0::1"], "{r:?}");
    }
    // Everything else stays reachable: the catch-all accept is below.
    assert!(c.explain(2, 5, 22, Some(6)).allowed);
    assert!(c.explain(2, 3, 22, Some(6)).rules.is_empty());
}

#[test]
fn a_hosts_entry_is_one_address() {
    // `mcp-host` names the IPv4 address only: the node's IPv6 address is
    // not covered by the deny, and the catch-all still reaches it.
    let c = policy(
        r#""acls": [
        {"action": "deny",   "src": ["*"], "dst": ["mcp-host:*"]},
        {"action": "accept", "src": ["*"], "dst": ["*:*"]},
    ]"#,
    )
    .compile(&topo());
    let host = c.node(3).expect("host");
    let dsts: Vec<&str> = host
        .packet_filter
        .iter()
        .flat_map(|r| r.dst_ports.iter().map(|d| d.ip.as_str()))
        .collect();
    assert_eq!(dsts, vec!["fd7a:115c:a1e0::3"]);
}

#[test]
fn an_exception_deny_before_a_broad_accept() {
    let c = policy(
        r#""acls": [
        {"action": "deny",   "src": ["group:contractors"], "dst": ["tag:server:22"], "proto": "tcp"},
        {"action": "accept", "src": ["autogroup:member"],  "dst": ["tag:server:*"]},
    ]"#,
    )
    .compile(&topo());
    for server in [3, 5] {
        assert!(c.explain(1, server, 22, Some(6)).allowed, "alice may ssh");
        assert!(
            c.explain(2, server, 80, Some(6)).allowed,
            "bob may use the web"
        );
        assert!(
            c.explain(2, server, 22, Some(17)).allowed,
            "the deny is TCP only"
        );
        let e = c.explain(4, server, 22, Some(6));
        assert_eq!(e.denied_by.as_deref(), Some("acls[0]"), "{e}");
    }
}

#[test]
fn a_deny_that_removes_all_access_removes_the_peer_too() {
    let c = policy(
        r#""acls": [
        {"action": "deny",   "src": ["group:contractors"], "dst": ["tag:server:*"]},
        {"action": "accept", "src": ["autogroup:member"],  "dst": ["tag:server:*"]},
    ]"#,
    )
    .compile(&topo());
    let bob = c.node(2).expect("bob");
    assert!(bob.peers.is_empty(), "{:?}", bob.peers);
    let server = c.node(3).expect("server");
    assert_eq!(server.peers.ids().collect::<Vec<_>>(), vec![1]);
    assert!(c.node(1).expect("alice").peers.contains(3));
}

#[test]
fn grants_come_after_every_acl_so_a_deny_applies_to_them() {
    let body = r#""acls": [{"action": "deny", "src": ["bob@example.com"], "dst": ["tag:server:22"]}],
        "grants": [{"src": ["autogroup:member"], "dst": ["tag:server"], "ip": ["tcp:22", "tcp:443"],
                    "app": {"example.com/cap/admin": [{}]}}]"#;
    let c = policy(body).compile(&topo());
    assert!(c.explain(1, 3, 22, Some(6)).allowed);
    assert!(c.explain(2, 3, 443, Some(6)).allowed);
    let e = c.explain(2, 3, 22, Some(6));
    assert_eq!(e.denied_by.as_deref(), Some("acls[0]"), "{e}");
    // App capabilities are not traffic: the deny leaves them alone.
    let bob = "100.64.0.2".parse().expect("ip");
    assert!(c.whois_caps(bob, 3).contains_key("example.com/cap/admin"));
}

#[test]
fn ssh_rules_are_not_affected_by_denies() {
    let c = policy(
        r#""acls": [{"action": "deny", "src": ["*"], "dst": ["tag:server:*"]}],
        "ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:server"], "users": ["root"]}]"#,
    )
    .compile(&topo());
    let ssh = c.node(3).expect("server").ssh_policy.expect("ssh policy");
    assert_eq!(ssh.rules.len(), 1);
    assert!(c.node(3).expect("server").packet_filter.is_empty());
}

#[test]
fn tests_see_the_denies() {
    let check = |tests: &str| {
        policy(&format!("{MCP_ONLY}, \"tests\": [{tests}]"))
            .check(&topo())
            .map_err(|e| e.to_string())
    };
    check(r#"{"src": "alice@example.com", "accept": ["tag:mcp-host:3010"], "deny": ["tag:mcp-host:22"]},
             {"src": "bob@example.com", "accept": ["n5:22"], "deny": ["tag:mcp-host:3010"]}"#)
        .expect("the tests hold");
    // tag:server includes the MCP host, closed to bob on 22.
    let e = check(r#"{"src": "bob@example.com", "accept": ["tag:server:22"]}"#).unwrap_err();
    assert!(
        e.contains("tests[0]") && e.contains("accepted but is not"),
        "{e}"
    );
    let e = check(r#"{"src": "alice@example.com", "deny": ["tag:mcp-host:3010"]}"#).unwrap_err();
    assert!(e.contains("denied but is not"), "{e}");
}

#[test]
fn a_deny_cannot_name_icmp() {
    let e = Policy::parse(
        r#"{"acls": [{"action": "deny", "src": ["*"], "proto": "icmp", "dst": ["*:*"]}]}"#,
    )
    .unwrap_err();
    assert!(e.message.contains("cannot name ICMP"), "{e}");
    assert_eq!(e.position, Some((1, 53)), "{e}");
}

/// TailOpsMCP's service syntax, as its tailnet guide writes it.
const TAILOPS: &str = r#""services": {"svc:systemmanager-mcp": {"protocol": "tcp", "port": 8080,
        "tags": ["tag:systemmanager-server"], "allowedTags": ["tag:systemmanager-client"]}},
    "acls": []"#;

#[test]
fn tailops_services_imply_a_grant_to_their_allowed_tags() {
    let p = policy(TAILOPS);
    let svc = p.services();
    assert_eq!(svc[0].name, "systemmanager-mcp");
    assert_eq!(svc[0].hosts, vec!["tag:systemmanager-server"]);
    assert_eq!(svc[0].ports, vec![(vec![6], 8080, 8080)]);
    let c = p.compile(&topo());
    let e = c.explain(6, 7, 8080, Some(6));
    assert!(e.allowed, "{e}");
    assert_eq!(
        e.rules,
        vec![r#"services["svc:systemmanager-mcp"].allowedTags"#]
    );
    assert!(!c.explain(6, 7, 22, Some(6)).allowed);
    assert!(!c.explain(6, 7, 8080, Some(17)).allowed);
    assert!(!c.explain(1, 7, 8080, Some(6)).allowed, "an untagged node");
    assert_eq!(
        c.node(6).expect("client").peers.ids().collect::<Vec<_>>(),
        vec![7]
    );
    assert!(c.node(1).expect("alice").peers.is_empty());
    let names = c.service_addrs();
    assert_eq!(names[0].0, "systemmanager-mcp");
    assert_eq!(names[0].1[0].to_string(), "100.64.0.7");
    // Host tags must be tags, and defined.
    let e = Policy::parse(&format!(
        "{{{HEAD}\"services\": {{\"svc:x\": {{\"port\": 1, \"tags\": [\"tag:nope\"]}}}}}}"
    ))
    .unwrap_err();
    assert!(e.message.contains("tag not found"), "{e}");
    let e = Policy::parse(&format!(
        "{{{HEAD}\"services\": {{\"svc:x\": {{\"port\": 0, \"tags\": [\"tag:server\"]}}}}}}"
    ))
    .unwrap_err();
    assert!(e.message.contains("port 0"), "{e}");
}

#[test]
fn funnel_reaches_the_cap_map_as_the_hosted_plane_sends_it() {
    let p = policy(r#""nodeAttrs": [{"target": ["tag:server"], "attr": ["funnel"]}]"#);
    let c = p.compile(&topo());
    let caps = c.node(3).expect("server").cap_map;
    assert!(caps.contains_key("funnel"), "{caps:?}");
    assert!(
        caps.contains_key("https://tailscale.com/cap/funnel-ports?ports=443,8443,10000"),
        "{caps:?}"
    );
    assert!(c.node(1).expect("alice").cap_map.is_empty());
}

#[test]
fn strict_mode_refuses_every_extension() {
    for (body, what) in [
        (MCP_ONLY, "deny"),
        (TAILOPS, "services"),
        (
            r#""services": {"svc:a": {"hosts": ["tag:server"], "ports": ["tcp:443"]}}, "acls": []"#,
            "services",
        ),
    ] {
        let text = format!("{{{HEAD}{body}}}");
        assert!(
            !Policy::parse(&text)
                .expect("parses")
                .extensions()
                .is_empty()
        );
        let e = Policy::parse_strict(&text).expect_err(what);
        assert!(
            e.message.contains(what) && e.message.contains("strict"),
            "{e}"
        );
        assert!(e.position.is_some(), "{e}");
    }
    let plain = format!(
        "{{{HEAD}\"acls\": [{{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:*\"]}}]}}"
    );
    assert!(Policy::parse_strict(&plain).is_ok());
}
