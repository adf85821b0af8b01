use chrono::TimeZone;

use super::*;
use crate::tailcfg::{self, UserProfile};
use crate::whois::answer::WhoisNode;

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn forged_forwarded_for_from_untrusted_peer_is_ignored() {
    let trusted = nets(&["127.0.0.1/32"]);
    let got = client_ip(Some(ip("100.64.0.9")), &["100.64.0.1"], &trusted).unwrap();
    assert_eq!(got, ip("100.64.0.9"));
    // Even malformed headers do not matter then.
    let got = client_ip(Some(ip("100.64.0.9")), &["garbage"], &trusted).unwrap();
    assert_eq!(got, ip("100.64.0.9"));
    // And with no trusted proxies at all.
    let got = client_ip(Some(ip("127.0.0.1")), &["100.64.0.1"], &[]).unwrap();
    assert_eq!(got, ip("127.0.0.1"));
}

#[test]
fn trusted_proxy_forwarded_for_picks_rightmost_untrusted_hop() {
    let trusted = nets(&["127.0.0.0/8", "10.1.0.0/16"]);
    let peer = Some(ip("127.0.0.1"));
    assert_eq!(
        client_ip(peer, &["100.64.0.1"], &trusted).unwrap(),
        ip("100.64.0.1")
    );
    // A client-written entry to the left of the real one is ignored.
    assert_eq!(
        client_ip(peer, &["100.64.0.7, 100.64.0.1"], &trusted).unwrap(),
        ip("100.64.0.1")
    );
    // Trusted hops on the right are skipped; several headers concatenate.
    assert_eq!(
        client_ip(peer, &["100.64.0.1", "10.1.2.3"], &trusted).unwrap(),
        ip("100.64.0.1")
    );
    // Ports and brackets as some proxies write them.
    assert_eq!(
        client_ip(peer, &["[fd7a:115c:a1e0::5]:1234"], &trusted).unwrap(),
        ip("fd7a:115c:a1e0::5")
    );
    // No header: the proxy itself.
    assert_eq!(client_ip(peer, &[], &trusted).unwrap(), ip("127.0.0.1"));
    // IPv4-mapped peers count as IPv4.
    assert_eq!(
        client_ip(Some(ip("::ffff:127.0.0.1")), &["100.64.0.1"], &trusted).unwrap(),
        ip("100.64.0.1")
    );
    assert!(matches!(
        client_ip(peer, &["100.64.0.1, bogus"], &trusted),
        Err(SourceError::BadForwardedFor(_))
    ));
}

#[test]
fn unix_socket_clients_are_trusted_but_need_a_header() {
    assert_eq!(
        client_ip(None, &["100.64.0.3"], &[]).unwrap(),
        ip("100.64.0.3")
    );
    assert_eq!(client_ip(None, &[], &[]), Err(SourceError::Missing));
}

#[test]
fn globbing() {
    assert!(glob("search_*", "search_web"));
    assert!(glob("search_*", "search_"));
    assert!(!glob("search_*", "research_web"));
    assert!(glob("*", ""));
    assert!(glob("*fetch*", "prefetch_all"));
    assert!(glob("f?tch", "fetch"));
    assert!(!glob("f?tch", "fetch2"));
    assert!(glob("a*b*c", "axxbyyc"));
    assert!(!glob("a*b*c", "axxbyy"));
    assert!(glob("exact", "exact"));
    assert!(!glob("exact", "exac"));
    assert!(glob("ü*", "über"));
    // `?` is one character, not one byte, outside ASCII too.
    assert!(glob("?ber", "über"));
    assert!(!glob("??ber", "über"));
    assert!(glob("*ü", "menü"));
}

fn caps(v: serde_json::Value) -> CapMap {
    serde_json::from_value(v).unwrap()
}

#[test]
fn tool_decisions_follow_mcp_grants() {
    let c = caps(serde_json::json!({
        "clawql.dev/cap/mcp": [
            {"tools": ["search_*"]},
            {"tools": ["fetch"], "servers": ["svc:mcp*"]}
        ],
        "other/cap": [{"tools": ["*"]}]
    }));
    let d = decide(&c, Some("search_web"), None);
    assert!(d.allowed);
    assert_eq!(
        d.rule.as_deref(),
        Some("clawql.dev/cap/mcp[0] tools:\"search_*\"")
    );
    let d = decide(&c, Some("fetch"), Some("svc:mcp-1"));
    assert!(d.allowed);
    assert_eq!(
        d.rule.as_deref(),
        Some("clawql.dev/cap/mcp[1] tools:\"fetch\" servers:\"svc:mcp*\"")
    );
    assert!(!decide(&c, Some("fetch"), Some("svc:other")).allowed);
    // The first grant has no server list: any server.
    assert!(decide(&c, Some("search_x"), Some("svc:other")).allowed);
    let d = decide(&c, Some("delete_all"), None);
    assert!(!d.allowed);
    assert!(d.reason.contains("delete_all"), "{}", d.reason);
    // No tool named: identity only, any grant admits.
    assert!(decide(&c, None, None).allowed);
    // Grants of other capabilities do not count.
    let d = decide(
        &caps(serde_json::json!({"other/cap": [{}]})),
        Some("x"),
        None,
    );
    assert!(!d.allowed);
    assert!(
        decide(&CapMap::new(), None, None)
            .reason
            .contains("no clawql.dev/cap/mcp grant")
    );
    // A grant without a tool list allows every tool; non-objects are skipped.
    let c = caps(serde_json::json!({"clawql.dev/cap/mcp": [null, "x", {}]}));
    let d = decide(&c, Some("anything"), None);
    assert_eq!(d.rule.as_deref(), Some("clawql.dev/cap/mcp[2]"));
    // A malformed tool list admits nothing.
    let c = caps(serde_json::json!({"clawql.dev/cap/mcp": [{"tools": "search"}]}));
    assert!(!decide(&c, Some("search"), None).allowed);
}

#[test]
fn identity_headers_are_http_safe() {
    let w = WhoIs {
        node: WhoisNode {
            node: tailcfg::Node {
                name: "alpha.clawql.local.".into(),
                tags: vec!["tag:a".into(), "tag:b".into()],
                created: Some(chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
                ..Default::default()
            },
            computed_name: "alpha".into(),
            computed_name_with_host: "alpha".into(),
        },
        user_profile: UserProfile {
            id: 1,
            login_name: "alice@example.com".into(),
            display_name: "Zoë Ä".into(),
        },
        cap_map: caps(serde_json::json!({"clawql.dev/cap/mcp": [{"tools": ["a"]}]})),
    };
    let h: std::collections::BTreeMap<_, _> = identity_headers(&w).into_iter().collect();
    assert_eq!(h["Tailscale-User-Login"], "alice@example.com");
    assert_eq!(h["Tailscale-User-Name"], "=?utf-8?q?Zo=C3=AB_=C3=84?=");
    assert_eq!(h["Tailscale-Node"], "alpha.clawql.local");
    assert_eq!(h["Tailscale-Tags"], "tag:a,tag:b");
    assert_eq!(
        h["Tailscale-Caps"],
        r#"{"clawql.dev/cap/mcp":[{"tools":["a"]}]}"#
    );
    for v in h.values() {
        assert!(axum::http::HeaderValue::from_str(v).is_ok(), "{v}");
    }
}
