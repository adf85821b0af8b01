//! `dns.server.*`, the extra record types the authoritative server serves,
//! and the `extra_records_path` JSON format.

use super::*;

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

#[test]
fn dns_server_defaults() {
    let s = Config::embedded("/tmp/x").dns.server;
    assert!(!s.enabled);
    assert_eq!(s.listen_addr, addr("127.0.0.1:5353"));
    assert_eq!(
        s.allow,
        vec![
            net("127.0.0.0/8"),
            net("::1/128"),
            net("100.64.0.0/10"),
            net("fd7a:115c:a1e0::/48")
        ]
    );
    assert_eq!(s.ttl, 10);
    assert_eq!((s.rate_limit_qps, s.rate_limit_burst), (500, 1000));
    assert_eq!(s.tcp_timeout, Duration::from_secs(5));
    assert!(!s.policy_filter);
}

#[test]
fn dns_server_keys_are_read() {
    let c = load_str(
        "prefixes: {v6: \"\"}\ndns:\n  server:\n    enabled: true\n    listen_addr: \"[::]:53\"\n    \
         allow: [10.1.2.3, 192.0.2.0/24]\n    ttl: 1m\n    rate_limit: {qps: 5, burst: 7}\n    \
         tcp_timeout: 2s\n    policy_filter: true\n",
    )
    .unwrap();
    let s = c.dns.server;
    assert!(s.enabled && s.policy_filter);
    assert_eq!(s.listen_addr, addr("[::]:53"));
    assert_eq!(s.allow, vec![net("10.1.2.3/32"), net("192.0.2.0/24")]);
    assert_eq!(s.ttl, 60);
    assert_eq!((s.rate_limit_qps, s.rate_limit_burst), (5, 7));
    assert_eq!(s.tcp_timeout, Duration::from_secs(2));
    // The default allow-list follows the configured prefixes.
    let c = load_str("prefixes: {v6: \"\"}\n").unwrap();
    assert_eq!(c.dns.server.allow.len(), 3);
}

#[test]
fn dns_server_bad_values_name_their_key() {
    let cases = [
        (
            "dns: {server: {listen_addr: nowhere}}",
            "dns.server.listen_addr",
        ),
        ("dns: {server: {allow: []}}", "dns.server.allow"),
        (
            "dns: {server: {allow: [10.0.0.0/33]}}",
            "dns.server.allow[0]",
        ),
        ("dns: {server: {ttl: 0}}", "dns.server.ttl"),
        ("dns: {server: {ttl: 2d}}", "dns.server.ttl"),
        (
            "dns: {server: {tcp_timeout: soon}}",
            "dns.server.tcp_timeout",
        ),
        (
            "dns: {server: {rate_limit: {burst: 0}}}",
            "dns.server.rate_limit.burst",
        ),
    ];
    for (yaml, key) in cases {
        let err = error_of(yaml);
        assert!(err.starts_with(&format!("invalid {key}:")), "{yaml}: {err}");
    }
    let err = error_of("dns: {server: {enable: true}}");
    assert!(err.contains(r#"unknown key "dns.server.enable""#), "{err}");
    let err = error_of("dns: {server: {rate_limit: {rps: 1}}}");
    assert!(err.contains(r#""dns.server.rate_limit.rps""#), "{err}");
}

#[test]
fn extra_records_of_every_served_type() {
    let c = load_str(
        "dns:\n  extra_records:\n    - {name: Web.Clawql.Local., type: cname, value: mcp.clawql.local.}\n    \
         - {name: info.clawql.local, type: TXT, value: \"v=1 hello\"}\n    \
         - {name: _mcp._tcp.clawql.local, type: SRV, value: \"10  5 443 mcp.clawql.local\"}\n",
    )
    .unwrap();
    let r = &c.dns.extra_records;
    assert_eq!(
        (
            r[0].name.as_str(),
            r[0].r#type.as_str(),
            r[0].value.as_str()
        ),
        ("web.clawql.local", "CNAME", "mcp.clawql.local")
    );
    assert_eq!(r[1].value, "v=1 hello");
    assert_eq!(r[2].name, "_mcp._tcp.clawql.local");
    assert_eq!(r[2].value, "10 5 443 mcp.clawql.local");
    for bad in [
        "{name: a.example, type: SRV, value: \"1 2 a.example\"}",
        "{name: a.example, type: SRV, value: \"1 2 70000 a.example\"}",
        "{name: a.example, type: CNAME, value: 100.64.0.1}",
        "{name: a.example, type: TXT, value: \"\"}",
    ] {
        let err = error_of(&format!("dns:\n  extra_records:\n    - {bad}\n"));
        assert!(
            err.starts_with("invalid dns.extra_records[0].value:"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn extra_records_json_file_format() {
    let r = parse_extra_records_json(
        r#"[{"name": "grafana.clawql.local", "type": "A", "value": "100.64.0.9"},
            {"name": "x.clawql.local", "type": "TXT", "value": "t"}]"#,
    )
    .unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].value, "100.64.0.9");
    assert!(parse_extra_records_json("[]").unwrap().is_empty());
    let err = parse_extra_records_json(r#"[{"name": "a.b", "type": "A"}]"#).unwrap_err();
    assert!(err.to_string().contains("value"), "{err}");
    let err =
        parse_extra_records_json(r#"[{"name": "a.b", "type": "A", "value": "x"}]"#).unwrap_err();
    assert!(err.to_string().starts_with("invalid [0].value:"), "{err}");
    assert!(parse_extra_records_json("{").is_err());
    assert!(
        parse_extra_records_json(r#"[{"name": "a.b", "type": "A", "value": "1.2.3.4", "ttl": 5}]"#)
            .is_err(),
        "unknown fields are rejected"
    );
}

#[test]
fn dns_certs_are_off_by_default_and_need_the_server() {
    let off = Config::embedded("/tmp/x").dns.certs;
    assert!(!off.enabled && off.all_nodes);
    let c = load_str("dns:\n  server: {enabled: true}\n  certs: {enabled: true}\n").unwrap();
    assert!(c.dns.certs.enabled && c.dns.certs.all_nodes);
    let c =
        load_str("dns:\n  server: {enabled: true}\n  certs: {enabled: true, all_nodes: false}\n")
            .unwrap();
    assert!(c.dns.certs.enabled && !c.dns.certs.all_nodes);
    let err = load_str("dns:\n  certs: {enabled: true}\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("dns.certs.enabled"), "{err}");
    assert!(err.contains("dns.server.enabled"), "{err}");
    let err = load_str("dns:\n  certs: {enabled: true, provider: x}\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("dns.certs.provider"), "{err}");
}
