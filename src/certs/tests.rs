//! The set-dns authorisation rule and the challenge records' lifetime.

use std::sync::Arc;

use chrono::{TimeZone, Utc};

use super::*;
use crate::clock::ManualClock;
use crate::state::policy::{PolicyState, accept};
use crate::state::{Settings, World};
use crate::types::{DnsLabel, MachinePublic, NodeId, NodePublic, User, UserId};

/// A valid DNS-01 value: 43 characters of base64url.
const VALUE: &str = "Lt8Ztp1PPmi7oJ0ETa2ByYUYVnFJPJQvXnd1dqh9x4c";

const POLICY: &str = r#"{
  "tagOwners": {
    "tag:mcp": ["alice@example.com"],
    "tag:noweb": ["alice@example.com"],
    "tag:web": ["alice@example.com"]
  },
  "services": {"svc:mcp": {"hosts": ["tag:mcp"], "ports": ["tcp:443"]}},
  "nodeAttrs": [
    {"target": ["tag:noweb"], "attr": ["disable-https"]},
    {"target": ["tag:web"], "attr": ["https"]}
  ],
  "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
}"#;

fn node(id: i64, tags: &[&str]) -> Node {
    Node {
        id: NodeId(id),
        machine_key: MachinePublic([id as u8; 32]),
        node_key: NodePublic([id as u8 + 100; 32]),
        disco_key: Default::default(),
        hostname: format!("h{id}"),
        given_name: DnsLabel::from_hostname(&format!("h{id}")),
        user_id: UserId(1),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ipv4: Some(format!("100.64.0.{id}").parse().unwrap()),
        ipv6: Some(format!("fd7a:115c:a1e0::{id}").parse().unwrap()),
        endpoints: vec![],
        home_derp: 0,
        hostinfo: serde_json::json!({}).into(),
        expiry: None,
        ephemeral: false,
        auth_key_id: None,
        cap_version: 133,
        created_at: Utc::now(),
        last_seen: None,
        approved_routes: vec![],
        authorized: true,
    }
}

/// h1 (plain), h2 (hosts svc:mcp), h3 (disable-https), h4 (https).
fn world(certs: Certs) -> World {
    let settings = Settings {
        base_domain: "clawql.local".into(),
        derp_map: Default::default(),
        dns: Default::default(),
        domain: "clawql.local".into(),
        certs,
        login_url: String::new(),
    };
    let alice = User {
        id: UserId(1),
        name: "alice".into(),
        display_name: String::new(),
        email: "alice@example.com".into(),
        created_at: Utc::now(),
        oidc: None,
        profile_pic_url: String::new(),
        groups: vec![],
    };
    let nodes = vec![
        node(1, &[]),
        node(2, &["tag:mcp"]),
        node(3, &["tag:noweb"]),
        node(4, &["tag:web"]),
    ];
    let mut w = World::new(settings, vec![alice], nodes);
    let (policy, compiled) = accept(POLICY, &w).expect("policy accepted");
    w.policy = Arc::new(PolicyState {
        text: Some(POLICY.into()),
        policy: Some(policy),
        compiled: Some(compiled),
        updated_at: None,
    });
    w
}

fn domains_of(w: &World, id: i64) -> Vec<String> {
    let n = w.node(NodeId(id)).unwrap().clone();
    cert_domains(w, &n, &policy_caps(w, &n))
}

fn set(w: &World, id: i64, name: &str) -> Result<Challenge, Refusal> {
    let n = w.node(NodeId(id)).unwrap().clone();
    authorize(w, &n, name, "TXT", VALUE)
}

#[test]
fn cert_domains_are_the_node_name_and_the_services_it_hosts() {
    let w = world(Certs::AllNodes);
    assert_eq!(domains_of(&w, 1), vec!["h1.clawql.local"]);
    assert_eq!(
        domains_of(&w, 2),
        vec!["h2.clawql.local", "mcp.clawql.local"]
    );
    // disable-https wins; https alone changes nothing when all nodes may.
    assert!(domains_of(&w, 3).is_empty());
    assert_eq!(domains_of(&w, 4), vec!["h4.clawql.local"]);
}

#[test]
fn opt_in_needs_the_https_attribute_and_off_gives_nothing() {
    let w = world(Certs::OptIn);
    assert!(domains_of(&w, 1).is_empty());
    assert!(domains_of(&w, 2).is_empty());
    assert_eq!(domains_of(&w, 4), vec!["h4.clawql.local"]);
    let w = world(Certs::Off);
    for id in 1..=4 {
        assert!(domains_of(&w, id).is_empty(), "node {id}");
    }
}

#[test]
fn the_map_capability_follows_the_same_rule() {
    let https = |certs, attrs: &[&str]| {
        let caps: CapMap = attrs.iter().map(|a| (a.to_string(), vec![])).collect();
        map_caps(certs, caps).contains_key(HTTPS)
    };
    assert!(https(Certs::AllNodes, &[]));
    assert!(!https(Certs::AllNodes, &[DISABLE_HTTPS]));
    assert!(!https(Certs::OptIn, &[]));
    assert!(https(Certs::OptIn, &[HTTPS]));
    assert!(!https(Certs::OptIn, &[HTTPS, DISABLE_HTTPS]));
    // A policy cannot promise certificates the server does not answer for.
    assert!(!https(Certs::Off, &[HTTPS]));
}

#[test]
fn a_node_may_set_only_its_own_challenges() {
    let w = world(Certs::AllNodes);
    let c = set(&w, 1, "_acme-challenge.h1.clawql.local.").unwrap();
    assert_eq!(c.owner, "_acme-challenge.h1.clawql.local");
    assert_eq!(c.domain, "h1.clawql.local");
    assert_eq!(c.value, VALUE);
    // Case does not matter (DNS names are case-insensitive).
    assert!(set(&w, 1, "_ACME-Challenge.H1.clawql.local").is_ok());
    // The host of svc:mcp may prove the service name; nobody else may.
    assert_eq!(
        set(&w, 2, "_acme-challenge.mcp.clawql.local")
            .unwrap()
            .domain,
        "mcp.clawql.local"
    );
    for (id, name) in [
        (1, "_acme-challenge.h2.clawql.local"),
        (1, "_acme-challenge.mcp.clawql.local"),
        (1, "h1.clawql.local"),
        (1, "_acme-challenge.clawql.local"),
        (1, "_acme-challenge.x.h1.clawql.local"),
        (1, "_acme-challenge.h1.clawql.local.evil.example"),
        (1, "_acme-challenge.h1.example.com"),
        (4, "_acme-challenge.h1.clawql.local"),
    ] {
        match set(&w, id, name) {
            Err(Refusal::Name { allowed, .. }) => {
                assert!(!allowed.iter().any(|a| a == name), "{name}");
            }
            other => panic!("node {id} setting {name}: {other:?}"),
        }
    }
    assert_eq!(
        set(&w, 3, "_acme-challenge.h3.clawql.local"),
        Err(Refusal::NotForThisNode)
    );
    let w = world(Certs::Off);
    assert_eq!(
        set(&w, 1, "_acme-challenge.h1.clawql.local"),
        Err(Refusal::Disabled)
    );
}

#[test]
fn only_txt_records_with_acme_values_are_accepted() {
    let w = world(Certs::AllNodes);
    let n = w.node(NodeId(1)).unwrap().clone();
    let name = "_acme-challenge.h1.clawql.local";
    for kind in ["A", "CNAME", ""] {
        assert_eq!(
            authorize(&w, &n, name, kind, VALUE),
            Err(Refusal::Type(kind.into()))
        );
    }
    assert!(authorize(&w, &n, name, "txt", VALUE).is_ok());
    for value in [
        "",
        "short",
        "Lt8Ztp1PPmi7oJ0ETa2ByYUYVnFJPJQvXnd1dqh9x4c=",
        "Lt8Ztp1PPmi7oJ0ETa2ByYUYVnFJPJQvXnd1dqh9x4 ",
        "v=spf1 include:example.com ~all aaaaaaaaaa",
    ] {
        assert!(
            matches!(
                authorize(&w, &n, name, "TXT", value),
                Err(Refusal::Value(_))
            ),
            "{value:?}"
        );
    }
}

#[test]
fn challenge_records_live_for_their_lifetime_only() {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 7, 1, 12, 0, 0).unwrap(),
    ));
    let store = Challenges::new(clock.clone(), chrono::Duration::minutes(10));
    let owner = "_acme-challenge.h1.clawql.local";
    assert!(store.txt(owner).is_empty());
    store.put(owner, "first");
    assert_eq!(store.txt("_ACME-CHALLENGE.h1.clawql.local."), vec!["first"]);
    clock.advance(chrono::Duration::minutes(6));
    store.put(owner, "second");
    assert_eq!(store.txt(owner), vec!["first", "second"]);
    clock.advance(chrono::Duration::minutes(5));
    // 11 minutes after the first: gone; the second has 5 minutes left.
    assert_eq!(store.txt(owner), vec!["second"]);
    clock.advance(chrono::Duration::minutes(4));
    assert_eq!(store.txt(owner), vec!["second"]);
    clock.advance(chrono::Duration::minutes(1));
    assert!(store.txt(owner).is_empty());
    assert!(store.is_empty());
}

#[test]
fn challenge_records_are_bounded_per_name_and_renewed_by_value() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let store = Challenges::new(clock.clone(), chrono::Duration::minutes(10));
    let owner = "_acme-challenge.h1.clawql.local";
    for i in 0..(MAX_VALUES_PER_NAME + 2) {
        store.put(owner, &format!("v{i}"));
    }
    let live = store.txt(owner);
    assert_eq!(live.len(), MAX_VALUES_PER_NAME);
    assert_eq!(live.first().unwrap(), "v2", "the oldest go first");
    // Publishing a value again renews it instead of adding a copy.
    clock.advance(chrono::Duration::minutes(9));
    store.put(owner, "v3");
    clock.advance(chrono::Duration::minutes(2));
    assert_eq!(store.txt(owner), vec!["v3"]);
    // Expired names are dropped from memory on the next write.
    store.put("_acme-challenge.h2.clawql.local", "x");
    assert_eq!(store.len(), 2);
}
