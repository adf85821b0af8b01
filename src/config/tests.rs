//! Loading as a whole: the shipped example, defaults, a full Headscale-style
//! file, overrides and warnings. Key checks live in `tests/unknown_keys.rs`,
//! value checks in `tests/validation.rs`.

mod admin;
mod connections;
mod dns_server;
mod login;
mod unknown_keys;
mod validation;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::*;

pub(super) const EXAMPLE: &str = include_str!("../../deploy/config.example.yaml");
pub(super) const HEADSCALE_FULL: &str = include_str!("testdata/headscale-full.yaml");

pub(super) fn load_str(yaml: &str) -> Result<Config, Error> {
    Config::from_yaml(yaml, &Overrides::default())
}

/// The error text for a YAML document that must fail.
pub(super) fn error_of(yaml: &str) -> String {
    match load_str(yaml) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(err) => err.to_string(),
    }
}

fn with_env(yaml: &str, overrides: &Overrides, vars: &[(&str, &str)]) -> Result<Config, Error> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    build(yaml, "<test>", overrides, &|name| vars.get(name).cloned())
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[test]
fn shipped_example_is_exactly_the_embedded_defaults() {
    let config = load_str(EXAMPLE).unwrap();
    assert_eq!(config, Config::embedded("./clawscale-data"));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn embedded_defaults() {
    let c = Config::embedded("/var/lib/clawscale");
    let dir = PathBuf::from("/var/lib/clawscale");
    assert_eq!(c.server_url, "http://127.0.0.1:8080");
    assert_eq!(c.listen_addr, addr("127.0.0.1:8080"));
    assert_eq!(c.metrics_listen_addr, None);
    assert_eq!(c.grpc_listen_addr, None);
    assert!(!c.grpc_allow_insecure);
    assert_eq!(c.unix_socket, dir.join("clawscale.sock"));
    assert_eq!(c.unix_socket_permission, 0o770);
    assert_eq!(c.audit.path, Some(dir.join("audit.jsonl")));
    assert_eq!(c.audit.max_size, 100 << 20);
    assert_eq!(c.audit.max_files, 5);
    assert_eq!(c.cli.address, None);
    assert_eq!(c.cli.timeout, std::time::Duration::from_secs(5));
    assert_eq!(c.data_dir, dir);
    assert_eq!(c.noise_private_key_path, dir.join("noise_private.key"));
    assert_eq!(c.prefixes.v4, Some("100.64.0.0/10".parse().unwrap()));
    assert_eq!(c.prefixes.v6, Some("fd7a:115c:a1e0::/48".parse().unwrap()));
    assert_eq!(c.prefixes.allocation, Allocation::Sequential);
    assert_eq!(
        c.database,
        Database::Sqlite {
            path: dir.join("db.sqlite"),
            write_ahead_log: true
        }
    );
    assert!(c.dns.magic_dns);
    assert_eq!(c.dns.base_domain, "clawql.local");
    assert!(!c.dns.override_local_dns);
    assert!(c.dns.nameservers_global.is_empty() && c.dns.nameservers_split.is_empty());
    assert!(c.dns.search_domains.is_empty() && c.dns.extra_records.is_empty());
    assert_eq!(c.dns.extra_records_path, None);
    assert_eq!(
        c.derp.server,
        Some(DerpServer {
            region_id: 999,
            region_code: "clawscale".into(),
            region_name: "clawscale embedded DERP".into(),
            verify_clients: true,
            stun_listen_addr: Some(addr("127.0.0.1:3478")),
            private_key_path: dir.join("derp_server_private.key"),
            ipv4: None,
            ipv6: None,
            automatically_add_embedded_derp_region: true,
            tls_cert_path: dir.join("derp_tls_cert.pem"),
            tls_key_path: dir.join("derp_tls_key.pem"),
        })
    );
    assert!(c.derp.urls.is_empty() && c.derp.paths.is_empty());
    assert!(!c.derp.auto_update_enabled);
    assert_eq!(c.derp.update_frequency, Duration::from_secs(3 * 3600));
    assert_eq!(c.tls, Tls::default());
    assert_eq!(
        c.ephemeral_node_inactivity_timeout,
        Duration::from_secs(30 * 60)
    );
    assert_eq!(
        c.log,
        Log {
            level: "info".into(),
            format: LogFormat::Text
        }
    );
    assert_eq!(
        c.policy,
        Policy {
            mode: PolicyMode::File,
            path: None,
            strict: false
        }
    );
    assert!(c.warnings.is_empty());
}

#[test]
fn empty_and_comment_only_files_mean_defaults() {
    let defaults = Config::embedded("./clawscale-data");
    assert_eq!(load_str("").unwrap(), defaults);
    assert_eq!(load_str("# nothing here\n---\n").unwrap(), defaults);
}

#[test]
fn null_and_empty_sections_match_absent_ones() {
    // Catches drift between the hand-written `Default` impls in `raw` (used
    // for absent and null sections) and serde's per-field defaults (used for
    // keys missing inside a present section).
    let sections = [
        "noise",
        "prefixes",
        "derp",
        "node",
        "database",
        "log",
        "policy",
        "dns",
        "logtail",
        "taildrop",
        "auto_update",
        "tuning",
        "cli",
        "connections",
    ];
    let nulls: String = sections.iter().map(|s| format!("{s}:\n")).collect();
    let empties: String = sections.iter().map(|s| format!("{s}: {{}}\n")).collect();
    let nested = "derp:\n  server: {}\nnode:\n  ephemeral: {}\n  routes:\n    ha: {}\n\
                  database:\n  gorm: {}\n  sqlite: {}\n  postgres: {}\ndns:\n  nameservers: {}\n";
    let defaults = Config::embedded("./clawscale-data");
    assert_eq!(load_str(&nulls).unwrap(), defaults);
    assert_eq!(load_str(&empties).unwrap(), defaults);
    assert_eq!(load_str(nested).unwrap(), defaults);
}

#[test]
fn headscale_config_with_every_key_loads() {
    let c = load_str(HEADSCALE_FULL).unwrap();
    assert_eq!(c.server_url, "https://hs.example.net");
    assert_eq!(c.listen_addr, addr("0.0.0.0:443"));
    assert_eq!(c.metrics_listen_addr, Some(addr("10.0.0.2:9090")));
    assert_eq!(c.grpc_listen_addr, Some(addr("0.0.0.0:50443")));
    assert!(c.grpc_allow_insecure);
    // Headscale's `host:port` CLI address means HTTPS.
    assert_eq!(
        c.cli.address.as_deref(),
        Some("https://hs.example.net:50443")
    );
    assert_eq!(c.cli.api_key.as_deref(), Some("abc"));
    assert_eq!(c.cli.timeout, std::time::Duration::from_secs(10));
    assert!(
        !format!("{:?}", c.cli).contains("abc"),
        "the CLI key is redacted"
    );
    assert_eq!(c.noise_private_key_path, PathBuf::from("/srv/hs/noise.key"));
    assert_eq!(c.prefixes.v4, Some("100.100.0.0/16".parse().unwrap()));
    assert_eq!(
        c.prefixes.v6,
        Some("fd7a:115c:a1e0:ab12::/64".parse().unwrap())
    );
    assert_eq!(c.prefixes.allocation, Allocation::Random);
    assert_eq!(
        c.database,
        Database::Postgres {
            url: "postgres://hs_user:s3cret%3Apw@db.example.net:5433/hs?sslmode=verify-full".into(),
            max_open_conns: 25
        }
    );
    assert_eq!(c.tls.cert_path, Some(PathBuf::from("/srv/hs/tls.crt")));
    assert_eq!(c.tls.key_path, Some(PathBuf::from("/srv/hs/tls.key")));
    assert_eq!(
        c.log,
        Log {
            level: "debug".into(),
            format: LogFormat::Json
        }
    );
    assert_eq!(
        c.policy,
        Policy {
            mode: PolicyMode::Database,
            path: Some("/srv/hs/policy.hujson".into()),
            strict: false
        }
    );
    assert_eq!(c.unix_socket, PathBuf::from("/run/hs/hs.sock"));
    assert_eq!(c.unix_socket_permission, 0o700);
    assert_eq!(
        c.ephemeral_node_inactivity_timeout,
        Duration::from_secs(7200)
    );

    let dns = &c.dns;
    assert_eq!(dns.base_domain, "tail.example.org");
    assert!(dns.magic_dns && dns.override_local_dns);
    assert_eq!(
        dns.nameservers_global,
        ["9.9.9.9", "2620:fe::fe", "https://dns.nextdns.io/abc123"]
    );
    assert_eq!(
        dns.nameservers_split["corp.example.org"],
        ["10.1.0.53", "10.2.0.53"]
    );
    assert_eq!(dns.search_domains, ["corp.example.org"]);
    assert_eq!(
        dns.extra_records,
        [
            ExtraRecord {
                name: "grafana.tail.example.org".into(),
                r#type: "A".into(),
                value: "100.100.0.3".into()
            },
            ExtraRecord {
                name: "v6.tail.example.org".into(),
                r#type: "AAAA".into(),
                value: "fd7a:115c:a1e0:ab12::3".into()
            },
        ]
    );

    let derp = &c.derp;
    assert_eq!(derp.urls, ["https://derp.example.net/map.json"]);
    assert_eq!(derp.paths, [PathBuf::from("/srv/hs/derp.yaml")]);
    assert!(derp.auto_update_enabled);
    assert_eq!(derp.update_frequency, Duration::from_secs(90 * 60));
    let server = derp.server.as_ref().unwrap();
    assert_eq!(
        *server,
        DerpServer {
            region_id: 901,
            region_code: "home".into(),
            region_name: "Home relay".into(),
            verify_clients: false,
            stun_listen_addr: Some(addr("0.0.0.0:3479")),
            private_key_path: "/srv/hs/derp.key".into(),
            ipv4: Some("192.0.2.10".parse().unwrap()),
            ipv6: Some("2001:db8::10".parse().unwrap()),
            automatically_add_embedded_derp_region: true,
            // The listener's certificate is reused for the relay.
            tls_cert_path: "/srv/hs/tls.crt".into(),
            tls_key_path: "/srv/hs/tls.key".into(),
        }
    );
}

#[test]
fn every_unsupported_setting_is_named_in_a_warning() {
    let c = load_str(HEADSCALE_FULL).unwrap();
    let expected = [
        "trusted_proxies",
        "node.routes.ha.probe_interval",
        "node.routes.ha.probe_timeout",
        "database.debug",
        "database.gorm.prepare_stmt",
        "database.gorm.parameterized_queries",
        "database.gorm.skip_err_record_not_found",
        "database.gorm.slow_threshold",
        "database.sqlite.wal_autocheckpoint",
        "database.postgres.max_idle_conns",
        "database.postgres.conn_max_idle_time_secs",
        "tls_letsencrypt_hostname",
        "logtail.enabled",
        "taildrop.enabled",
        "auto_update.enabled",
        "tuning.notifier_send_timeout",
        "tuning.node_mapsession_buffered_chan_size",
        "tuning.batcher_workers",
        "tuning.register_cache_max_entries",
        "tuning.node_store_batch_size",
        "tuning.node_store_batch_timeout",
    ];
    let named: Vec<String> = expected
        .iter()
        .map(|key| format!("{key:?} is set"))
        .collect();
    for key in &named {
        assert!(
            c.warnings.iter().any(|w| w.starts_with(key.as_str())),
            "no warning for {key}: {:?}",
            c.warnings
        );
    }
    assert_eq!(c.warnings.len(), expected.len(), "{:#?}", c.warnings);
}

#[test]
fn headscale_defaults_for_unsupported_keys_do_not_warn() {
    let yaml = "disable_check_updates: false\ntrusted_proxies: []\n\
                node: {expiry: \"\", routes: {ha: {probe_interval: 10s, probe_timeout: 5s}}}\n\
                database: {debug: false, gorm: {prepare_stmt: true, parameterized_queries: true, \
                skip_err_record_not_found: true, slow_threshold: 1000}, sqlite: {wal_autocheckpoint: 1000}}\n\
                acme_url: https://acme-v02.api.letsencrypt.org/directory\nacme_email: \"\"\n\
                tls_letsencrypt_hostname: \"\"\ntls_letsencrypt_challenge_type: HTTP-01\n\
                tls_letsencrypt_listen: \":http\"\ntls_letsencrypt_cache_dir: /var/lib/x/cache\n\
                logtail: {enabled: false}\ntaildrop: {enabled: true}\nauto_update: {enabled: false}\n\
                oidc: {only_start_if_oidc_is_available: true, scope: [openid]}\n";
    let c = load_str(yaml).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn deprecated_ephemeral_key_is_used_with_a_warning() {
    let c = load_str("ephemeral_node_inactivity_timeout: 10m\n").unwrap();
    assert_eq!(
        c.ephemeral_node_inactivity_timeout,
        Duration::from_secs(600)
    );
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("\"ephemeral_node_inactivity_timeout\" is deprecated"))
    );

    // The new key wins when both are given, as in Headscale.
    let c = load_str(
        "ephemeral_node_inactivity_timeout: 10m\nnode: {ephemeral: {inactivity_timeout: 20m}}\n",
    )
    .unwrap();
    assert_eq!(
        c.ephemeral_node_inactivity_timeout,
        Duration::from_secs(1200)
    );
}

#[test]
fn short_ephemeral_timeout_warns_and_zero_is_rejected() {
    let c = load_str("node: {ephemeral: {inactivity_timeout: 5s}}\n").unwrap();
    assert_eq!(c.ephemeral_node_inactivity_timeout, Duration::from_secs(5));
    assert!(
        c.warnings.iter().any(|w| w.contains("65s")),
        "{:?}",
        c.warnings
    );
    let err = error_of("node: {ephemeral: {inactivity_timeout: 0}}\n");
    assert!(
        err.starts_with("invalid node.ephemeral.inactivity_timeout:"),
        "{err}"
    );
}

#[test]
fn database_url_override() {
    let pg = Overrides {
        database_url: Some("postgres://u:p@db/clawscale".into()),
        ..Overrides::default()
    };
    // The engine and location come from the URL; pool size still from the file.
    let c = Config::from_yaml(
        "database: {type: sqlite, postgres: {max_open_conns: 4}}\n",
        &pg,
    )
    .unwrap();
    assert_eq!(
        c.database,
        Database::Postgres {
            url: "postgres://u:p@db/clawscale".into(),
            max_open_conns: 4
        }
    );

    let cases = [
        ("postgresql://db/x", None),
        (
            "sqlite:///var/lib/c/db.sqlite",
            Some("/var/lib/c/db.sqlite"),
        ),
        ("sqlite://rel.db?mode=rwc", Some("rel.db")),
        ("sqlite:data.db", Some("data.db")),
        ("/plain/path.db", Some("/plain/path.db")),
    ];
    for (url, sqlite_path) in cases {
        let overrides = Overrides {
            database_url: Some(url.into()),
            ..Overrides::default()
        };
        let c = Config::from_yaml("database: {sqlite: {write_ahead_log: false}}\n", &overrides)
            .unwrap();
        match (sqlite_path, &c.database) {
            (
                Some(path),
                Database::Sqlite {
                    path: got,
                    write_ahead_log,
                },
            ) => {
                assert_eq!(got, &PathBuf::from(path), "{url}");
                assert!(!write_ahead_log, "{url}: WAL setting comes from the file");
            }
            (
                None,
                Database::Postgres {
                    url: got,
                    max_open_conns,
                },
            ) => {
                assert_eq!(got, url);
                assert_eq!(*max_open_conns, 10);
            }
            (_, other) => panic!("{url}: unexpected {other:?}"),
        }
    }
    for bad in ["mysql://db/x", "sqlite://", "  "] {
        let overrides = Overrides {
            database_url: Some(bad.into()),
            ..Overrides::default()
        };
        let err = Config::from_yaml("", &overrides).unwrap_err().to_string();
        assert!(err.starts_with("invalid --database-url:"), "{bad:?}: {err}");
    }
}

#[test]
fn data_dir_override_moves_every_default_path() {
    let overrides = Overrides {
        data_dir: Some("/srv/cs".into()),
        ..Overrides::default()
    };
    let c = Config::from_yaml(
        "data_dir: /ignored\nderp: {server: {enabled: true}}\n",
        &overrides,
    )
    .unwrap();
    let dir = PathBuf::from("/srv/cs");
    assert_eq!(c.data_dir, dir);
    assert_eq!(c.unix_socket, dir.join("clawscale.sock"));
    assert_eq!(c.noise_private_key_path, dir.join("noise_private.key"));
    assert_eq!(
        c.database,
        Database::Sqlite {
            path: dir.join("db.sqlite"),
            write_ahead_log: true
        }
    );
    let server = c.derp.server.unwrap();
    assert_eq!(server.private_key_path, dir.join("derp_server_private.key"));
    assert_eq!(server.tls_cert_path, dir.join("derp_tls_cert.pem"));
    assert_eq!(server.tls_key_path, dir.join("derp_tls_key.pem"));

    // Without the override, the file's data_dir is used.
    let c = load_str("data_dir: /from/file\n").unwrap();
    assert_eq!(
        c.noise_private_key_path,
        PathBuf::from("/from/file/noise_private.key")
    );
}

#[test]
fn listen_addr_override_drives_derived_defaults() {
    let overrides = Overrides {
        listen_addr: Some(addr("[::]:9000")),
        ..Overrides::default()
    };
    let c = Config::from_yaml(
        "listen_addr: 127.0.0.1:1\nderp: {server: {enabled: true}}\n",
        &overrides,
    )
    .unwrap();
    assert_eq!(c.listen_addr, addr("[::]:9000"));
    assert_eq!(c.server_url, "http://[::1]:9000");
    assert_eq!(
        c.derp.server.unwrap().stun_listen_addr,
        Some(addr("[::]:3478"))
    );
}

#[test]
fn environment_overrides_file_and_flags_override_environment() {
    let yaml = "server_url: https://file.example\nlog: {level: warn}\n";
    let vars = [
        ("CLAWSCALE_SERVER_URL", "https://env.example/"),
        ("CLAWSCALE_LOGIN_URL", "https://lb.example/"),
        ("CLAWSCALE_LISTEN_ADDR", "127.0.0.1:7000"),
        ("CLAWSCALE_METRICS_LISTEN_ADDR", "127.0.0.1:7001"),
        ("CLAWSCALE_GRPC_LISTEN_ADDR", "127.0.0.1:7002"),
        ("CLAWSCALE_GRPC_ALLOW_INSECURE", "true"),
        ("CLAWSCALE_UNIX_SOCKET", "/run/cs.sock"),
        ("CLAWSCALE_NOISE_PRIVATE_KEY_PATH", "/k/noise"),
        ("CLAWSCALE_DNS_BASE_DOMAIN", "ts.example"),
        ("CLAWSCALE_LOG_LEVEL", "trace"),
        ("CLAWSCALE_LOG_FORMAT", "json"),
        ("CLAWSCALE_POLICY_MODE", "database"),
        ("CLAWSCALE_POLICY_PATH", "/p.hujson"),
        ("CLAWSCALE_POLICY_STRICT", "true"),
    ];
    assert_eq!(vars.len(), env::VARS.len(), "every variable is exercised");
    let c = with_env(yaml, &Overrides::default(), &vars).unwrap();
    assert_eq!(c.server_url, "https://env.example");
    assert_eq!(c.login_url.as_deref(), Some("https://lb.example"));
    assert_eq!(c.listen_addr, addr("127.0.0.1:7000"));
    assert_eq!(c.metrics_listen_addr, Some(addr("127.0.0.1:7001")));
    assert_eq!(c.grpc_listen_addr, Some(addr("127.0.0.1:7002")));
    assert!(c.grpc_allow_insecure);
    assert_eq!(c.unix_socket, PathBuf::from("/run/cs.sock"));
    assert_eq!(c.noise_private_key_path, PathBuf::from("/k/noise"));
    assert_eq!(c.dns.base_domain, "ts.example");
    assert_eq!(
        c.log,
        Log {
            level: "trace".into(),
            format: LogFormat::Json
        }
    );
    assert_eq!(
        c.policy,
        Policy {
            mode: PolicyMode::Database,
            path: Some("/p.hujson".into()),
            strict: true
        }
    );

    let flags = Overrides {
        listen_addr: Some(addr("127.0.0.1:7777")),
        ..Overrides::default()
    };
    let c = with_env("", &flags, &[("CLAWSCALE_LISTEN_ADDR", "127.0.0.1:7000")]).unwrap();
    assert_eq!(c.listen_addr, addr("127.0.0.1:7777"));

    let err = with_env(
        "",
        &Overrides::default(),
        &[("CLAWSCALE_GRPC_ALLOW_INSECURE", "maybe")],
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid CLAWSCALE_GRPC_ALLOW_INSECURE:"),
        "{err}"
    );
}

#[test]
fn load_reads_the_file_and_reports_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, "listen_addr: 127.0.0.1:9999\n").unwrap();
    let c = load(Some(&path), &Overrides::default()).unwrap();
    assert_eq!(c.listen_addr.port(), 9999);

    let missing = dir.path().join("absent.yaml");
    match load(Some(&missing), &Overrides::default()) {
        Err(Error::Read { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected a read error, got {other:?}"),
    }

    std::fs::write(&path, "dns: {magicdns: true}\n").unwrap();
    let err = load(Some(&path), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&path.display().to_string()) && err.contains("dns.magicdns"),
        "{err}"
    );
}

#[test]
fn debug_output_hides_the_postgres_password() {
    let c = load_str(HEADSCALE_FULL).unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("s3cret"), "{debug}");
    assert!(
        debug.contains("postgres://hs_user:***@db.example.net:5433/hs"),
        "{debug}"
    );
}
