//! Property test of ordered `deny` rules: for random policies mixing
//! accepts and denies (fixed seed) over a random small tailnet, the packet
//! filter compiled for each node allows exactly what first-match
//! evaluation of the policy as written allows, probe by probe, as
//! tailscaled's filter evaluates it (ports for TCP/UDP/SCTP; ICMP answered
//! whenever anything is allowed; other protocols only with all ports). And
//! two nodes see each other exactly when some traffic between them is
//! allowed.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use super::rng::Rng;
use crate::policy::compile::first_match::{Probe, first_match};
use crate::policy::resolve::ipset::IpSet;
use crate::policy::{Policy, TopoNode, TopoUser, Topology};
use crate::tailcfg::FilterRule;

const USERS: [&str; 3] = ["ann@example.com", "bob@example.com", "cid@example.org"];
const TAGS: [&str; 3] = ["tag:web", "tag:db", "tag:router"];
const SUBNET: &str = "10.1.0.0/16";

fn topology(rng: &mut Rng) -> Topology {
    let users = USERS
        .iter()
        .enumerate()
        .map(|(i, l)| TopoUser {
            id: i as u64 + 1,
            name: l.split('@').next().unwrap_or(l).into(),
            login: l.to_string(),
            groups: vec![],
        })
        .collect();
    let count = 4 + rng.below(4);
    let nodes = (1..=count)
        .map(|id| {
            let mut n = TopoNode {
                id,
                name: format!("n{id}"),
                hostname: format!("n{id}"),
                ipv4: Some(Ipv4Addr::new(100, 64, 0, id as u8)),
                ipv6: Some(format!("fd7a:115c:a1e0::{id:x}").parse().expect("v6")),
                ..Default::default()
            };
            // The first node routes the subnet; the rest are users' devices
            // or tagged.
            if id == 1 {
                n.tags = vec!["tag:router".into()];
                n.approved_routes = vec![SUBNET.parse().expect("net")];
                n.routable_ips = n.approved_routes.clone();
            } else if rng.chance(3) {
                n.tags = vec![TAGS[rng.below(2) as usize].into()];
            } else {
                n.user = Some(1 + rng.below(USERS.len() as u64));
            }
            n
        })
        .collect();
    Topology::new(users, nodes)
}

fn pick<'a>(rng: &mut Rng, v: &[&'a str]) -> &'a str {
    v[rng.below(v.len() as u64) as usize]
}

const SRCS: &[&str] = &[
    "*",
    "group:staff",
    "ann@example.com",
    "bob@",
    "tag:web",
    "tag:db",
    "autogroup:member",
    "autogroup:tagged",
    "lan",
    "100.64.0.0/29",
];
const USER_SRCS: &[&str] = &["group:staff", "ann@example.com", "autogroup:member"];
const DSTS: &[&str] = &[
    "*",
    "tag:web",
    "tag:db",
    "tag:router",
    "bob@example.com",
    "autogroup:member",
    "lan",
    "100.64.0.3",
    "10.1.0.0/24",
];
const PORTS: &[&str] = &["*", "22", "80-90", "22,443", "3010", "1-1024"];

/// A random policy: 2-6 `acls` entries, about half of them denies, and
/// sometimes a grant (evaluated after every `acls` entry).
fn policy(rng: &mut Rng) -> String {
    let mut acls = Vec::new();
    for _ in 0..2 + rng.below(5) {
        let deny = rng.chance(2);
        let user_only = rng.chance(6);
        let src: Vec<String> = (0..1 + rng.below(2))
            .map(|_| pick(rng, if user_only { USER_SRCS } else { SRCS }).to_string())
            .collect();
        let mut dst: Vec<String> = (0..1 + rng.below(2))
            .map(|_| format!("{}:{}", pick(rng, DSTS), pick(rng, PORTS)))
            .collect();
        if user_only {
            dst.push(format!("autogroup:self:{}", pick(rng, PORTS)));
        }
        let proto = match rng.below(6) {
            0 => r#", "proto": "tcp""#,
            1 => r#", "proto": "udp""#,
            2 if !deny => r#", "proto": "icmp""#,
            _ => "",
        };
        let proto = if proto.contains("icmp") {
            // ICMP takes no ports.
            dst = dst
                .iter()
                .map(|d| format!("{}:*", d.rsplit_once(':').map_or(d.as_str(), |x| x.0)))
                .collect();
            proto
        } else {
            proto
        };
        acls.push(format!(
            r#"{{"action": "{}", "src": {}, "dst": {}{proto}}}"#,
            if deny { "deny" } else { "accept" },
            serde_json::to_string(&src).expect("json"),
            serde_json::to_string(&dst).expect("json"),
        ));
    }
    let grants = if rng.chance(3) {
        format!(
            r#", "grants": [{{"src": ["{}"], "dst": ["{}"], "ip": ["{}"]}}]"#,
            pick(rng, SRCS),
            pick(rng, DSTS),
            pick(rng, &["*", "tcp:22", "udp:53", "80-90"]),
        )
    } else {
        String::new()
    };
    format!(
        r#"{{"groups": {{"group:staff": ["ann@example.com", "cid@example.org"]}},
            "tagOwners": {{"tag:web": [], "tag:db": [], "tag:router": []}},
            "hosts": {{"lan": "{SUBNET}"}},
            "acls": [{}]{grants}}}"#,
        acls.join(",\n")
    )
}

fn set(s: &str) -> IpSet {
    if s == "*" {
        IpSet::full()
    } else {
        IpSet::parse_element(s).expect("rendered address")
    }
}

/// tailscaled's verdict on a packet, from its filter (wgengine/filter:
/// `match`, `matchIPsOnly` for ICMP, `matchProtoAndIPsOnlyIfAllPorts`).
fn client_allows(rules: &[FilterRule], src: IpAddr, dst: IpAddr, proto: i32, port: u16) -> bool {
    rules.iter().filter(|r| r.cap_grant.is_empty()).any(|r| {
        if !r.src_ips.iter().any(|s| set(s).contains(src)) {
            return false;
        }
        let icmp = matches!(proto, 1 | 58);
        let protos = if r.ip_proto.is_empty() {
            vec![1, 6, 17, 58]
        } else {
            r.ip_proto.clone()
        };
        if !icmp && !protos.contains(&proto) {
            return false;
        }
        r.dst_ports.iter().any(|d| {
            set(&d.ip).contains(dst)
                && (icmp
                    || if matches!(proto, 6 | 17 | 132) {
                        d.ports.first <= port && port <= d.ports.last
                    } else {
                        d.ports.first == 0 && d.ports.last == 65535
                    })
        })
    })
}

/// Ports where the policy's rules start or stop applying, and a few more.
const PROBE_PORTS: &[u16] = &[
    0, 1, 21, 22, 23, 53, 79, 80, 90, 91, 443, 1024, 1025, 3010, 65535,
];
/// TCP, UDP, SCTP (ported), GRE (not).
const PROBE_PROTOS: &[i32] = &[6, 17, 132, 47];

fn addrs(n: &TopoNode) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = vec![];
    v.extend(n.ipv4.map(IpAddr::from));
    v.extend(n.ipv6.map(IpAddr::from));
    v
}

/// Addresses node `n` receives traffic for: its own, and two in each
/// subnet it routes.
fn local(n: &TopoNode) -> Vec<IpAddr> {
    let mut v = addrs(n);
    if !n.approved_routes.is_empty() {
        v.push("10.1.0.7".parse().expect("ip"));
        v.push("10.1.200.1".parse().expect("ip"));
    }
    v
}

#[test]
fn compiled_filters_allow_exactly_what_first_match_allows() {
    let mut rng = Rng(0xDE11_7E57_0F0D_E111);
    let (mut probes, mut allowed, mut denied, mut with_deny) = (0usize, 0, 0, 0);
    for case in 0..150 {
        let topo = topology(&mut rng);
        let text = policy(&mut rng);
        let p = Policy::parse(&text).unwrap_or_else(|e| panic!("case {case}: {e}\n{text}"));
        with_deny += usize::from(p.doc.rules.iter().any(|r| r.deny));
        let c = p.compile(&topo);
        let mut reach: BTreeSet<(usize, usize)> = BTreeSet::new();
        for (di, dn) in topo.nodes.iter().enumerate() {
            let out = c.node(dn.id).expect("node");
            let filter = &out.packet_filter;
            for (si, sn) in topo.nodes.iter().enumerate() {
                let mut srcs = addrs(sn);
                if !sn.approved_routes.is_empty() {
                    srcs.push("10.1.3.4".parse().expect("ip"));
                }
                for &src in &srcs {
                    for dst in local(dn) {
                        if src.is_ipv4() != dst.is_ipv4() {
                            continue;
                        }
                        let mut any = false;
                        for &proto in PROBE_PROTOS.iter().chain(&[1, 58]) {
                            for &port in PROBE_PORTS {
                                let probe = Probe {
                                    src,
                                    dst,
                                    node: di,
                                    proto,
                                    port,
                                };
                                let decided = first_match(&p.doc, &topo, &probe);
                                let want = decided.is_some_and(|i| !p.doc.rules[i].deny);
                                any |= want;
                                if matches!(proto, 1 | 58) {
                                    continue;
                                }
                                probes += 1;
                                allowed += usize::from(want);
                                denied += usize::from(decided.is_some() && !want);
                                let got = client_allows(filter, src, dst, proto, port);
                                assert_eq!(
                                    got, want,
                                    "case {case}: {src} → {dst} (node n{}) proto {proto} port {port}\n\
                                     policy: {text}\nfilter: {filter:#?}",
                                    dn.id
                                );
                            }
                        }
                        // ICMP is answered whenever anything is allowed.
                        let icmp = if src.is_ipv4() { 1 } else { 58 };
                        assert_eq!(
                            client_allows(filter, src, dst, icmp, 0),
                            any,
                            "case {case}: ICMP {src} → {dst}\npolicy: {text}\nfilter: {filter:#?}"
                        );
                        if any {
                            reach.insert((si.min(di), si.max(di)));
                        }
                    }
                }
            }
        }
        // Peers: two nodes see each other exactly when some traffic between
        // them (or the subnets they route) is allowed.
        for (a, an) in topo.nodes.iter().enumerate() {
            let peers = c.node(an.id).expect("node").peers;
            for (b, bn) in topo.nodes.iter().enumerate() {
                if a == b {
                    continue;
                }
                assert_eq!(
                    peers.contains(bn.id),
                    reach.contains(&(a.min(b), a.max(b))),
                    "case {case}: n{} sees n{}?\npolicy: {text}\ntopology: {:#?}",
                    an.id,
                    bn.id,
                    topo.nodes
                );
            }
        }
    }
    // The generator must exercise both outcomes and real denies.
    assert!(with_deny > 100, "only {with_deny} policies with a deny");
    assert!(
        allowed > probes / 50,
        "{allowed} of {probes} probes allowed"
    );
    assert!(
        denied > probes / 50,
        "{denied} of {probes} probes decided by a deny"
    );
}
