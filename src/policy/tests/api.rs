//! Unit tests of the public API beyond the conformance cases: services
//! (`svc:NAME`), `check_tags`, `explain`, `auto_approved_routes`.

use std::net::IpAddr;

use super::node;
use crate::policy::{Claimant, Policy, TopoUser, Topology};

/// alice (1) and bob (2); n1 alice, n2 bob, n3 tag:mcp-server,
/// n4 tag:other, n5 tag:mcp-server.
fn topo() -> Topology {
    let user = |id: u64, name: &str| TopoUser {
        id,
        name: name.into(),
        login: format!("{name}@example.com"),
        groups: vec![],
    };
    Topology::new(
        vec![user(1, "alice"), user(2, "bob")],
        vec![
            node(1, Some(1), &[]),
            node(2, Some(2), &[]),
            node(3, None, &["tag:mcp-server"]),
            node(4, None, &["tag:other"]),
            node(5, None, &["tag:mcp-server"]),
        ],
    )
}

const HEAD: &str = r#"
  "tagOwners": {"tag:mcp-server": ["alice@example.com"], "tag:other": ["tag:mcp-server"]},
  "services": {"svc:mcp": {"hosts": ["tag:mcp-server"], "ports": ["tcp:443", "tcp:8443"]}},
"#;

fn policy(body: &str) -> Policy {
    Policy::parse(&format!("{{{HEAD}{body}}}")).expect("policy parses")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[test]
fn acl_to_service_restricts_to_declared_ports_and_hosts() {
    let p = policy(
        r#""acls": [{"action": "accept", "src": ["alice@example.com"], "dst": ["svc:mcp:*"]}]"#,
    );
    let c = p.compile(&topo());
    for host in [3, 5] {
        let out = c.node(host).expect("host");
        let rules = &out.packet_filter;
        assert_eq!(rules.len(), 1, "{rules:?}");
        assert_eq!(*rules[0].src_ips, vec!["100.64.0.1", "fd7a:115c:a1e0::1"]);
        assert_eq!(rules[0].ip_proto, vec![6]);
        let ports: Vec<(u16, u16)> = rules[0]
            .dst_ports
            .iter()
            .map(|d| (d.ports.first, d.ports.last))
            .collect();
        assert!(ports.contains(&(443, 443)) && ports.contains(&(8443, 8443)));
        assert!(ports.iter().all(|p| *p == (443, 443) || *p == (8443, 8443)));
        // The host sees its client.
        assert!(out.peers.contains(1));
    }
    // The client sees exactly the hosts; others see nothing.
    let alice = c.node(1).expect("alice");
    assert_eq!(alice.peers.ids().collect::<Vec<_>>(), vec![3, 5]);
    assert!(alice.packet_filter.is_empty());
    assert!(c.node(2).expect("bob").peers.is_empty());
    assert!(c.node(4).expect("n4").packet_filter.is_empty());
}

#[test]
fn acl_service_single_port_inside_declaration() {
    let p = policy(
        r#""acls": [{"action": "accept", "src": ["bob@example.com"], "dst": ["svc:mcp:443"]}]"#,
    );
    let out = p.compile(&topo()).node(3).expect("host");
    let dp: Vec<(u16, u16)> = out.packet_filter[0]
        .dst_ports
        .iter()
        .map(|d| (d.ports.first, d.ports.last))
        .collect();
    assert_eq!(dp, vec![(443, 443), (443, 443)]); // v4 and v6 address
    assert_eq!(out.packet_filter[0].dst_ports[0].ip, "100.64.0.3");
}

#[test]
fn service_port_outside_declaration_is_rejected_with_position() {
    let src = format!(
        "{{{HEAD}\n  \"acls\": [\n    {{\"action\": \"accept\", \"src\": [\"*\"],\n     \"dst\": [\"svc:mcp:80\"]}}]}}"
    );
    let e = Policy::parse(&src).expect_err("port 80 is not declared");
    assert!(e.message.contains("port 80"), "{e}");
    assert_eq!(e.position, Some((7, 14)), "{e}");

    // Grants: the offending `ip` entry carries the position.
    let src = format!(
        "{{{HEAD}\n  \"grants\": [{{\"src\": [\"*\"], \"dst\": [\"svc:mcp\"],\n    \"ip\": [\"tcp:443\", \"udp:443\"]}}]}}"
    );
    let e = Policy::parse(&src).expect_err("udp is not declared");
    assert_eq!(e.position, Some((6, 23)), "{e}");
    assert!(e.message.contains("port 443 (IP protocol [17])"), "{e}");
    // A range partly outside is rejected too.
    let e = Policy::parse(&format!(
        "{{{HEAD}\"acls\": [{{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"svc:mcp:443-444\"]}}]}}"
    ))
    .expect_err("444 is not declared");
    assert!(e.message.contains("443-444"), "{e}");
    // Unknown service.
    let e = Policy::parse(&format!(
        "{{{HEAD}\"acls\": [{{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"svc:nope:443\"]}}]}}"
    ))
    .expect_err("unknown service");
    assert!(e.message.contains("svc:nope"), "{e}");
}

#[test]
fn grant_to_service_with_ip_and_app() {
    let p = policy(
        r#""grants": [{"src": ["alice@example.com"], "dst": ["svc:mcp"], "ip": ["*"],
            "app": {"clawql.dev/cap/mcp": [{"tools": ["search_*"], "servers": ["svc:mcp"]}]}}]"#,
    );
    let c = p.compile(&topo());
    let out = c.node(5).expect("host");
    let net: Vec<_> = out
        .packet_filter
        .iter()
        .filter(|r| r.cap_grant.is_empty())
        .collect();
    assert_eq!(net.len(), 1);
    assert_eq!(net[0].ip_proto, vec![6]);
    assert!(
        net[0]
            .dst_ports
            .iter()
            .all(|d| [443, 8443].contains(&d.ports.first))
    );
    // App capability flows to whois unchanged, only for the granted source.
    let caps = c.whois_caps(ip("100.64.0.1"), 5);
    assert_eq!(
        caps["clawql.dev/cap/mcp"],
        vec![serde_json::json!({"tools": ["search_*"], "servers": ["svc:mcp"]})]
    );
    assert!(c.whois_caps(ip("100.64.0.2"), 5).is_empty());
    assert!(c.whois_caps(ip("100.64.0.1"), 4).is_empty());
}

#[test]
fn service_addrs_lists_hosts() {
    let p = policy(r#""acls": []"#);
    let c = p.compile(&topo());
    let sa = c.service_addrs();
    assert_eq!(sa.len(), 1);
    assert_eq!(sa[0].0, "mcp");
    let mut want = vec![
        ip("100.64.0.3"),
        ip("100.64.0.5"),
        ip("fd7a:115c:a1e0::3"),
        ip("fd7a:115c:a1e0::5"),
    ];
    want.sort();
    assert_eq!(sa[0].1, want);
    let svc = p.services();
    assert_eq!(svc[0].hosts, vec!["tag:mcp-server"]);
    assert_eq!(
        svc[0].ports,
        vec![(vec![6], 443, 443), (vec![6], 8443, 8443)]
    );
}

#[test]
fn check_tags_by_owner() {
    let p = policy(r#""acls": []"#);
    let alice = Claimant::User {
        login: "alice@example.com",
    };
    let bob = Claimant::User {
        login: "bob@example.com",
    };
    let t = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert!(p.check_tags(&alice, &t(&["tag:mcp-server"])).is_ok());
    let e = p
        .check_tags(&bob, &t(&["tag:mcp-server"]))
        .expect_err("bob owns nothing");
    assert!(e.message.contains("tag:mcp-server"), "{e}");
    // Tags owning tags: a tag:mcp-server key may claim tag:other.
    let server = t(&["tag:mcp-server"]);
    assert!(
        p.check_tags(&Claimant::Tags(&server), &t(&["tag:other"]))
            .is_ok()
    );
    // ...but tag:other does not own tag:mcp-server (only keeps its own).
    let other = t(&["tag:other"]);
    assert!(
        p.check_tags(&Claimant::Tags(&other), &t(&["tag:mcp-server"]))
            .is_err()
    );
    assert!(p.check_tags(&Claimant::Tags(&other), &other).is_ok());
    // Undefined tag.
    let e = p
        .check_tags(&alice, &t(&["tag:nope"]))
        .expect_err("undefined");
    assert!(e.message.contains("tagOwners"), "{e}");
}

#[test]
fn explain_names_rules_or_reason() {
    let p = policy(
        r#""acls": [
          {"action": "accept", "src": ["alice@example.com"], "dst": ["tag:other:22"]},
          {"action": "accept", "src": ["autogroup:member"], "dst": ["tag:other:22,80"]}],
        "grants": [{"src": ["bob@example.com"], "dst": ["svc:mcp"], "ip": ["tcp:443"]}]"#,
    );
    let c = p.compile(&topo());
    let e = c.explain(1, 4, 22, Some(6));
    assert!(e.allowed);
    assert_eq!(e.rules, vec!["acls[0]", "acls[1]"]);
    assert_eq!(e.to_string(), "allowed by acls[0], acls[1]");
    let e = c.explain(2, 4, 80, None);
    assert_eq!(e.rules, vec!["acls[1]"]);
    let e = c.explain(2, 4, 443, Some(6));
    assert!(!e.allowed);
    assert!(e.to_string().starts_with("denied: "));
    let e = c.explain(2, 3, 443, Some(6));
    assert_eq!(e.rules, vec!["grants[0]"]);
    assert!(!c.explain(2, 3, 443, Some(17)).allowed);
    assert!(!c.explain(2, 3, 8443, Some(6)).allowed);
    assert!(!c.explain(1, 99, 22, None).allowed);
}

#[test]
fn auto_approved_routes_per_node() {
    let p = policy(
        r#""acls": [],
        "autoApprovers": {"routes": {"10.0.0.0/8": ["tag:mcp-server"]}, "exitNode": ["alice@example.com"],
                          "services": {"svc:mcp": ["tag:mcp-server"]}}"#,
    );
    let mut t = topo();
    let nets = |v: &[&str]| {
        v.iter()
            .map(|s| s.parse().expect("net"))
            .collect::<Vec<ipnet::IpNet>>()
    };
    std::sync::Arc::make_mut(&mut t.nodes[2]).routable_ips =
        nets(&["10.1.0.0/16", "192.168.0.0/24", "0.0.0.0/0"]);
    std::sync::Arc::make_mut(&mut t.nodes[0]).routable_ips =
        nets(&["0.0.0.0/0", "::/0", "10.2.0.0/16"]);
    assert_eq!(p.auto_approved_routes(&t, 3), nets(&["10.1.0.0/16"]));
    assert_eq!(p.auto_approved_routes(&t, 1), nets(&["0.0.0.0/0", "::/0"]));
    assert!(p.auto_approved_routes(&t, 2).is_empty());
    assert!(p.auto_approved_routes(&t, 42).is_empty());
}

/// Read from a node and its owner alone, auto-approval is what it is in
/// the whole tailnet, for every kind of approver selector.
#[test]
fn auto_approved_routes_of_one_node_match_the_whole_topology() {
    let p = Policy::parse(
        r#"{"groups": {"group:routers": ["bob@example.com"]},
            "tagOwners": {"tag:mcp-server": ["alice@example.com"]},
            "autoApprovers": {"routes": {
                "10.1.0.0/16": ["group:routers"],
                "10.2.0.0/16": ["alice@example.com", "tag:mcp-server"],
                "10.3.0.0/16": ["autogroup:member"],
                "10.6.0.0/16": ["*@example.com"]},
              "exitNode": ["autogroup:tagged"]}}"#,
    )
    .expect("policy parses");
    let mut t = topo();
    for n in &mut t.nodes {
        let n = std::sync::Arc::make_mut(n);
        n.routable_ips = ["10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24", "10.6.0.0/24"]
            .iter()
            .chain(&["0.0.0.0/0", "10.9.0.0/24"])
            .map(|s| s.parse().expect("net"))
            .collect();
    }
    let mut seen = std::collections::BTreeSet::new();
    for n in &t.nodes {
        let owner = n
            .user
            .and_then(|u| t.users.iter().find(|x| x.id == u).cloned());
        let whole = p.auto_approved_routes(&t, n.id);
        assert_eq!(
            p.auto_approved_routes_of(owner, (**n).clone()),
            whole,
            "node {}",
            n.id
        );
        seen.insert(whole);
    }
    // The nodes differ in what they may route, so the comparison says something.
    assert!(seen.len() >= 3, "{seen:?}");
}

/// The members of one user's devices get one `autogroup:self` source list
/// between them, not a copy each (it was most of a team member's filter
/// memory at 100 devices per user).
#[test]
fn autogroup_self_sources_are_shared_between_a_users_devices() {
    let p = Policy::parse(
        r#"{"grants": [{"src": ["autogroup:member"], "dst": ["autogroup:self"], "ip": ["*"]}]}"#,
    )
    .expect("policy parses");
    let mut t = topo();
    t.nodes.push(node(6, Some(1), &[]).into());
    t.nodes.push(node(7, Some(2), &[]).into());
    let c = p.compile(&t);
    let srcs = |id: u64| {
        let out = c.node_arc(id).expect("node");
        assert_eq!(out.packet_filter.len(), 1, "{:?}", out.packet_filter);
        out.packet_filter[0].src_ips.clone()
    };
    let (a1, a6, b2, b7) = (srcs(1), srcs(6), srcs(2), srcs(7));
    assert_eq!(
        *a1,
        vec![
            "100.64.0.1",
            "100.64.0.6",
            "fd7a:115c:a1e0::1",
            "fd7a:115c:a1e0::6"
        ]
    );
    assert!(
        std::sync::Arc::ptr_eq(&a1, &a6),
        "alice's devices hold copies"
    );
    assert!(
        std::sync::Arc::ptr_eq(&b2, &b7),
        "bob's devices hold copies"
    );
    assert!(!std::sync::Arc::ptr_eq(&a1, &b2));
}

/// A peer that routes only its own addresses is kept as an id; one that
/// routes a subnet keeps its output, and `peer_outputs` gives both in full.
#[test]
fn plain_peers_are_kept_as_ids_and_routers_with_their_routes() {
    let mut t = topo();
    let route: ipnet::IpNet = "10.1.0.0/16".parse().expect("net");
    std::sync::Arc::make_mut(&mut t.nodes[2]).approved_routes = vec![route];
    let p = policy(r#""acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]"#);
    let c = p.compile(&t);
    let alice = c.node(1).expect("alice");
    assert_eq!(alice.peers.ids().collect::<Vec<_>>(), vec![2, 3, 4, 5]);
    for plain in [2, 4, 5] {
        assert!(alice.peers.contains(plain));
        assert_eq!(alice.peers.routed(plain), None, "n{plain} is plain");
    }
    let router = alice.peers.routed(3).expect("n3 routes a subnet");
    assert_eq!(router.primary_routes, vec![route]);
    assert!(!alice.peers.contains(1) && !alice.peers.contains(6));

    let full = c.peer_outputs(1).expect("alice");
    let by_id: std::collections::BTreeMap<u64, crate::policy::PeerOutput> =
        full.into_iter().collect();
    assert_eq!(by_id.len(), 4);
    assert_eq!(by_id[&3], *router);
    let own = |id: u64| {
        vec![
            ip(&format!("100.64.0.{id}")),
            ip(&format!("fd7a:115c:a1e0::{id}")),
        ]
    };
    assert!(!router.is_own(&own(3)));
    for plain in [2, 4, 5] {
        assert_eq!(by_id[&plain], crate::policy::PeerOutput::own(&own(plain)));
        assert!(by_id[&plain].is_own(&own(plain)));
        assert_eq!(
            by_id[&plain].allowed_ips,
            own(plain)
                .into_iter()
                .map(ipnet::IpNet::from)
                .collect::<Vec<_>>()
        );
    }
}

/// `disable-ipv4` on either side withholds the peer's IPv4 address, so
/// such a peer is kept with its output even though it routes nothing.
#[test]
fn a_peer_without_its_ipv4_is_not_kept_as_plain() {
    let p = policy(
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
           "nodeAttrs": [{"target": ["tag:other"], "attr": ["disable-ipv4"]}]"#,
    );
    let c = p.compile(&topo());
    let v6_only = |id: u64| vec![ipnet::IpNet::from(ip(&format!("fd7a:115c:a1e0::{id}")))];
    let alice = c.node(1).expect("alice");
    assert_eq!(alice.peers.routed(2), None, "bob is plain to alice");
    let other = alice.peers.routed(4).expect("n4 has disable-ipv4");
    assert_eq!(other.allowed_ips, v6_only(4));
    assert!(other.primary_routes.is_empty());
    // The viewer's own attribute withholds every peer's IPv4.
    let n4 = c.node(4).expect("n4");
    for id in [1, 2, 3, 5] {
        let out = n4.peers.routed(id).expect("withheld for n4");
        assert_eq!(out.allowed_ips, v6_only(id));
    }
}
