//! Maps under a policy: only visible peers, the node's own filter, and
//! deltas that carry exactly what a policy change altered for this node.

use std::sync::Arc;

use super::{frame, install, node, now, world};
use crate::mapper::build::{Delta, SentState, build_delta, build_full};
use crate::state::World;
use crate::state::change::Change;
use crate::state::policy::{PolicyState, accept};
use crate::tailcfg::{FilterRule, MapResponse};
use crate::types::NodeId;

/// alice (user 1) may reach tag:srv on 22; bob (user 2) nothing.
const ALICE_TO_SRV: &str = r#"{
  "tagOwners": {"tag:srv": ["alice@example.com"]},
  "acls": [{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:srv:22"]}],
}"#;

/// bob may reach tag:srv on 22 as well.
const BOTH_TO_SRV: &str = r#"{
  "tagOwners": {"tag:srv": ["alice@example.com"]},
  "acls": [{"action": "accept", "src": ["alice@example.com", "bob@example.com"], "dst": ["tag:srv:22"]}],
}"#;

/// The rules a client holds after applying this response's chunks.
fn held(r: &MapResponse) -> Vec<FilterRule> {
    let chunks = r.packet_filters.as_ref().expect("packet filters");
    crate::mapper::build::filter::tests::Held::of(chunks).rules()
}

fn three() -> World {
    // 1: alice's laptop, 2: bob's laptop, 3: tag:srv
    world(vec![
        node(1, 1, &[]),
        node(2, 2, &[]),
        node(3, 1, &["tag:srv"]),
    ])
}

#[test]
fn full_map_shows_only_peers_the_policy_connects() {
    let mut w = three();
    install(&mut w, ALICE_TO_SRV);
    let peer_ids = |id: i64| -> Vec<i64> {
        let r = build_full(&w, NodeId(id), &mut SentState::default(), now()).unwrap();
        r.peers.unwrap_or_default().iter().map(|p| p.id).collect()
    };
    assert_eq!(peer_ids(1), vec![3], "alice sees the server");
    assert_eq!(peer_ids(2), Vec::<i64>::new(), "bob sees nobody");
    assert_eq!(peer_ids(3), vec![1], "the server sees alice, not bob");

    let r = build_full(&w, NodeId(3), &mut SentState::default(), now()).unwrap();
    let rules = &held(&r);
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert!(rules[0].src_ips.iter().any(|s| s.starts_with("100.64.0.1")));
    assert!(
        rules[0]
            .dst_ports
            .iter()
            .all(|d| d.ports.first == 22 && d.ports.last == 22)
    );
    // Alice is no destination: her filter is empty (deny inbound).
    let r = build_full(&w, NodeId(1), &mut SentState::default(), now()).unwrap();
    assert!(held(&r).is_empty());
    assert!(
        r.ssh_policy.is_some(),
        "SSH policy always sent in full maps"
    );
}

#[test]
fn a_policy_change_sends_new_peers_and_filters_only_where_they_changed() {
    let mut w = three();
    install(&mut w, ALICE_TO_SRV);
    let mut sent: Vec<SentState> = (0..4).map(|_| SentState::default()).collect();
    for id in 1..=3 {
        build_full(&w, NodeId(id), &mut sent[id as usize], now()).unwrap();
    }
    install(&mut w, BOTH_TO_SRV);
    let everyone = Change::policy([NodeId(1), NodeId(2), NodeId(3)]);

    // Alice's view did not change: nothing is sent to her.
    assert!(matches!(
        build_delta(&w, NodeId(1), &everyone, &mut sent[1], now()),
        Delta::Nothing
    ));
    // Bob now sees the server; his own filter is unchanged (still empty).
    let r = frame(build_delta(&w, NodeId(2), &everyone, &mut sent[2], now()));
    assert_eq!(
        r.peers_changed.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![3]
    );
    assert!(r.packet_filters.is_none());
    // The server sees bob and gets a filter that admits him.
    let r = frame(build_delta(&w, NodeId(3), &everyone, &mut sent[3], now()));
    assert_eq!(
        r.peers_changed.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![2]
    );
    let rules = &held(&r);
    assert!(
        rules[0].src_ips.iter().any(|s| s.contains("100.64.0.2")),
        "{rules:?}"
    );

    // And back: bob loses the server, the server loses bob.
    install(&mut w, ALICE_TO_SRV);
    let r = frame(build_delta(&w, NodeId(2), &everyone, &mut sent[2], now()));
    assert_eq!(r.peers_removed, vec![3]);
    let r = frame(build_delta(&w, NodeId(3), &everyone, &mut sent[3], now()));
    assert_eq!(r.peers_removed, vec![2]);
    assert!(r.packet_filters.is_some());
}

#[test]
fn a_joining_node_reaches_only_sessions_that_may_see_it() {
    let mut w = three();
    install(&mut w, ALICE_TO_SRV);
    let mut bob = SentState::default();
    let mut alice = SentState::default();
    build_full(&w, NodeId(2), &mut bob, now()).unwrap();
    build_full(&w, NodeId(1), &mut alice, now()).unwrap();
    // A second server joins; the compiled policy is refreshed for it.
    w.put_node(Arc::new(node(4, 1, &["tag:srv"])));
    let (policy, compiled) = accept(ALICE_TO_SRV, &w).unwrap();
    w.policy = Arc::new(PolicyState {
        policy: Some(policy),
        compiled: Some(compiled),
        ..(*w.policy).clone()
    });
    let mut change = Change::upsert(NodeId(4));
    change.policy.extend([NodeId(1), NodeId(3), NodeId(4)]);
    assert!(
        matches!(
            build_delta(&w, NodeId(2), &change, &mut bob, now()),
            Delta::Nothing
        ),
        "bob may not see the new server"
    );
    let r = frame(build_delta(&w, NodeId(1), &change, &mut alice, now()));
    assert_eq!(
        r.peers_changed.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![4]
    );
}

/// A join that changes no filter (here: no policy, every node sees every
/// other) sends every stream the same delta: built within one second they
/// are the same bytes, which the encoder then compresses once.
#[test]
fn a_join_sends_every_stream_the_same_bytes_within_a_second() {
    let mut w = three();
    let mut sent: Vec<SentState> = (0..3).map(|_| SentState::default()).collect();
    for (id, s) in (1..=3).zip(&mut sent) {
        build_full(&w, NodeId(id), s, now()).unwrap();
    }
    w.put_node(Arc::new(node(4, 2, &[])));
    let change = Change::upsert(NodeId(4));
    let json: Vec<String> = (1..=3)
        .zip(&mut sent)
        .map(|(id, s)| {
            let at = now() + chrono::Duration::milliseconds(300 * id);
            let r = frame(build_delta(&w, NodeId(id), &change, s, at));
            assert_eq!(r.peers_changed.len(), 1, "{r:?}");
            serde_json::to_string(&r).unwrap()
        })
        .collect();
    assert_eq!(json[0], json[1]);
    assert_eq!(json[1], json[2]);
}

#[test]
fn check_rules_delegate_over_noise_as_tailscale_does() {
    let mut w = three();
    Arc::make_mut(&mut w.settings).login_url = "https://ctl.example.com".into();
    install(
        &mut w,
        r#"{"tagOwners": {"tag:srv": ["alice@example.com"]},
            "ssh": [{"action": "check", "src": ["alice@example.com"], "dst": ["tag:srv"], "users": ["root"]}]}"#,
    );
    let r = build_full(&w, NodeId(3), &mut SentState::default(), now()).unwrap();
    let rules = r.ssh_policy.unwrap().rules;
    assert_eq!(
        rules[0].action.hold_and_delegate,
        "https://unused/machine/ssh/action/$SRC_NODE_ID/to/$DST_NODE_ID?local_user=$LOCAL_USER",
        "an https:// URL, whatever login_url is: tailscaled sends it over Noise"
    );
}

/// What a session remembers does not keep a replaced compiled policy
/// alive: the policy is recompiled with every batch of node changes, and
/// idle sessions each pinning the one they last saw held O(nodes)
/// generations of an O(nodes) structure.
#[test]
fn a_session_does_not_keep_a_replaced_policy_alive() {
    let mut w = three();
    install(&mut w, ALICE_TO_SRV);
    let mut sent = SentState::default();
    build_full(&w, NodeId(1), &mut sent, now()).unwrap();
    let old = Arc::downgrade(&w.policy);
    install(&mut w, BOTH_TO_SRV);
    assert!(old.upgrade().is_none(), "the session pins the old policy");
    // Still told apart from the policy that replaced it: the next delta
    // re-derives DNS rather than trusting a stale pointer.
    let r = build_full(&w, NodeId(1), &mut sent, now()).unwrap();
    assert!(r.dns_config.is_some());
}

/// Under a policy a change reaches only the streams of nodes that see the
/// changed node (before or after), and its own: bob, who sees nobody, is
/// not woken when the server he may not reach changes.
#[tokio::test]
async fn a_change_reaches_only_the_streams_that_see_it() {
    use crate::mapper::sessions::Sessions;
    let mut w = three();
    install(&mut w, ALICE_TO_SRV);
    let s = Sessions::new();
    let (alice, bob, srv) = (s.open(NodeId(1)), s.open(NodeId(2)), s.open(NodeId(3)));
    s.dispatch_between(&Change::upsert(NodeId(3)), &w, &w);
    assert_eq!(alice.take().upserted, [NodeId(3)].into());
    assert_eq!(srv.take().upserted, [NodeId(3)].into(), "its own node");
    assert!(bob.take().is_empty(), "bob does not see the server");
    let woke = tokio::time::timeout(std::time::Duration::from_millis(50), bob.notified()).await;
    assert!(woke.is_err(), "bob woken for nothing");

    // Seen before or after counts: once bob may reach the server too, a
    // change between the two Worlds reaches him.
    let before = w.clone();
    install(&mut w, BOTH_TO_SRV);
    s.dispatch_between(&Change::upsert(NodeId(3)), &before, &w);
    assert_eq!(bob.take().upserted, [NodeId(3)].into());
}

/// A node that joins or leaves is told to its own stream and to those of
/// the nodes that see it in the World that has it; a presence patch of
/// many nodes reaches each stream with only the nodes it sees; a change of
/// the settings still reaches everyone.
#[tokio::test]
async fn joins_leaves_and_patches_reach_exactly_their_viewers() {
    use crate::mapper::sessions::Sessions;
    use crate::state::change::PatchMask;
    let mut with = three();
    install(&mut with, ALICE_TO_SRV);
    let mut without = world(vec![node(1, 1, &[]), node(2, 2, &[])]);
    install(&mut without, ALICE_TO_SRV);
    let s = Sessions::new();
    let (alice, bob, srv) = (s.open(NodeId(1)), s.open(NodeId(2)), s.open(NodeId(3)));

    s.dispatch_between(&Change::upsert(NodeId(3)), &without, &with);
    assert_eq!(
        alice.take().upserted,
        [NodeId(3)].into(),
        "alice sees the newcomer"
    );
    assert_eq!(srv.take().upserted, [NodeId(3)].into(), "its own stream");
    assert!(bob.take().is_empty(), "bob does not see it");

    s.dispatch_between(&Change::remove(NodeId(3)), &with, &without);
    assert_eq!(alice.take().removed, [NodeId(3)].into());
    assert_eq!(
        srv.take().removed,
        [NodeId(3)].into(),
        "its own stream hears"
    );
    assert!(bob.take().is_empty());

    let mut patch = Change::default();
    for id in [1, 2, 3] {
        patch.patched.insert(NodeId(id), PatchMask::default());
    }
    s.dispatch_between(&patch, &with, &with);
    let ids = |c: Change| c.patched.into_keys().collect::<Vec<_>>();
    assert_eq!(ids(alice.take()), [NodeId(1), NodeId(3)]);
    assert_eq!(ids(bob.take()), [NodeId(2)], "only itself");
    assert_eq!(ids(srv.take()), [NodeId(1), NodeId(3)]);

    let settings = Change {
        settings: true,
        ..Change::default()
    };
    s.dispatch_between(&settings, &with, &with);
    for session in [&alice, &bob, &srv] {
        assert!(session.take().settings);
    }
}
