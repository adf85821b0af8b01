//! Fields whose meaning depends on the viewer's capability version: a
//! tailscale 1.78 viewer (capver 109) must get explicit AllowedIPs for
//! itself and its peers, the legacy `DERP` string and a DERP map without
//! certificate pins; a 1.96 viewer (133) gets the current shape.

use std::sync::Arc;

use super::{frame, node, now, world};
use crate::mapper::build::{SentState, build_delta, build_full};
use crate::state::change::Change;
use crate::state::{DerpMaps, Settings, World};
use crate::tailcfg::{DerpMap, DerpNode, DerpRegion};
use crate::types::{Node, NodeId};

const V1_78: i32 = 109;
const V1_96: i32 = 133;
const PIN: &str = "sha256-raw:00ff";

fn viewer(id: i64, capver: i32) -> Node {
    let mut n = node(id, 1, &[]);
    n.cap_version = capver;
    n
}

fn pinned_map(host: &str) -> DerpMap {
    let mut m = DerpMap::default();
    m.regions.insert(
        "999".into(),
        DerpRegion {
            region_id: 999,
            region_code: "clawscale".into(),
            nodes: vec![DerpNode {
                name: "999a".into(),
                region_id: 999,
                host_name: host.into(),
                cert_name: PIN.into(),
                ipv4: host.into(),
                ipv6: "none".into(),
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    m
}

fn with_derp(w: &mut World, map: DerpMap) {
    let mut s: Settings = (*w.settings).clone();
    s.derp_map = DerpMaps::new(map);
    w.settings = Arc::new(s);
}

#[test]
fn old_viewer_gets_explicit_allowed_ips_for_self_and_peers() {
    let w = world(vec![viewer(1, V1_78), viewer(2, V1_96)]);
    let r = build_full(&w, NodeId(1), &mut SentState::default(), now()).unwrap();
    let me = r.node.unwrap();
    assert_eq!(
        me.allowed_ips,
        Some(vec![
            "100.64.0.1/32".to_string(),
            "fd7a:115c:a1e0::1/128".to_string()
        ])
    );
    let peer = &r.peers.unwrap()[0];
    assert_eq!(peer.allowed_ips.as_ref(), Some(&peer.addresses));
    assert_eq!(peer.addresses.len(), 2);
    // Below capver 111 the home region is only read from the legacy string.
    assert_eq!(peer.legacy_derp, "127.3.3.40:999");
    assert_eq!(peer.home_derp, 999);
}

#[test]
fn current_viewer_gets_nil_allowed_ips_and_no_legacy_derp() {
    let w = world(vec![viewer(1, V1_96), viewer(2, V1_78)]);
    let r = build_full(&w, NodeId(1), &mut SentState::default(), now()).unwrap();
    let me = r.node.unwrap();
    assert_eq!(me.allowed_ips, None);
    assert_eq!(me.legacy_derp, "");
    let peer = &r.peers.unwrap()[0];
    assert_eq!(peer.allowed_ips, None);
    assert_eq!(peer.legacy_derp, "");
    assert_eq!(peer.home_derp, 999);
    let json = serde_json::to_value(peer).unwrap();
    assert!(json.get("AllowedIPs").is_none() && json.get("DERP").is_none());
}

#[test]
fn capver_boundaries() {
    // 110 still needs the legacy string; 111 reads HomeDERP. 111 still
    // needs AllowedIPs; 112 reads nil as Addresses.
    for (capver, allowed, legacy) in [(110, true, true), (111, true, false), (112, false, false)] {
        let w = world(vec![viewer(1, capver), viewer(2, V1_96)]);
        let r = build_full(&w, NodeId(1), &mut SentState::default(), now()).unwrap();
        let peer = &r.peers.unwrap()[0];
        assert_eq!(peer.allowed_ips.is_some(), allowed, "capver {capver}");
        assert_eq!(!peer.legacy_derp.is_empty(), legacy, "capver {capver}");
    }
}

#[test]
fn old_viewer_gets_explicit_allowed_ips_in_deltas() {
    let mut w = world(vec![viewer(1, V1_78)]);
    let mut sent = SentState::default();
    build_full(&w, NodeId(1), &mut sent, now()).unwrap();
    w.put_node(Arc::new(viewer(2, V1_96)));
    let r = frame(build_delta(
        &w,
        NodeId(1),
        &Change::upsert(NodeId(2)),
        &mut sent,
        now(),
    ));
    let peer = &r.peers_changed[0];
    assert_eq!(
        peer.allowed_ips,
        Some(vec![
            "100.64.0.2/32".to_string(),
            "fd7a:115c:a1e0::2/128".to_string()
        ])
    );
}

#[test]
fn served_routes_stay_in_allowed_ips_for_every_viewer() {
    let mut router = viewer(2, V1_96);
    router.hostinfo = serde_json::json!({"RoutableIPs": ["10.9.0.0/16"]}).into();
    router.approved_routes = vec!["10.9.0.0/16".parse().unwrap()];
    for capver in [V1_78, V1_96] {
        let mut w = world(vec![viewer(1, capver), router.clone()]);
        // Online, so the HA election makes it the route's primary.
        w.online.insert(NodeId(2));
        w.reelect(now());
        let r = build_full(&w, NodeId(1), &mut SentState::default(), now()).unwrap();
        let peer = &r.peers.unwrap()[0];
        assert_eq!(
            peer.allowed_ips.as_deref(),
            Some(
                &[
                    "100.64.0.2/32".to_string(),
                    "fd7a:115c:a1e0::2/128".to_string(),
                    "10.9.0.0/16".to_string()
                ][..]
            ),
            "capver {capver}"
        );
    }
}

#[test]
fn derp_map_per_viewer_class() {
    let mut w = world(vec![viewer(1, V1_78), viewer(2, V1_96)]);
    with_derp(&mut w, pinned_map("10.0.0.1"));
    let old = build_full(&w, NodeId(1), &mut SentState::default(), now()).unwrap();
    let new = build_full(&w, NodeId(2), &mut SentState::default(), now()).unwrap();
    let old_node = &old.derp_map.unwrap().regions["999"].nodes[0];
    let new_node = &new.derp_map.unwrap().regions["999"].nodes[0];
    assert_eq!(old_node.cert_name, "", "1.78 cannot verify a pin");
    assert_eq!(old_node.host_name, "10.0.0.1");
    assert_eq!(new_node.cert_name, PIN);
    assert_eq!(new_node.ipv6, "none");
}

#[test]
fn refreshed_derp_map_reaches_open_sessions_once() {
    let mut w = world(vec![viewer(1, V1_78), viewer(2, V1_96)]);
    with_derp(&mut w, pinned_map("10.0.0.1"));
    let mut sent_old = SentState::default();
    let mut sent_new = SentState::default();
    build_full(&w, NodeId(1), &mut sent_old, now()).unwrap();
    build_full(&w, NodeId(2), &mut sent_new, now()).unwrap();

    // Another change leaves the DERP map out.
    let r = frame(build_delta(
        &w,
        NodeId(2),
        &Change::upsert(NodeId(1)),
        &mut sent_new,
        now(),
    ));
    assert!(r.derp_map.is_none());

    with_derp(&mut w, pinned_map("10.0.0.2"));
    let r = frame(build_delta(
        &w,
        NodeId(1),
        &Change::settings(),
        &mut sent_old,
        now(),
    ));
    let node = &r.derp_map.unwrap().regions["999"].nodes[0];
    assert_eq!(
        (node.host_name.as_str(), node.cert_name.as_str()),
        ("10.0.0.2", "")
    );
    let r = frame(build_delta(
        &w,
        NodeId(2),
        &Change::settings(),
        &mut sent_new,
        now(),
    ));
    assert_eq!(r.derp_map.unwrap().regions["999"].nodes[0].cert_name, PIN);
    // An equal map published again is not re-sent.
    with_derp(&mut w, pinned_map("10.0.0.2"));
    assert!(matches!(
        build_delta(&w, NodeId(2), &Change::settings(), &mut sent_new, now()),
        crate::mapper::build::Delta::Nothing
    ));
}

#[test]
fn a_client_that_upgrades_gets_its_new_class_of_derp_map() {
    let mut w = world(vec![viewer(1, V1_78)]);
    with_derp(&mut w, pinned_map("10.0.0.1"));
    let mut sent = SentState::default();
    build_full(&w, NodeId(1), &mut sent, now()).unwrap();
    w.put_node(Arc::new(viewer(1, V1_96)));
    let r = frame(build_delta(
        &w,
        NodeId(1),
        &Change::upsert(NodeId(1)),
        &mut sent,
        now(),
    ));
    assert_eq!(r.derp_map.unwrap().regions["999"].nodes[0].cert_name, PIN);
    assert_eq!(r.node.unwrap().allowed_ips, None);
}
