use std::sync::Arc;

use chrono::Duration;

use super::*;
use crate::types::{DnsLabel, UserId};
use crate::whois::answer::tests::{ip, node, now, set_policy, user, world};
use crate::whois::answer::{to_body, whois_with};

/// Every query the fixture World can be asked: each address and node key,
/// towards no destination and towards each node.
fn queries(w: &World) -> Vec<(Query, Option<NodeId>)> {
    let mut qs = Vec::new();
    for n in w.nodes.values() {
        for dst in std::iter::once(None).chain(w.nodes.keys().copied().map(Some)) {
            for a in n.addresses() {
                qs.push((Query::Ip(a), dst));
            }
            qs.push((Query::NodeKey(n.node_key), dst));
        }
    }
    qs
}

/// The cache's answer agrees byte for byte (body and identity headers)
/// with one built from scratch.
fn assert_fresh(c: &AnswerCache, w: &Arc<World>, q: Query, dst: Option<NodeId>, at: DateTime<Utc>) {
    let caps = CapCache::default();
    let got = c.get(w, q, dst, at, &caps);
    let want = whois_with(w, q, dst, at, None);
    match (got, want) {
        (Some(g), Some(f)) => {
            assert_eq!(
                String::from_utf8_lossy(&g.body()),
                String::from_utf8_lossy(&to_body(&f)),
                "{q:?} → {dst:?}"
            );
            let fresh = Answer::new(f);
            assert_eq!(g.identity_headers(), fresh.identity_headers());
            for (tool, server) in [
                (None, None),
                (Some("search_web"), None),
                (Some("fetch"), Some("svc:mcp")),
                (Some("fetch"), Some("svc:other")),
                (Some("delete"), None),
            ] {
                assert_eq!(
                    g.decide(tool, server),
                    crate::whois::authorize::decide(&fresh.whois.cap_map, tool, server)
                );
            }
        }
        (None, None) => {}
        (g, f) => panic!(
            "{q:?} → {dst:?}: cached {:?}, fresh {:?}",
            g.is_some(),
            f.is_some()
        ),
    }
}

#[test]
fn cached_answers_equal_fresh_ones() {
    let w = Arc::new(world());
    let c = AnswerCache::default();
    let qs = queries(&w);
    // First round builds, second round is served from the cache.
    for _ in 0..2 {
        for &(q, dst) in &qs {
            assert_fresh(&c, &w, q, dst, now());
        }
    }
    // One entry per (address, destination); node-key queries share the
    // entry of the node's first address.
    assert_eq!(c.len(), 4 * 2 * 5);
}

#[test]
fn a_repeated_question_is_answered_from_the_cache() {
    let w = Arc::new(world());
    let (c, caps) = (AnswerCache::default(), CapCache::default());
    let a = c.get(&w, ip("100.64.0.1"), Some(NodeId(4)), now(), &caps);
    let b = c.get(&w, ip("100.64.0.1"), Some(NodeId(4)), now(), &caps);
    assert!(Arc::ptr_eq(&a.unwrap(), &b.unwrap()));
    // Same node, other destination: its own entry.
    let d = c.get(&w, ip("100.64.0.1"), Some(NodeId(2)), now(), &caps);
    assert!(d.unwrap().whois.cap_map.is_empty());
    assert_eq!(c.len(), 2);
}

/// Each input of an answer, changed in a new World, makes the cache build
/// a new answer that equals a fresh one.
#[test]
fn every_input_change_is_seen() {
    let c = AnswerCache::default();
    let caps = CapCache::default();
    let q = ip("100.64.0.1");
    let dst = Some(NodeId(4));
    let mut w = world();
    let mut last = c.get(&Arc::new(w.clone()), q, dst, now(), &caps).unwrap();
    // Each step publishes the changed World as a new `Arc`, as the writer does.
    let step = |w: &World, at: DateTime<Utc>, what: &str, last: &Arc<Answer>| {
        let w = Arc::new(w.clone());
        let a = c.get(&w, q, dst, at, &caps).unwrap();
        assert!(!Arc::ptr_eq(&a, last), "{what}: stale answer served");
        assert_fresh(&c, &w, q, dst, at);
        a
    };

    let mut n = node(1, 1, "alpha", &[]);
    n.given_name = DnsLabel::from_hostname("renamed");
    w.put_node(Arc::new(n.clone()));
    last = step(&w, now(), "rename", &last);
    assert!(String::from_utf8_lossy(&last.body()).contains("renamed.clawql.local."));

    w.users
        .insert(UserId(1), Arc::new(user(1, "alice", "Alice Liddell")));
    last = step(&w, now(), "user display name", &last);
    assert_eq!(last.whois.user_profile.display_name, "Alice Liddell");

    w.online.insert(NodeId(1));
    last = step(&w, now(), "presence", &last);
    assert_eq!(last.whois.node.node.online, Some(true));

    let mut s = (*w.settings).clone();
    s.base_domain = "example.ts.net".into();
    w.settings = Arc::new(s);
    last = step(&w, now(), "base domain", &last);
    assert!(String::from_utf8_lossy(&last.body()).contains("renamed.example.ts.net."));

    set_policy(
        &mut w,
        r#"{"grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]}]}"#,
    );
    last = step(&w, now(), "policy", &last);
    assert!(last.whois.cap_map.is_empty());

    n.expiry = Some(now() + Duration::minutes(5));
    w.put_node(Arc::new(n.clone()));
    last = step(&w, now(), "key expiry set", &last);
    assert!(!last.whois.node.node.expired);
    last = step(
        &w,
        now() + Duration::minutes(6),
        "key expired by the clock",
        &last,
    );
    assert!(last.whois.node.node.expired);

    n.tags = vec!["tag:gw".into()];
    w.put_node(Arc::new(n));
    last = step(&w, now(), "tagged", &last);
    assert_eq!(last.whois.user_profile.login_name, "tagged-devices");
}

#[test]
fn deleted_nodes_and_users_are_not_found_despite_the_cache() {
    let mut w = world();
    let (c, caps) = (AnswerCache::default(), CapCache::default());
    let first = Arc::new(w.clone());
    for a in ["100.64.0.1", "100.64.0.2"] {
        assert!(c.get(&first, ip(a), None, now(), &caps).is_some());
    }
    w.remove_node(NodeId(1));
    let second = Arc::new(w.clone());
    assert!(
        c.get(&second, ip("100.64.0.1"), None, now(), &caps)
            .is_none()
    );
    w.users.remove(&UserId(2));
    let third = Arc::new(w.clone());
    assert!(
        c.get(&third, ip("100.64.0.2"), None, now(), &caps)
            .is_none()
    );
    // The older World still answers as it was: an answer belongs to the
    // World it is asked in.
    assert!(
        c.get(&first, ip("100.64.0.1"), None, now(), &caps)
            .is_some()
    );
}

#[test]
fn the_cache_is_bounded_and_stays_correct_when_full() {
    let w = Arc::new(world());
    // One entry per shard: the 40 (address, destination) pairs keep
    // evicting each other.
    let c = AnswerCache::with_capacity(1);
    let qs = queries(&w);
    assert!(qs.len() > 2 * SHARDS);
    for _ in 0..3 {
        for &(q, dst) in &qs {
            assert_fresh(&c, &w, q, dst, now());
            assert!(c.len() <= SHARDS, "{} entries", c.len());
        }
    }
}

/// A newer World whose inputs for an answer are unchanged keeps the
/// answer (no rebuild), and the clock alone (key expiry) is seen even when
/// the World asked with is the very one the entry was checked in.
#[test]
fn same_inputs_keep_the_answer_and_the_clock_is_seen_within_a_world() {
    let (c, caps) = (AnswerCache::default(), CapCache::default());
    let q = ip("100.64.0.1");
    let mut w = world();
    let mut n = (**w.node(NodeId(1)).unwrap()).clone();
    n.expiry = Some(now() + Duration::minutes(5));
    w.put_node(Arc::new(n));
    let first = Arc::new(w.clone());
    let a = c.get(&first, q, None, now(), &caps).unwrap();
    assert!(!a.whois.node.node.expired);

    // A change elsewhere (another node's presence): same answer object,
    // checked once against the new World, then served from the entry.
    w.online.insert(NodeId(2));
    let second = Arc::new(w.clone());
    for _ in 0..2 {
        let b = c.get(&second, q, None, now(), &caps).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }

    // Time passes the key's expiry; no new World.
    let later = now() + Duration::minutes(6);
    let e = c.get(&second, q, None, later, &caps).unwrap();
    assert!(e.whois.node.node.expired, "expiry by the clock not seen");
    assert_fresh(&c, &second, q, None, later);
    // And the entry does not flip back while the clock says expired.
    assert!(
        c.get(&second, q, None, later, &caps)
            .unwrap()
            .whois
            .node
            .node
            .expired
    );
}

/// A sweep drops exactly the entries the new World would not serve, and
/// with them the old inputs they held (here: the old policy's filter).
#[test]
fn a_sweep_drops_what_the_new_world_made_stale() {
    let (c, caps) = (AnswerCache::default(), CapCache::default());
    let mut w = world();
    let first = Arc::new(w.clone());
    let qs = queries(&first);
    for &(q, dst) in &qs {
        c.get(&first, q, dst, now(), &caps);
    }
    let full = c.len();
    assert_eq!(
        c.sweep(&first, now()),
        0,
        "nothing is stale in its own World"
    );
    assert_eq!(c.len(), full);

    // Node 1 leaves and the policy changes: every entry about node 1 and
    // every entry towards a destination whose filter changed goes.
    let old_filter = crate::whois::answer::dst_filter(&first, NodeId(4))
        .cloned()
        .expect("gateway filter");
    drop(first);
    w.remove_node(NodeId(1));
    set_policy(
        &mut w,
        r#"{"grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]}]}"#,
    );
    let second = Arc::new(w.clone());
    let removed = c.sweep(&second, now());
    assert_eq!(removed + c.len(), full);
    assert!(removed > 0);
    // (The CapRules cache keeps one filter per destination until it is
    // next asked about; it is not the answer cache's to drop.)
    drop(caps);
    assert_eq!(
        Arc::strong_count(&old_filter),
        1,
        "the old policy's filter is still held by the cache"
    );
    // What is left is still right, and a second sweep finds nothing.
    for &(q, dst) in &queries(&second) {
        assert_fresh(&c, &second, q, dst, now());
    }
    let after = c.len();
    assert_eq!(c.sweep(&second, now()), 0);
    assert_eq!(c.len(), after);
}

/// The background task sweeps after a new World arrives, and ends with
/// the channel.
#[tokio::test]
async fn new_worlds_are_swept_in_the_background() {
    let (c, caps) = (Arc::new(AnswerCache::default()), CapCache::default());
    let mut w = world();
    let first = Arc::new(w.clone());
    for a in ["100.64.0.1", "100.64.0.2"] {
        c.get(&first, ip(a), None, now(), &caps);
    }
    let (tx, rx) = watch::channel(first);
    let task = tokio::spawn(sweep_on_change(
        c.clone(),
        rx,
        now,
        std::time::Duration::from_millis(10),
    ));
    w.remove_node(NodeId(1));
    tx.send_replace(Arc::new(w));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while c.len() != 1 {
        assert!(tokio::time::Instant::now() < deadline, "not swept");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    drop(tx);
    tokio::time::timeout(std::time::Duration::from_secs(5), task)
        .await
        .expect("the task ends with its channel")
        .unwrap();
}
