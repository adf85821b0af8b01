use std::sync::Arc;

use chrono::TimeZone;

use super::*;
use crate::mapper::build::TAGGED_DEVICES_USER_ID;
use crate::policy::Policy;
use crate::state::Settings;
use crate::state::policy::{PolicyState, topology};
use crate::types::{DnsLabel, MachinePublic, User, UserId};

pub(crate) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()
}

pub(crate) fn node(id: i64, user: i64, name: &str, tags: &[&str]) -> Node {
    Node {
        id: NodeId(id),
        machine_key: MachinePublic([id as u8; 32]),
        node_key: NodePublic([id as u8 + 100; 32]),
        disco_key: Default::default(),
        hostname: format!("host-{name}"),
        given_name: DnsLabel::from_hostname(name),
        user_id: UserId(user),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ipv4: Some(format!("100.64.0.{id}").parse().unwrap()),
        ipv6: Some(format!("fd7a:115c:a1e0::{id}").parse().unwrap()),
        endpoints: vec![format!("10.0.0.{id}:41641")],
        home_derp: 900,
        hostinfo: serde_json::json!({"Hostname": format!("host-{name}"), "OS": "linux"}).into(),
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

pub(crate) fn user(id: i64, name: &str, display: &str) -> User {
    User {
        id: UserId(id),
        name: name.into(),
        display_name: display.into(),
        email: format!("{name}@example.com"),
        created_at: now(),
        oidc: None,
        profile_pic_url: String::new(),
        groups: vec![],
    }
}

pub(crate) const POLICY: &str = r#"{
  "tagOwners": {"tag:gw": ["alice@example.com"], "tag:bot": ["alice@example.com"]},
  "grants": [
    {"src": ["*"], "dst": ["*"], "ip": ["*"]},
    {"src": ["alice@example.com"], "dst": ["tag:gw"],
     "app": {"clawql.dev/cap/mcp": [{"tools": ["search_*"]}]}},
    {"src": ["tag:bot"], "dst": ["tag:gw"],
     "app": {"clawql.dev/cap/mcp": [{"tools": ["fetch"], "servers": ["svc:mcp"]}]}}
  ]
}"#;

/// alice (1) on node 1, bob (2) on node 2, a tagged bot (3), the gateway (4).
pub(crate) fn world() -> World {
    let settings = Settings {
        base_domain: "clawql.local".into(),
        derp_map: Default::default(),
        dns: Default::default(),
        domain: "clawql.local".into(),
        certs: Default::default(),
        login_url: String::new(),
    };
    let mut w = World::new(
        settings,
        vec![user(1, "alice", "Alice"), user(2, "bob", "")],
        vec![
            node(1, 1, "alpha", &[]),
            node(2, 2, "beta", &[]),
            node(3, 1, "bot", &["tag:bot"]),
            node(4, 1, "gw", &["tag:gw"]),
        ],
    );
    set_policy(&mut w, POLICY);
    w
}

/// Puts `text`, compiled for `w`'s nodes, in force in `w`.
pub(crate) fn set_policy(w: &mut World, text: &str) {
    let p = Policy::parse(text).unwrap();
    let c = p.compile(&topology(w));
    w.policy = Arc::new(PolicyState {
        text: None,
        policy: Some(p),
        compiled: Some(c),
        updated_at: None,
    });
}

pub(crate) fn ip(s: &str) -> Query {
    Query::Ip(s.parse().unwrap())
}

#[test]
fn user_node_answer_has_tailscaled_shape() {
    let w = world();
    let a = whois(&w, ip("100.64.0.1"), Some(NodeId(4)), now()).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&to_body(&a)).unwrap();
    assert_eq!(v["Node"]["Name"], "alpha.clawql.local.");
    assert_eq!(v["Node"]["ID"], 1);
    assert_eq!(v["Node"]["StableID"], "n1");
    assert_eq!(v["Node"]["User"], 1);
    assert_eq!(
        v["Node"]["Addresses"],
        serde_json::json!(["100.64.0.1/32", "fd7a:115c:a1e0::1/128"])
    );
    assert_eq!(v["Node"]["AllowedIPs"], v["Node"]["Addresses"]);
    assert_eq!(v["Node"]["HomeDERP"], 900);
    assert!(v["Node"].get("DERP").is_none(), "legacy DERP folded away");
    assert_eq!(v["Node"]["Hostinfo"]["OS"], "linux");
    assert_eq!(v["Node"]["ComputedName"], "alpha");
    assert_eq!(v["Node"]["ComputedNameWithHost"], "alpha (host-alpha)");
    assert_eq!(v["UserProfile"]["ID"], 1);
    assert_eq!(v["UserProfile"]["LoginName"], "alice@example.com");
    assert_eq!(v["UserProfile"]["DisplayName"], "Alice");
    assert_eq!(
        v["CapMap"]["clawql.dev/cap/mcp"],
        serde_json::json!([{"tools": ["search_*"]}])
    );
    // tailscaled indents with tabs.
    assert!(
        String::from_utf8(to_body(&a))
            .unwrap()
            .contains("\n\t\"Node\": {")
    );
}

#[test]
fn node_is_the_mappers_peer_view() {
    let w = world();
    let a = whois(&w, ip("100.64.0.2"), None, now()).unwrap();
    let mut want = tail_node(&w, w.node(NodeId(2)).unwrap(), now(), false);
    want.allowed_ips = Some(want.addresses.clone());
    want.legacy_derp = String::new();
    assert_eq!(a.node.node, want);
    assert_eq!(a.user_profile, profile(&w, 2).unwrap());
    assert_eq!(
        a.user_profile.display_name, "bob",
        "display falls back to name"
    );
}

#[test]
fn tagged_node_profile_is_tagged_devices() {
    let w = world();
    let a = whois(&w, ip("fd7a:115c:a1e0::3"), Some(NodeId(4)), now()).unwrap();
    assert_eq!(a.node.node.user, TAGGED_DEVICES_USER_ID);
    assert_eq!(a.node.node.tags, vec!["tag:bot"]);
    assert_eq!(a.user_profile.id, TAGGED_DEVICES_USER_ID);
    assert_eq!(a.user_profile.login_name, "tagged-devices");
    assert_eq!(a.user_profile.display_name, "Tagged Devices");
    assert_eq!(
        a.cap_map["clawql.dev/cap/mcp"],
        vec![serde_json::json!({"tools": ["fetch"], "servers": ["svc:mcp"]})]
    );
}

#[test]
fn capmap_is_per_destination() {
    let w = world();
    // bob has no mcp grant; alice has none towards bob's node.
    assert!(
        whois(&w, ip("100.64.0.2"), Some(NodeId(4)), now())
            .unwrap()
            .cap_map
            .is_empty()
    );
    assert!(
        whois(&w, ip("100.64.0.1"), Some(NodeId(2)), now())
            .unwrap()
            .cap_map
            .is_empty()
    );
    assert!(
        whois(&w, ip("100.64.0.1"), None, now())
            .unwrap()
            .cap_map
            .is_empty()
    );
    let body = to_body(&whois(&w, ip("100.64.0.2"), Some(NodeId(4)), now()).unwrap());
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v.get("CapMap").is_none(), "empty CapMap omitted");
}

#[test]
fn unknown_addresses_and_missing_profiles_are_not_found() {
    let w = world();
    assert!(whois(&w, ip("100.64.0.99"), None, now()).is_none());
    // A subnet address is not a node address.
    assert!(whois(&w, ip("10.0.0.1"), None, now()).is_none());
    // Node 2's user is unknown: no profile ⇒ 404, as in tailscaled.
    let w = World::new(
        w.settings.as_ref().clone(),
        vec![user(1, "alice", "Alice")],
        vec![node(1, 1, "alpha", &[]), node(2, 2, "beta", &[])],
    );
    assert!(whois(&w, ip("100.64.0.2"), None, now()).is_none());
    assert!(whois(&w, ip("100.64.0.1"), None, now()).is_some());
    // IPv4-mapped addresses are the IPv4 ones.
    assert!(
        whois(
            &w,
            Query::parse(Some("[::ffff:100.64.0.1]:80")).unwrap(),
            None,
            now()
        )
        .is_some()
    );
}

#[test]
fn nodekey_lookup() {
    let w = world();
    let k = NodePublic([102; 32]);
    let q = Query::parse(Some(&k.to_string())).unwrap();
    assert_eq!(q, Query::NodeKey(k));
    assert_eq!(whois(&w, q, None, now()).unwrap().node.node.id, 2);
}

#[test]
fn addr_parsing_matches_tailscaled() {
    let w = world();
    for a in [
        "100.64.0.1",
        "100.64.0.1:51234",
        "[fd7a:115c:a1e0::1]:443",
        "fd7a:115c:a1e0::1",
    ] {
        let q = Query::parse(Some(a)).unwrap();
        assert_eq!(whois(&w, q, None, now()).unwrap().node.node.id, 1, "{a}");
    }
    assert_eq!(Query::parse(None), Err(AddrError::Missing));
    assert_eq!(Query::parse(Some("")), Err(AddrError::Missing));
    assert_eq!(Query::parse(Some("alpha")), Err(AddrError::Invalid));
    assert_eq!(Query::parse(Some("1.2.3.4:99999")), Err(AddrError::Invalid));
    assert_eq!(
        Query::parse(Some("nodekey:zz")),
        Err(AddrError::InvalidNodeKey)
    );
    assert_eq!(AddrError::Missing.to_string(), "missing 'addr' parameter");
}

#[test]
fn destinations_resolve_by_name_fqdn_and_ip() {
    let w = world();
    for spec in [
        "gw",
        "GW",
        "gw.clawql.local",
        "gw.clawql.local.",
        "100.64.0.4",
        "fd7a:115c:a1e0::4",
    ] {
        assert_eq!(
            resolve_node(&w, spec).map(|n| n.id),
            Some(NodeId(4)),
            "{spec}"
        );
    }
    assert!(resolve_node(&w, "nope").is_none());
    assert!(resolve_node(&w, "100.64.0.77").is_none());
}

#[test]
fn without_policy_there_are_no_caps() {
    let mut w = world();
    w.policy = Arc::default();
    let a = whois(&w, ip("100.64.0.1"), Some(NodeId(4)), now()).unwrap();
    assert!(a.cap_map.is_empty());
}

#[test]
fn filter_capgrants_agree_with_the_policy_engine() {
    let w = world();
    let c = w.policy.compiled.clone().unwrap();
    let cache = CapCache::default();
    for dst in 1..=4i64 {
        for src in w.nodes.values() {
            for ip in src.addresses() {
                let want = c.whois_caps(ip, dst as u64);
                let got = whois(&w, Query::Ip(ip), Some(NodeId(dst)), now()).unwrap();
                assert_eq!(got.cap_map, want, "{ip} → {dst}");
                let cached = whois_with(&w, Query::Ip(ip), Some(NodeId(dst)), now(), Some(&cache));
                assert_eq!(cached.unwrap().cap_map, want, "cached {ip} → {dst}");
            }
        }
    }
    // A new policy (new filter Arc) is picked up despite the cache.
    let mut w2 = world();
    set_policy(
        &mut w2,
        r#"{"grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]}]}"#,
    );
    let a = whois_with(&w2, ip("100.64.0.1"), Some(NodeId(4)), now(), Some(&cache)).unwrap();
    assert!(a.cap_map.is_empty());
}
