//! Value validation: each bad value is rejected with the key it came from.

use super::*;

fn assert_invalid(yaml: &str, key: &str) {
    let err = error_of(yaml);
    assert!(
        err.starts_with(&format!("invalid {key}:")),
        "expected an error about {key}, got: {err}"
    );
}

#[test]
fn prefixes_must_lie_in_the_tailscale_ranges() {
    assert_invalid("prefixes: {v4: 10.0.0.0/8}\n", "prefixes.v4");
    assert_invalid("prefixes: {v4: 100.0.0.0/8}\n", "prefixes.v4");
    assert_invalid("prefixes: {v6: fd00::/8}\n", "prefixes.v6");
    assert_invalid("prefixes: {v6: fd7a:115c:a1e0::/47}\n", "prefixes.v6");
    assert_invalid("prefixes: {v4: not-a-prefix}\n", "prefixes.v4");
    assert_invalid("prefixes: {v4: fd7a:115c:a1e0::/48}\n", "prefixes.v4");
    assert_invalid("prefixes: {v4: \"\", v6: \"\"}\n", "prefixes");
    assert_invalid("prefixes: {allocation: lottery}\n", "prefixes.allocation");
}

#[test]
fn prefixes_accept_subsets_and_single_families() {
    let c = load_str("prefixes: {v4: 100.64.7.9/24, v6: \"\"}\n").unwrap();
    assert_eq!(
        c.prefixes.v4,
        Some("100.64.7.0/24".parse().unwrap()),
        "host bits are cleared"
    );
    assert_eq!(c.prefixes.v6, None);
    let c = load_str("prefixes:\n  v4:\n").unwrap();
    assert_eq!(c.prefixes.v4, None, "null disables the family too");
    assert!(c.prefixes.v6.is_some());
}

#[test]
fn derp_urls_must_be_http_urls() {
    assert_invalid(
        "derp: {urls: [\"derp.example.net/map.json\"]}\n",
        "derp.urls",
    );
    assert_invalid(
        "derp: {urls: [\"ftp://derp.example.net/map\"]}\n",
        "derp.urls",
    );
    assert_invalid("derp: {urls: [\"https://\"]}\n", "derp.urls");
    let c = load_str("derp: {urls: [\" https://derp.example.net/map.json \", \"\"]}\n").unwrap();
    assert_eq!(c.derp.urls, ["https://derp.example.net/map.json"]);
}

#[test]
fn durations_are_checked() {
    assert_invalid("derp: {update_frequency: often}\n", "derp.update_frequency");
    assert_invalid(
        "node: {ephemeral: {inactivity_timeout: 30}}\n",
        "node.ephemeral.inactivity_timeout",
    );
    assert_invalid(
        "ephemeral_node_inactivity_timeout: soon\n",
        "ephemeral_node_inactivity_timeout",
    );
    assert_invalid(
        "derp: {auto_update_enabled: true, update_frequency: 0s}\n",
        "derp.update_frequency",
    );
    let c = load_str("node: {ephemeral: {inactivity_timeout: 1h30m}}\n").unwrap();
    assert_eq!(
        c.ephemeral_node_inactivity_timeout,
        Duration::from_secs(5400)
    );
}

#[test]
fn database_type_and_postgres_fields() {
    assert_invalid("database: {type: mysql}\n", "database.type");
    assert_invalid(
        "database: {type: postgres, postgres: {name: x}}\n",
        "database.postgres.host",
    );
    assert_invalid(
        "database: {type: postgres, postgres: {host: db}}\n",
        "database.postgres.name",
    );
    assert_invalid(
        "database: {type: postgres, postgres: {host: db, name: x, max_open_conns: 0}}\n",
        "database.postgres.max_open_conns",
    );
    let c =
        load_str("database: {type: sqlite3, sqlite: {path: ./my.db, write_ahead_log: false}}\n")
            .unwrap();
    assert_eq!(
        c.database,
        Database::Sqlite {
            path: "./my.db".into(),
            write_ahead_log: false
        }
    );
    let c = load_str("database: {type: postgres, postgres: {host: db, name: cs}}\n").unwrap();
    assert_eq!(
        c.database,
        Database::Postgres {
            url: "postgres://db/cs?sslmode=disable".into(),
            max_open_conns: 10
        }
    );
}

#[test]
fn base_domain_must_be_a_dns_name_apart_from_the_server() {
    assert_invalid("dns: {base_domain: \"bad domain\"}\n", "dns.base_domain");
    assert_invalid("dns: {base_domain: example.com.}\n", "dns.base_domain");
    assert_invalid(
        "server_url: https://example.com\ndns: {base_domain: example.com}\n",
        "dns.base_domain",
    );
    assert_invalid(
        "server_url: https://hs.Example.com:443\ndns: {base_domain: example.com}\n",
        "dns.base_domain",
    );
    assert_invalid(
        "dns: {magic_dns: true, base_domain: \"\"}\n",
        "dns.base_domain",
    );
    // A sibling name is fine; so is no base domain without MagicDNS.
    load_str("server_url: https://hs.example.com\ndns: {base_domain: ts.example.com}\n").unwrap();
    let c = load_str("dns: {magic_dns: false, base_domain: \"\"}\n").unwrap();
    assert_eq!(c.dns.base_domain, "");
}

#[test]
fn override_local_dns_follows_global_nameservers() {
    let c = load_str("dns: {nameservers: {global: [1.1.1.1]}}\n").unwrap();
    assert!(c.dns.override_local_dns);
    let c =
        load_str("dns: {override_local_dns: false, nameservers: {global: [1.1.1.1]}}\n").unwrap();
    assert!(!c.dns.override_local_dns);
    assert_invalid(
        "dns: {override_local_dns: true}\n",
        "dns.override_local_dns",
    );
}

#[test]
fn unusable_nameservers_are_dropped_with_a_warning() {
    let yaml = "dns:\n  nameservers:\n    global: [1.1.1.1, \"1.0.0.1:53\", not an address]\n    split:\n      corp.example: [\"???\", 10.0.0.1]\n";
    let c = load_str(yaml).unwrap();
    assert_eq!(c.dns.nameservers_global, ["1.1.1.1", "1.0.0.1:53"]);
    assert_eq!(c.dns.nameservers_split["corp.example"], ["10.0.0.1"]);
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(
        c.warnings[0].starts_with("dns.nameservers.global: ignoring \"not an address\""),
        "{:?}",
        c.warnings
    );
    assert!(
        c.warnings[1].starts_with("dns.nameservers.split.corp.example: ignoring \"???\""),
        "{:?}",
        c.warnings
    );
}

#[test]
fn extra_records_are_checked() {
    let record = |r: &str| format!("dns:\n  extra_records:\n    - {r}\n");
    assert_invalid(
        &record("{name: a.example, type: A, value: \"fd7a:115c:a1e0::1\"}"),
        "dns.extra_records[0].value",
    );
    assert_invalid(
        &record("{name: a.example, type: A, value: nowhere}"),
        "dns.extra_records[0].value",
    );
    assert_invalid(
        &record("{name: a.example, type: MX, value: 10 mail.example}"),
        "dns.extra_records[0].type",
    );
    assert_invalid(
        &record("{name: \"a b\", type: A, value: 100.64.0.1}"),
        "dns.extra_records[0].name",
    );
    let c = load_str(&record(
        "{name: a.example, type: aaaa, value: \"fd7a:115c:a1e0::1\"}",
    ))
    .unwrap();
    assert_eq!(c.dns.extra_records[0].r#type, "AAAA");
    assert_invalid(
        "dns:\n  extra_records_path: /x.json\n  extra_records: [{name: a.b, type: A, value: 100.64.0.1}]\n",
        "dns.extra_records_path",
    );
    let c = load_str("dns: {extra_records_path: /x.json, extra_records: []}\n").unwrap();
    assert_eq!(c.dns.extra_records_path, Some("/x.json".into()));
}

#[test]
fn server_url_is_checked_and_derived() {
    assert_invalid("server_url: ftp://x\n", "server_url");
    assert_invalid("server_url: example.com\n", "server_url");
    assert_invalid("server_url: \"https://:443\"\n", "server_url");
    let c = load_str("server_url: https://hs.example.com/\n").unwrap();
    assert_eq!(
        c.server_url, "https://hs.example.com",
        "trailing slash trimmed"
    );
    let c = load_str("listen_addr: \":8080\"\n").unwrap();
    assert_eq!(c.listen_addr, addr("0.0.0.0:8080"));
    assert_eq!(c.server_url, "http://127.0.0.1:8080");
    let c = load_str("listen_addr: 10.1.2.3:80\nserver_url: \"\"\n").unwrap();
    assert_eq!(c.server_url, "http://10.1.2.3:80");
}

#[test]
fn listen_addresses_are_checked() {
    assert_invalid("listen_addr: nowhere\n", "listen_addr");
    assert_invalid(
        "metrics_listen_addr: example.com:9090\n",
        "metrics_listen_addr",
    );
    assert_invalid("grpc_listen_addr: \"127.0.0.1\"\n", "grpc_listen_addr");
    let c = load_str("metrics_listen_addr: \"\"\ngrpc_listen_addr: localhost:50443\n").unwrap();
    assert_eq!(c.metrics_listen_addr, None);
    assert_eq!(c.grpc_listen_addr, Some(addr("127.0.0.1:50443")));
}

#[test]
fn socket_permission_spellings() {
    for (yaml, mode) in [
        ("\"0770\"", 0o770),
        ("0770", 0o770),
        ("770", 0o770),
        ("\"0o600\"", 0o600),
        ("\"660\"", 0o660),
    ] {
        let c = load_str(&format!("unix_socket_permission: {yaml}\n")).unwrap();
        assert_eq!(c.unix_socket_permission, mode, "{yaml}");
    }
    assert_invalid(
        "unix_socket_permission: \"rwx\"\n",
        "unix_socket_permission",
    );
    assert_invalid(
        "unix_socket_permission: \"0800\"\n",
        "unix_socket_permission",
    );
}

#[test]
fn embedded_derp_server_settings() {
    let c = load_str("listen_addr: 10.0.0.1:8080\nderp: {server: {enabled: true}}\n").unwrap();
    let s = c.derp.server.unwrap();
    assert_eq!((s.region_id, s.region_code.as_str()), (999, "clawscale"));
    assert!(s.verify_clients && s.automatically_add_embedded_derp_region);
    assert_eq!(s.stun_listen_addr, Some(addr("10.0.0.1:3478")));
    assert_eq!((s.ipv4, s.ipv6), (None, None));

    let c = load_str("derp: {server: {enabled: true, stun_listen_addr: \"\"}}\n").unwrap();
    assert_eq!(c.derp.server.unwrap().stun_listen_addr, None);

    assert_invalid(
        "derp: {server: {enabled: true, region_id: 0}}\n",
        "derp.server.region_id",
    );
    assert_invalid(
        "derp: {server: {enabled: true, region_code: \"\"}}\n",
        "derp.server.region_code",
    );
    assert_invalid(
        "derp: {server: {enabled: true, ipv4: \"2001:db8::1\"}}\n",
        "derp.server.ipv4",
    );
    assert_invalid(
        "derp: {server: {enabled: true, ipv6: 192.0.2.1}}\n",
        "derp.server.ipv6",
    );
    assert_invalid(
        "derp: {server: {enabled: true, stun_listen_addr: \"x:1\"}}\n",
        "derp.server.stun_listen_addr",
    );
    assert_invalid(
        "derp: {server: {enabled: true, automatically_add_embedded_derp_region: false}}\n",
        "derp.server.automatically_add_embedded_derp_region",
    );
    // A disabled server's settings are not looked at, as in Headscale.
    let c = load_str("derp: {server: {enabled: false, region_id: 0, ipv4: junk}}\n").unwrap();
    assert_eq!(c.derp.server, None);
}

#[test]
fn tls_paths_come_in_pairs() {
    assert_invalid("tls_cert_path: /c.pem\n", "tls_key_path");
    assert_invalid("tls_key_path: /k.pem\n", "tls_cert_path");
    let c = load_str("tls_cert_path: /c.pem\ntls_key_path: /k.pem\n").unwrap();
    assert_eq!(
        c.tls,
        Tls {
            cert_path: Some("/c.pem".into()),
            key_path: Some("/k.pem".into())
        }
    );
}

#[test]
fn log_and_policy_values() {
    for (level, want) in [
        ("INFO", "info"),
        ("warning", "warn"),
        ("fatal", "error"),
        ("panic", "error"),
        ("trace", "trace"),
    ] {
        let c = load_str(&format!("log: {{level: {level}}}\n")).unwrap();
        assert_eq!(c.log.level, want, "{level}");
    }
    assert_invalid("log: {level: loud}\n", "log.level");
    assert_invalid("log: {format: xml}\n", "log.format");
    assert_invalid("policy: {mode: cloud}\n", "policy.mode");
    let c = load_str("policy: {mode: file, path: ./acl.hujson}\n").unwrap();
    assert_eq!(c.policy.path, Some("./acl.hujson".into()));
}

#[test]
fn whois_section_is_off_by_default_and_strict() {
    let c = load_str("").unwrap();
    assert_eq!(c.whois, Whois::default());
    assert_eq!(c.whois.idle_timeout, std::time::Duration::from_secs(60));
    let c = load_str(
        "whois:\n  unix_socket: /run/cs/whois.sock\n  listen_addr: 127.0.0.1:9091\n  \
         gateway: mcp-gw\n  trusted_proxies: [10.0.0.0/8, 127.0.0.1]\n  \
         audit_log: /var/log/cs/authorize.jsonl\n  idle_timeout: 90s\n",
    )
    .unwrap();
    assert_eq!(c.whois.idle_timeout, std::time::Duration::from_secs(90));
    assert_eq!(
        c.whois.unix_socket,
        Some(PathBuf::from("/run/cs/whois.sock"))
    );
    assert_eq!(c.whois.listen_addr, Some("127.0.0.1:9091".parse().unwrap()));
    assert_eq!(c.whois.gateway.as_deref(), Some("mcp-gw"));
    assert_eq!(
        c.whois.trusted_proxies,
        vec![
            "10.0.0.0/8".parse().unwrap(),
            "127.0.0.1/32".parse().unwrap()
        ]
    );
    assert_eq!(
        c.whois.audit_log,
        Some(PathBuf::from("/var/log/cs/authorize.jsonl"))
    );
    // Empty strings mean "off", like Headscale's paths.
    let c = load_str("whois: {unix_socket: \"\", gateway: \"\", audit_log: \"\"}\n").unwrap();
    assert_eq!(c.whois, Whois::default());
    assert_invalid(
        "whois: {trusted_proxies: [not-an-ip]}\n",
        "whois.trusted_proxies",
    );
    assert_invalid("whois: {listen_addr: nowhere}\n", "whois.listen_addr");
    assert_invalid("whois: {idle_timeout: 0}\n", "whois.idle_timeout");
    assert_invalid("whois: {idle_timeout: soon}\n", "whois.idle_timeout");
    let err = error_of("whois: {gatway: x}\n");
    assert!(err.contains("whois.gatway"), "{err}");
}
