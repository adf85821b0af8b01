//! Deltas against full maps: after any sequence of joins, removals, tag,
//! route, approval and policy changes, a client that applied every delta
//! holds exactly the peers (with their AllowedIPs and PrimaryRoutes) and
//! the packet filter chunks a fresh full map would give it. Every change names every node as
//! policy-moved, so each session takes the policy path of `build_delta`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

use super::{install, node, now, settings, user};
use crate::mapper::build::filter;
use crate::mapper::build::{Delta, SentState, build_delta, build_full};
use crate::state::World;
use crate::state::change::Change;
use crate::tailcfg::{MapResponse, Node as WireNode};
use crate::types::{Node, NodeId};

const POLICIES: [&str; 3] = [
    // Members reach tag:srv; the router's subnet is for alice only.
    r#"{
      "tagOwners": {"tag:srv": ["alice@example.com"], "tag:router": ["alice@example.com"]},
      "acls": [
        {"action": "accept", "src": ["autogroup:member"], "dst": ["tag:srv:22"]},
        {"action": "accept", "src": ["alice@example.com"], "dst": ["10.9.0.0/24:*"]}
      ]
    }"#,
    // Each user's own devices, and everyone to the router's subnet.
    r#"{
      "tagOwners": {"tag:srv": ["alice@example.com"], "tag:router": ["alice@example.com"]},
      "grants": [
        {"src": ["autogroup:member"], "dst": ["autogroup:self"], "ip": ["*"]},
        {"src": ["autogroup:member"], "dst": ["10.9.0.0/24"], "ip": ["*"]}
      ]
    }"#,
    // bob and tag:srv see each other and the router, but not its subnet;
    // carol sees nobody.
    r#"{
      "tagOwners": {"tag:srv": ["alice@example.com"], "tag:router": ["alice@example.com"]},
      "acls": [{"action": "accept", "src": ["bob@example.com", "tag:srv"], "dst": ["bob@example.com:*", "tag:srv:*", "tag:router:*"]}]
    }"#,
];

const TAGS: [&[&str]; 3] = [&[], &["tag:srv"], &["tag:router"]];

fn world_of(nodes: &BTreeMap<i64, Node>, policy: &str) -> World {
    let users = vec![user(1, "alice"), user(2, "bob"), user(3, "carol")];
    let mut w = World::new(settings(), users, nodes.values().cloned().collect());
    // Online, so routers are elected primary for their subnet.
    w.online = nodes.keys().map(|id| NodeId(*id)).collect();
    w.reelect(now());
    install(&mut w, policy);
    w
}

/// What a client holds: its peers, id to (AllowedIPs, PrimaryRoutes), and
/// its packet filter.
#[derive(Debug, Default, PartialEq)]
struct Held {
    peers: BTreeMap<i64, (Option<Vec<String>>, Vec<String>)>,
    filter: filter::tests::Held,
}

fn entry(p: &WireNode) -> (i64, (Option<Vec<String>>, Vec<String>)) {
    (p.id, (p.allowed_ips.clone(), p.primary_routes.clone()))
}

fn apply(held: &mut Held, r: &MapResponse) {
    if let Some(peers) = &r.peers {
        held.peers = peers.iter().map(|p| entry(p)).collect();
    }
    held.peers.extend(r.peers_changed.iter().map(|p| entry(p)));
    for id in &r.peers_removed {
        held.peers.remove(id);
    }
    if let Some(chunks) = &r.packet_filters {
        held.filter.apply(chunks);
    }
}

/// A new session for node `id`: what it was sent and what its client holds.
fn fresh(w: &World, id: i64) -> (SentState, Held) {
    let mut sent = SentState::default();
    let r = build_full(w, NodeId(id), &mut sent, now()).unwrap();
    let mut held = Held::default();
    apply(&mut held, &r);
    (sent, held)
}

#[test]
fn deltas_leave_every_client_with_what_a_full_map_gives() {
    let mut routed = 0;
    for seed in 0..8 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut nodes: BTreeMap<i64, Node> = BTreeMap::new();
        let mut policy = POLICIES[0];
        let mut sessions: BTreeMap<i64, (SentState, Held)> = BTreeMap::new();
        let mut next_id = 1;
        for step in 0..150 {
            let ids: Vec<i64> = nodes.keys().copied().collect();
            let pick = |rng: &mut StdRng| ids[rng.gen_range(0..ids.len())];
            let mut change = Change::default();
            // Joins until there are a few nodes, and while under 30.
            let op = if ids.len() < 3 {
                0
            } else {
                rng.gen_range(0..6)
            };
            match op {
                0 | 1 if ids.len() < 30 => {
                    let n = node(next_id, rng.gen_range(1..=3), TAGS[rng.gen_range(0..3)]);
                    change.upserted.insert(n.id);
                    nodes.insert(next_id, n);
                    next_id += 1;
                }
                0 | 1 => {
                    let id = pick(&mut rng);
                    nodes.remove(&id);
                    change.removed.insert(NodeId(id));
                }
                2 => {
                    let id = pick(&mut rng);
                    let n = nodes.get_mut(&id).unwrap();
                    n.tags = TAGS[rng.gen_range(0..3)]
                        .iter()
                        .map(|t| t.to_string())
                        .collect();
                    change.upserted.insert(n.id);
                }
                3 => {
                    let id = pick(&mut rng);
                    let n = nodes.get_mut(&id).unwrap();
                    n.approved_routes = if n.approved_routes.is_empty() {
                        vec!["10.9.0.0/24".parse().unwrap()]
                    } else {
                        vec![]
                    };
                    n.hostinfo = serde_json::json!({"Hostname": n.hostname, "RoutableIPs": n.approved_routes}).into();
                    change.upserted.insert(n.id);
                }
                4 => {
                    let id = pick(&mut rng);
                    let n = nodes.get_mut(&id).unwrap();
                    n.authorized = !n.authorized;
                    change.upserted.insert(n.id);
                }
                _ => policy = POLICIES[rng.gen_range(0..POLICIES.len())],
            }
            let w = world_of(&nodes, policy);
            change.policy.extend(nodes.keys().map(|id| NodeId(*id)));
            change.policy.extend(change.removed.iter().copied());
            sessions.retain(|id, _| nodes.contains_key(id));
            for (id, (sent, held)) in sessions.iter_mut() {
                match build_delta(&w, NodeId(*id), &change, sent, now()) {
                    Delta::Frame(r) => apply(held, &r),
                    Delta::Nothing => {}
                    Delta::SelfRemoved(_) => panic!("node {id} is still there"),
                }
                routed += held
                    .peers
                    .values()
                    .filter(|(_, primary)| !primary.is_empty())
                    .count();
                assert_eq!(
                    *held,
                    fresh(&w, *id).1,
                    "seed {seed} step {step}: node {id} after {change:?}"
                );
            }
            for id in nodes.keys() {
                sessions.entry(*id).or_insert_with(|| fresh(&w, *id));
            }
        }
    }
    assert!(routed > 0, "no client ever held a subnet router's routes");
}
