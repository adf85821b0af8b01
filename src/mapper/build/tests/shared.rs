//! Peers rendered once and shared between streams (`wire`), and never
//! served stale.

use chrono::Duration;

use super::*;
use crate::tailcfg::Peer;

fn peer_of(w: &World, viewer: i64, id: i64) -> Peer {
    let r = build_full(w, NodeId(viewer), &mut SentState::default(), now()).unwrap();
    r.peers.unwrap().into_iter().find(|p| p.id == id).unwrap()
}

/// The render's JSON is what the node itself serialises to.
fn faithful(p: &Peer) {
    assert_eq!(
        serde_json::to_value(p).unwrap(),
        serde_json::to_value(&**p).unwrap()
    );
}

#[test]
fn one_render_of_a_peer_serves_every_stream_that_lists_it() {
    // The cache is direct-mapped by the node's address: in about one
    // world in 40, node 1 shares its slot with another of the 100 peers,
    // and every stream then evicts it. It is also shared with tests
    // running alongside, which can evict the entry between two streams.
    // So up to five rounds, each with a world of its own at new addresses
    // (the old ones are kept, so the allocator cannot hand the same ones
    // out again). Built per stream, every round would have 100 renders.
    let mut worlds = Vec::new();
    let mut fewest = usize::MAX;
    for _ in 0..5 {
        worlds.push(world((1..=101).map(|i| node(i, 1 + i % 2, &[])).collect()));
        let w = worlds.last().unwrap();
        let renders: Vec<Peer> = (2..=101).map(|viewer| peer_of(w, viewer, 1)).collect();
        faithful(&renders[0]);
        let mut distinct: Vec<&Peer> = Vec::new();
        for r in &renders {
            if !distinct.iter().any(|d| d.ptr_eq(r)) {
                distinct.push(r);
            }
        }
        fewest = fewest.min(distinct.len());
        if fewest <= 3 {
            break;
        }
    }
    assert!(fewest <= 3, "{fewest} renders for 100 streams");
}

#[test]
fn a_peer_is_rendered_again_when_anything_it_shows_changes() {
    let mut w = world(vec![node(1, 1, &[]), node(2, 2, &[]), node(3, 1, &[])]);
    let first = peer_of(&w, 1, 2);
    assert_eq!(first.online, Some(false));

    w.online.insert(NodeId(2));
    let online = peer_of(&w, 1, 2);
    assert_eq!(online.online, Some(true));
    faithful(&online);

    let mut moved = node(2, 2, &[]);
    moved.endpoints = vec!["10.9.9.9:41641".into()];
    w.put_node(Arc::new(moved));
    assert_eq!(peer_of(&w, 1, 2).endpoints, vec!["10.9.9.9:41641"]);

    let mut s = settings();
    s.base_domain = "other.test".into();
    w.settings = Arc::new(s);
    assert_eq!(peer_of(&w, 1, 2).name, "h2.other.test.");

    // A 1.78 viewer (capver 109) needs the legacy DERP string and explicit
    // AllowedIPs; a 1.96 viewer of the same peer does not.
    let mut old = node(1, 1, &[]);
    old.cap_version = 109;
    w.put_node(Arc::new(old));
    let for_old = peer_of(&w, 1, 2);
    assert_eq!(for_old.legacy_derp, "127.3.3.40:999");
    assert_eq!(for_old.allowed_ips.as_ref(), Some(&for_old.addresses));
    faithful(&for_old);
    let for_new = peer_of(&w, 3, 2);
    assert_eq!(for_new.legacy_derp, "");
    assert_eq!(for_new.allowed_ips, None);

    // The same node, unchanged, seen once its key has expired (a delta
    // upserting it, as `state::expiry` publishes): `Expired` is said.
    let mut expiring = node(2, 2, &[]);
    expiring.expiry = Some(now() + Duration::hours(1));
    w.put_node(Arc::new(expiring));
    let p = w.node(NodeId(2)).unwrap().clone();
    let before = wire::peer_node(&w, &p, None, now(), 133);
    assert!(!before.expired);
    let after = wire::peer_node(&w, &p, None, now() + Duration::hours(2), 133);
    assert!(after.expired);
}

/// Renders for one node differ by key (online, expired, viewer shape);
/// an entry found in a slot answers only for its own, whichever slot the
/// keys hash to.
#[test]
fn an_entry_answers_only_for_the_key_and_settings_it_was_made_for() {
    use std::sync::Mutex;
    use wire::{Entry, Key, Shape, cached};

    let w = world(vec![node(1, 1, &[]), node(2, 2, &[])]);
    let p = w.node(NodeId(2)).unwrap();
    let key = |online| Key {
        online,
        expired: false,
        shape: Shape::of(133),
    };
    let slot = Mutex::new(Some(Entry {
        node: Arc::downgrade(p),
        settings: Arc::downgrade(&w.settings),
        key: key(false),
        peer: wire::peer_node(&w, p, None, now(), 133),
    }));
    assert!(cached(&slot, p, key(false), &w.settings).is_some());
    assert!(cached(&slot, p, key(true), &w.settings).is_none());
    let old_viewer = Key {
        shape: Shape::of(109),
        ..key(false)
    };
    assert!(cached(&slot, p, old_viewer, &w.settings).is_none());
    let other_settings = Arc::new(settings());
    assert!(cached(&slot, p, key(false), &other_settings).is_none());
    let other = w.node(NodeId(1)).unwrap();
    assert!(cached(&slot, other, key(false), &w.settings).is_none());
}
