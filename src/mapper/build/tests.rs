use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::TimeZone;

use super::*;
use crate::state::Settings;
use crate::state::change::PatchMask;
use crate::types::{DnsLabel, MachinePublic, NodePublic, User, UserId};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()
}

fn node(id: i64, user: i64, tags: &[&str]) -> Node {
    Node {
        id: NodeId(id),
        machine_key: MachinePublic([id as u8; 32]),
        node_key: NodePublic([id as u8 + 100; 32]),
        disco_key: Default::default(),
        hostname: format!("h{id}"),
        given_name: DnsLabel::from_hostname(&format!("h{id}")),
        user_id: UserId(user),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ipv4: Some(format!("100.64.0.{id}").parse().unwrap()),
        ipv6: Some(format!("fd7a:115c:a1e0::{id}").parse().unwrap()),
        endpoints: vec![format!("10.0.0.{id}:41641")],
        home_derp: 999,
        hostinfo: serde_json::json!({"Hostname": format!("h{id}")}).into(),
        expiry: None,
        ephemeral: false,
        auth_key_id: None,
        cap_version: 133,
        created_at: now(),
        last_seen: None,
        approved_routes: vec![],
        authorized: true,
    }
}

fn user(id: i64, name: &str) -> User {
    User {
        id: UserId(id),
        name: name.into(),
        display_name: String::new(),
        email: format!("{name}@example.com"),
        created_at: now(),
        oidc: None,
        profile_pic_url: String::new(),
        groups: vec![],
    }
}

fn settings() -> Settings {
    Settings {
        base_domain: "clawql.local".into(),
        derp_map: Default::default(),
        dns: Default::default(),
        domain: "clawql.local".into(),
        certs: Default::default(),
        login_url: String::new(),
    }
}

/// Puts the policy `text` in force in `w`, compiled for its nodes.
fn install(w: &mut World, text: &str) {
    let (policy, compiled) = crate::state::policy::accept(text, w).expect("policy accepted");
    w.policy = Arc::new(crate::state::policy::PolicyState {
        text: Some(text.into()),
        policy: Some(policy),
        compiled: Some(compiled),
        updated_at: None,
    });
}

fn world(nodes: Vec<Node>) -> World {
    World::new(settings(), vec![user(1, "alice"), user(2, "bob")], nodes)
}

fn frame(d: Delta) -> MapResponse {
    match d {
        Delta::Frame(r) => *r,
        other => panic!("expected a frame, got {other:?}"),
    }
}

#[test]
fn full_map_has_self_peers_profiles_and_allow_all() {
    let w = world(vec![
        node(1, 1, &[]),
        node(2, 2, &[]),
        node(3, 1, &["tag:srv"]),
    ]);
    let mut sent = SentState::default();
    let r = build_full(&w, NodeId(1), &mut sent, now()).unwrap();
    let me = r.node.as_ref().unwrap();
    assert_eq!(me.name, "h1.clawql.local.");
    assert!(me.machine_authorized);
    assert_eq!(me.addresses, vec!["100.64.0.1/32", "fd7a:115c:a1e0::1/128"]);
    let peers = r.peers.as_ref().unwrap();
    assert_eq!(peers.iter().map(|p| p.id).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(
        peers[1].user, TAGGED_DEVICES_USER_ID,
        "tagged node owned by tags"
    );
    // Hostinfo is the World's, shared, not a copy per peer and stream.
    let hostinfo = peers[0].hostinfo.as_ref().expect("hostinfo");
    assert!(Arc::ptr_eq(hostinfo, &w.node(NodeId(2)).unwrap().hostinfo));
    // A 1.96 viewer reads HomeDERP; the legacy string is for capver < 111.
    assert_eq!(peers[0].home_derp, 999);
    assert_eq!(peers[0].legacy_derp, "");
    let ids: Vec<i64> = r.user_profiles.iter().map(|p| p.id).collect();
    assert_eq!(ids, vec![1, 2, TAGGED_DEVICES_USER_ID]);
    assert_eq!(
        filter::tests::Held::of(&r.packet_filters.unwrap()).rules(),
        vec![FilterRule::allow_all()]
    );
    assert_eq!(sent.peers.len(), 2);
    // The wire form has no empty disco key (trap 11) and a Peers list.
    let j =
        serde_json::to_value(build_full(&w, NodeId(2), &mut SentState::default(), now())).unwrap();
    assert!(j["Node"].get("DiscoKey").is_none());
}

#[test]
fn deltas_follow_what_the_session_was_sent() {
    let mut w = world(vec![node(1, 1, &[]), node(2, 2, &[])]);
    let mut sent = SentState::default();
    build_full(&w, NodeId(1), &mut sent, now()).unwrap();

    // A new peer arrives as PeersChanged with its owner's profile (bob
    // was already sent, so nothing new), and is then tracked.
    w.put_node(Arc::new(node(3, 2, &[])));
    let r = frame(build_delta(
        &w,
        NodeId(1),
        &Change::upsert(NodeId(3)),
        &mut sent,
        now(),
    ));
    assert_eq!(r.peers_changed.len(), 1);
    assert!(r.user_profiles.is_empty());
    assert!(sent.peers.contains(&NodeId(3)));

    // A patch for a peer becomes PeersChangedPatch with the new values.
    let online = PatchMask {
        online: true,
        endpoints: true,
        ..Default::default()
    };
    w.online.insert(NodeId(2));
    let r = frame(build_delta(
        &w,
        NodeId(1),
        &Change::patch(NodeId(2), online),
        &mut sent,
        now(),
    ));
    assert_eq!(r.peers_changed_patch.len(), 1);
    assert_eq!(r.peers_changed_patch[0].online, Some(true));
    assert_eq!(
        r.peers_changed_patch[0].endpoints.as_deref(),
        Some(&["10.0.0.2:41641".to_string()][..])
    );
    assert!(r.peers_changed.is_empty());

    // Removal is sent once; removing something never sent is nothing.
    w.remove_node(NodeId(3));
    let r = frame(build_delta(
        &w,
        NodeId(1),
        &Change::remove(NodeId(3)),
        &mut sent,
        now(),
    ));
    assert_eq!(r.peers_removed, vec![3]);
    assert!(matches!(
        build_delta(&w, NodeId(1), &Change::remove(NodeId(3)), &mut sent, now()),
        Delta::Nothing
    ));
    // A patch about the session's own node is not echoed back to it.
    assert!(matches!(
        build_delta(
            &w,
            NodeId(1),
            &Change::patch(NodeId(1), online),
            &mut sent,
            now()
        ),
        Delta::Nothing
    ));
}

#[test]
fn self_changes_and_removal() {
    let mut w = world(vec![node(1, 1, &[]), node(2, 1, &[])]);
    let mut sent = SentState::default();
    build_full(&w, NodeId(1), &mut sent, now()).unwrap();
    let mut renamed = node(1, 1, &[]);
    renamed.given_name = DnsLabel::parse("laptop").unwrap();
    w.put_node(Arc::new(renamed));
    let r = frame(build_delta(
        &w,
        NodeId(1),
        &Change::upsert(NodeId(1)),
        &mut sent,
        now(),
    ));
    assert_eq!(r.node.unwrap().name, "laptop.clawql.local.");
    assert!(r.peers_changed.is_empty());
    w.remove_node(NodeId(1));
    // The last frame expires the client's own key (so it leaves Running)
    // and removes every peer.
    let Delta::SelfRemoved(Some(last)) =
        build_delta(&w, NodeId(1), &Change::remove(NodeId(1)), &mut sent, now())
    else {
        panic!("expected a last frame for the deleted node");
    };
    let me = last.node.as_ref().unwrap();
    assert_eq!(me.id, 1);
    assert!(me.expired);
    assert!(me.key_expiry.unwrap() < now());
    assert_eq!(last.peers_removed, vec![2]);
    // Only once: a later change ends the stream without another frame.
    assert!(matches!(
        build_delta(&w, NodeId(1), &Change::remove(NodeId(1)), &mut sent, now()),
        Delta::SelfRemoved(None)
    ));
}

#[test]
fn user_rename_resends_profiles_and_full_change_removes_vanished_peers() {
    let mut w = world(vec![node(1, 1, &[]), node(2, 2, &[])]);
    let mut sent = SentState::default();
    build_full(&w, NodeId(1), &mut sent, now()).unwrap();
    let mut bob = user(2, "robert");
    bob.email.clear();
    w.users.insert(UserId(2), Arc::new(bob));
    let r = frame(build_delta(
        &w,
        NodeId(1),
        &Change::users(),
        &mut sent,
        now(),
    ));
    let names: BTreeMap<i64, String> = r
        .user_profiles
        .iter()
        .map(|p| (p.id, p.login_name.clone()))
        .collect();
    assert_eq!(names[&2], "robert");

    w.remove_node(NodeId(2));
    let r = frame(build_delta(
        &w,
        NodeId(1),
        &Change::full(),
        &mut sent,
        now(),
    ));
    assert_eq!(r.peers_removed, vec![2]);
    assert!(
        r.peers.is_none(),
        "no peers left: Peers omitted, removal explicit"
    );
}

#[test]
fn expired_and_unapproved_nodes_see_nobody_and_are_seen_by_nobody() {
    let mut n2 = node(2, 1, &[]);
    n2.expiry = Some(now() - chrono::Duration::seconds(1));
    let mut n3 = node(3, 1, &[]);
    n3.authorized = false;
    let w = world(vec![node(1, 1, &[]), n2, n3]);
    let r = build_full(&w, NodeId(1), &mut SentState::default(), now()).unwrap();
    assert!(r.peers.is_none(), "{:?}", r.peers);
    // The expired node learns its key expired; the unapproved one that it
    // is not authorized (its client shows NeedsLogin / NeedsMachineAuth).
    let r = build_full(&w, NodeId(2), &mut SentState::default(), now()).unwrap();
    let me = r.node.unwrap();
    assert!(me.expired && !me.machine_authorized);
    assert!(r.peers.is_none());
    let r = build_full(&w, NodeId(3), &mut SentState::default(), now()).unwrap();
    let me = r.node.unwrap();
    assert!(!me.expired && !me.machine_authorized);
    assert!(r.peers.is_none());
}

#[test]
fn approval_and_expiry_move_whole_maps_in_deltas() {
    let mut n1 = node(1, 1, &[]);
    n1.authorized = false;
    let mut w = world(vec![n1.clone(), node(2, 1, &[])]);
    let (mut s1, mut s2) = (SentState::default(), SentState::default());
    build_full(&w, NodeId(1), &mut s1, now()).unwrap();
    build_full(&w, NodeId(2), &mut s2, now()).unwrap();
    assert!(s1.peers.is_empty() && s2.peers.is_empty());
    // Approved: node 1 gets its peers in full, node 2 gets node 1.
    n1.authorized = true;
    w.put_node(Arc::new(n1.clone()));
    let up = Change::upsert(NodeId(1));
    let r = frame(build_delta(&w, NodeId(1), &up, &mut s1, now()));
    assert!(r.node.unwrap().machine_authorized);
    assert_eq!(r.peers.map(|p| p.len()), Some(1));
    let r = frame(build_delta(&w, NodeId(2), &up, &mut s2, now()));
    assert_eq!(r.peers_changed.len(), 1);
    // Its key expires (the expiry watcher upserts it): both lose each other.
    n1.expiry = Some(now() + chrono::Duration::seconds(10));
    w.put_node(Arc::new(n1));
    let later = now() + chrono::Duration::seconds(11);
    let r = frame(build_delta(&w, NodeId(1), &up, &mut s1, later));
    assert!(r.node.unwrap().expired);
    assert_eq!(r.peers_removed, vec![2]);
    let r = frame(build_delta(&w, NodeId(2), &up, &mut s2, later));
    assert_eq!(r.peers_removed, vec![1]);
}

mod capver;
mod certs;
mod dns;
mod equivalence;
mod policy;
mod shared;
