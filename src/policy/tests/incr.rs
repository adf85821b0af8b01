//! Property test of `Compiled::update`: for a long chain of random topology
//! changes (fixed seed), the incrementally updated state must equal a fresh
//! `compile` for every node's output, and every node whose output differs
//! from before must be reported as changed; with and without deny rules.

use std::net::Ipv4Addr;

use crate::policy::{Policy, TopoNode, TopoUser, Topology};

use super::rng::Rng;

const POLICY: &str = r#"{
  "groups": {"group:a": ["u1@example.com", "u2@example.com"], "group:b": ["u3@example.org"]},
  "tagOwners": {"tag:web": ["group:a"], "tag:db": ["group:a"], "tag:router": ["group:a"],
                "tag:exit": ["group:a"]},
  "hosts": {"lan": "10.1.0.0/16"},
  "acls": [
    {"action": "accept", "src": ["group:a"], "dst": ["tag:web:80,443"]},
    {"action": "accept", "src": ["tag:web"], "dst": ["tag:db:5432"]},
    {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]},
    {"action": "accept", "src": ["group:b"], "dst": ["lan:*", "autogroup:internet:*"]},
  ],
  "grants": [
    {"src": ["u3@example.org"], "dst": ["tag:db"], "ip": ["tcp:22"],
     "app": {"tailscale.com/cap/drive": [{"shares": ["*"]}]}},
    {"src": ["group:a"], "dst": ["10.2.0.0/16"], "ip": ["*"], "via": ["tag:router"]},
    {"src": ["*"], "dst": ["tag:exit"], "ip": ["icmp:*"]},
  ],
  "ssh": [{"action": "accept", "src": ["group:a"], "dst": ["tag:web"], "users": ["root"]}],
  "nodeAttrs": [{"target": ["tag:db"], "attr": ["disable-ipv4"]}],
  "autoApprovers": {"routes": {"10.0.0.0/8": ["tag:router"]}, "exitNode": ["tag:exit"]},
}"#;

fn random_node(rng: &mut Rng, id: u64) -> TopoNode {
    let mut n = TopoNode {
        id,
        name: format!("n{id}"),
        hostname: format!("n{id}"),
        ipv4: Some(Ipv4Addr::new(
            100,
            64,
            (id / 200) as u8,
            (id % 200) as u8 + 1,
        )),
        ipv6: Some(format!("fd7a:115c:a1e0::{id:x}").parse().expect("v6")),
        ..Default::default()
    };
    match rng.below(7) {
        0 => n.tags = vec!["tag:web".into()],
        1 => n.tags = vec!["tag:db".into()],
        2 => {
            n.tags = vec!["tag:router".into()];
            let r = format!("10.{}.0.0/16", 1 + rng.below(2))
                .parse()
                .expect("net");
            n.routable_ips = vec![r];
        }
        3 if rng.below(3) == 0 => {
            n.tags = vec!["tag:exit".into()];
            n.routable_ips = vec!["0.0.0.0/0".parse().expect("net")];
        }
        _ => n.user = Some(1 + rng.below(4)),
    }
    n
}

#[test]
fn update_matches_fresh_compile() {
    let (changed, total) = random_updates(POLICY, 0x9E37_79B9_7F4A_7C15);
    // The changed sets must be a real narrowing, not "everyone" each time.
    assert!(changed < total, "changed {changed} of {total}");
    eprintln!("changed {changed} of {total} node-steps");
}

/// With deny rules, whose subtraction depends on every node's addresses.
#[test]
fn update_matches_fresh_compile_with_denies() {
    let denies = r#""acls": [
    {"action": "deny", "src": ["group:b"], "dst": ["tag:db:*"]},
    {"action": "deny", "src": ["u1@example.com"], "dst": ["tag:web:443", "lan:22"]},
    {"action": "accept", "src": ["*"], "dst": ["*:22"]},"#;
    let policy = POLICY.replacen(r#""acls": ["#, denies, 1);
    random_updates(&policy, 0x5DEE_CE66_D1CE_4E5B);
}

/// Applies random topology changes; returns (outputs reported changed,
/// node outputs in all).
fn random_updates(text: &str, seed: u64) -> (usize, usize) {
    let policy = Policy::parse(text).expect("policy parses");
    let users: Vec<TopoUser> = [
        "u1@example.com",
        "u2@example.com",
        "u3@example.org",
        "u4@example.net",
    ]
    .iter()
    .enumerate()
    .map(|(i, l)| TopoUser {
        id: i as u64 + 1,
        name: format!("u{}", i + 1),
        login: l.to_string(),
        groups: vec![],
    })
    .collect();
    let mut rng = Rng(seed);
    let mut next_id = 1;
    let mut topo = Topology::new(users, vec![]);
    for _ in 0..20 {
        topo.nodes.push(random_node(&mut rng, next_id).into());
        next_id += 1;
    }
    let mut cur = policy.compile(&topo);
    let mut stats = [0usize; 2];
    for step in 0..300 {
        // Materialise some outputs so carried-over ones are exercised.
        for n in &topo.nodes {
            if rng.below(2) == 0 {
                let _ = cur.node_arc(n.id);
            }
        }
        let mut t2 = topo.clone();
        let mut named = Vec::new();
        match rng.below(4) {
            0 => {
                t2.nodes.push(random_node(&mut rng, next_id).into());
                named.push(next_id);
                next_id += 1;
            }
            1 if t2.nodes.len() > 2 => {
                let i = rng.below(t2.nodes.len() as u64) as usize;
                named.push(t2.nodes.remove(i).id);
            }
            _ if !t2.nodes.is_empty() => {
                let i = rng.below(t2.nodes.len() as u64) as usize;
                let id = t2.nodes[i].id;
                t2.nodes[i] = random_node(&mut rng, id).into();
                named.push(id);
            }
            _ => {}
        }
        // Sometimes the caller names nothing: update must notice by itself.
        if rng.below(5) == 0 {
            named.clear();
        }
        let (next, changed) = cur.update(t2.clone(), &named);
        let fresh = policy.compile(&t2);
        for n in &t2.nodes {
            let got = next.node(n.id);
            assert_eq!(got, fresh.node(n.id), "step {step}: node {} differs", n.id);
            if cur.node(n.id) != got {
                assert!(
                    changed.contains(&n.id),
                    "step {step}: node {} changed but not reported",
                    n.id
                );
            }
        }
        stats[0] += changed.len();
        stats[1] += t2.nodes.len();
        topo = t2;
        cur = next;
    }
    (stats[0], stats[1])
}
