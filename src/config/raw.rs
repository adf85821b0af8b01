//! Serde mirror of the YAML file, key for key (Headscale v0.29 names plus
//! clawscale's `data_dir`). No interpretation happens here beyond defaults:
//! values that need parsing (addresses, durations, prefixes, modes) stay
//! text until `validate`, so its errors can name the key.
//!
//! Every struct denies unknown fields. `keys` derives its schema from these
//! same types, so adding a field here is all it takes to accept a new key.
//! Settings whose presence matters (Headscale-only features that trigger a
//! warning, data-dir-relative paths) are `Option`s; the rest use the named
//! default functions at the bottom.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::{Error, keys};

mod audit;
mod compat;
mod connections;
mod whois;

use super::oidc::RawOidc;
pub(super) use audit::RawAudit;
pub(super) use compat::RawCli;
use compat::{RawGorm, RawToggle, RawTuning};
pub(super) use connections::RawConnections;
pub(super) use whois::RawWhois;

/// Parses YAML text. An empty document (or one holding only comments) means
/// "all defaults". Unknown keys are reported all at once, before serde gets
/// to stop at the first one.
pub(super) fn parse(text: &str, origin: &str) -> Result<RawConfig, Error> {
    let parse_err = |err: serde_norway::Error| Error::Parse {
        origin: origin.to_string(),
        message: err.to_string(),
    };
    let value: serde_norway::Value = serde_norway::from_str(text).map_err(parse_err)?;
    // An empty document is YAML null; read it as an empty mapping so the
    // serde defaults below stay the only source of defaults.
    let text = if value.is_null() { "{}" } else { text };
    let unknown = keys::find_unknown::<RawConfig>(&value);
    if !unknown.is_empty() {
        return Err(Error::UnknownKeys {
            origin: origin.to_string(),
            keys: unknown,
        });
    }
    // Parse the text again rather than converting `value`: serde_norway only
    // reports the key path and line/column when it reads the text itself.
    serde_norway::from_str(text).map_err(parse_err)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    /// clawscale extension: base for every default file path.
    pub data_dir: Option<PathBuf>,
    pub server_url: Option<String>,
    /// clawscale extension: the URL clients use as `--login-server` when it
    /// is not `server_url` (replicas behind a load balancer).
    pub login_url: Option<String>,
    #[serde(default = "default_listen_addr")]
    pub listen_addr: String,
    pub metrics_listen_addr: Option<String>,
    pub grpc_listen_addr: Option<String>,
    #[serde(default)]
    pub grpc_allow_insecure: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub trusted_proxies: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub noise: RawNoise,
    #[serde(default, deserialize_with = "null_default")]
    pub prefixes: RawPrefixes,
    #[serde(default, deserialize_with = "null_default")]
    pub derp: RawDerp,
    /// We never check for updates, so there is nothing to disable.
    #[allow(dead_code, reason = "accepted for Headscale compatibility")]
    #[serde(default)]
    pub disable_check_updates: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub node: RawNode,
    /// Older, deprecated spelling of `node.ephemeral.inactivity_timeout`.
    pub ephemeral_node_inactivity_timeout: Option<Scalar>,
    #[serde(default, deserialize_with = "null_default")]
    pub database: RawDatabase,
    #[allow(dead_code, reason = "inert without tls_letsencrypt_hostname")]
    pub acme_url: Option<String>,
    #[allow(dead_code, reason = "inert without tls_letsencrypt_hostname")]
    pub acme_email: Option<String>,
    pub tls_letsencrypt_hostname: Option<String>,
    #[allow(dead_code, reason = "inert without tls_letsencrypt_hostname")]
    pub tls_letsencrypt_cache_dir: Option<String>,
    #[allow(dead_code, reason = "inert without tls_letsencrypt_hostname")]
    pub tls_letsencrypt_challenge_type: Option<String>,
    #[allow(dead_code, reason = "inert without tls_letsencrypt_hostname")]
    pub tls_letsencrypt_listen: Option<String>,
    pub tls_cert_path: Option<PathBuf>,
    pub tls_key_path: Option<PathBuf>,
    #[serde(default, deserialize_with = "null_default")]
    pub log: RawLog,
    #[serde(default, deserialize_with = "null_default")]
    pub policy: RawPolicy,
    #[serde(default, deserialize_with = "null_default")]
    pub dns: RawDns,
    pub unix_socket: Option<PathBuf>,
    #[serde(default = "default_unix_socket_permission")]
    pub unix_socket_permission: Scalar,
    pub oidc: Option<RawOidc>,
    #[serde(default, deserialize_with = "null_default")]
    pub logtail: RawToggle,
    #[serde(default, deserialize_with = "null_default")]
    pub taildrop: RawToggle,
    #[serde(default, deserialize_with = "null_default")]
    pub auto_update: RawToggle,
    #[serde(default, deserialize_with = "null_default")]
    pub tuning: RawTuning,
    #[serde(default, deserialize_with = "null_default")]
    pub cli: RawCli,
    /// clawscale extension: the whois/authorize API for gateways.
    #[serde(default, deserialize_with = "null_default")]
    pub whois: RawWhois,
    /// clawscale extension: connection limits and timeouts.
    #[serde(default, deserialize_with = "null_default")]
    pub connections: RawConnections,
    /// clawscale extension: the admin audit trail.
    #[serde(default, deserialize_with = "null_default")]
    pub audit: RawAudit,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNoise {
    pub private_key_path: Option<PathBuf>,
}

/// `v4`/`v6`: absent means the default range; empty or null disables the
/// family.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrefixes {
    #[serde(default = "default_prefix_v4")]
    pub v4: Option<String>,
    #[serde(default = "default_prefix_v6")]
    pub v6: Option<String>,
    #[serde(default = "default_allocation")]
    pub allocation: String,
}

impl Default for RawPrefixes {
    fn default() -> Self {
        RawPrefixes {
            v4: default_prefix_v4(),
            v6: default_prefix_v6(),
            allocation: default_allocation(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDerp {
    #[serde(default, deserialize_with = "null_default")]
    pub server: RawDerpServer,
    #[serde(default, deserialize_with = "null_default")]
    pub urls: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub paths: Vec<PathBuf>,
    #[serde(default)]
    pub auto_update_enabled: bool,
    #[serde(default = "default_derp_update_frequency")]
    pub update_frequency: Scalar,
}

impl Default for RawDerp {
    fn default() -> Self {
        RawDerp {
            server: RawDerpServer::default(),
            urls: Vec::new(),
            paths: Vec::new(),
            auto_update_enabled: false,
            update_frequency: default_derp_update_frequency(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDerpServer {
    /// On by default, unlike Headscale: clients need at least one DERP
    /// region, and clawscale's default configuration names no remote one.
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_derp_region_id")]
    pub region_id: u32,
    #[serde(default = "default_derp_region_code")]
    pub region_code: String,
    #[serde(default = "default_derp_region_name")]
    pub region_name: String,
    #[serde(default = "default_true")]
    pub verify_clients: bool,
    /// Absent: `listen_addr`'s IP, port 3478. Empty: no STUN.
    pub stun_listen_addr: Option<String>,
    pub private_key_path: Option<PathBuf>,
    #[serde(default = "default_true")]
    pub automatically_add_embedded_derp_region: bool,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
}

impl Default for RawDerpServer {
    fn default() -> Self {
        RawDerpServer {
            enabled: true,
            region_id: default_derp_region_id(),
            region_code: default_derp_region_code(),
            region_name: default_derp_region_name(),
            verify_clients: true,
            stun_listen_addr: None,
            private_key_path: None,
            automatically_add_embedded_derp_region: true,
            ipv4: None,
            ipv6: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    pub expiry: Option<Scalar>,
    /// clawscale: device approval for new nodes (`config::login`).
    pub require_approval: Option<bool>,
    #[serde(default, deserialize_with = "null_default")]
    pub ephemeral: RawEphemeral,
    #[serde(default, deserialize_with = "null_default")]
    pub routes: RawNodeRoutes,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEphemeral {
    pub inactivity_timeout: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNodeRoutes {
    #[serde(default, deserialize_with = "null_default")]
    pub ha: RawHaRoutes,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHaRoutes {
    pub probe_interval: Option<Scalar>,
    pub probe_timeout: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatabase {
    #[serde(rename = "type", default = "default_database_type")]
    pub kind: String,
    #[serde(default)]
    pub debug: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub gorm: RawGorm,
    #[serde(default, deserialize_with = "null_default")]
    pub sqlite: RawSqlite,
    #[serde(default, deserialize_with = "null_default")]
    pub postgres: RawPostgres,
}

impl Default for RawDatabase {
    fn default() -> Self {
        RawDatabase {
            kind: default_database_type(),
            debug: false,
            gorm: RawGorm::default(),
            sqlite: RawSqlite::default(),
            postgres: RawPostgres::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSqlite {
    pub path: Option<PathBuf>,
    #[serde(default = "default_true")]
    pub write_ahead_log: bool,
    pub wal_autocheckpoint: Option<i64>,
}

impl Default for RawSqlite {
    fn default() -> Self {
        RawSqlite {
            path: None,
            write_ahead_log: true,
            wal_autocheckpoint: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPostgres {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub name: Option<String>,
    pub user: Option<String>,
    pub pass: Option<String>,
    /// `true`/`false` or a libpq `sslmode` name.
    pub ssl: Option<Scalar>,
    #[serde(default = "default_postgres_max_open_conns")]
    pub max_open_conns: u32,
    pub max_idle_conns: Option<i64>,
    pub conn_max_idle_time_secs: Option<i64>,
}

impl Default for RawPostgres {
    fn default() -> Self {
        RawPostgres {
            host: None,
            port: None,
            name: None,
            user: None,
            pass: None,
            ssl: None,
            max_open_conns: default_postgres_max_open_conns(),
            max_idle_conns: None,
            conn_max_idle_time_secs: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    #[serde(default = "default_log_level")]
    pub level: String,
    #[serde(default = "default_log_format")]
    pub format: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            level: default_log_level(),
            format: default_log_format(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    #[serde(default = "default_policy_mode")]
    pub mode: String,
    pub path: Option<PathBuf>,
    #[serde(default)]
    pub strict: bool,
}

impl Default for RawPolicy {
    fn default() -> Self {
        RawPolicy {
            mode: default_policy_mode(),
            path: None,
            strict: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDns {
    #[serde(default = "default_true")]
    pub magic_dns: bool,
    #[serde(default = "default_base_domain")]
    pub base_domain: String,
    /// Absent: on when global nameservers are given (see `validate`).
    pub override_local_dns: Option<bool>,
    #[serde(default, deserialize_with = "null_default")]
    pub nameservers: RawNameservers,
    #[serde(default, deserialize_with = "null_default")]
    pub search_domains: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub extra_records: Vec<RawExtraRecord>,
    pub extra_records_path: Option<PathBuf>,
    /// clawscale extension: the authoritative DNS server.
    #[serde(default, deserialize_with = "null_default")]
    pub server: RawDnsServer,
    /// clawscale extension: HTTPS certificates for tailnet names.
    #[serde(default, deserialize_with = "null_default")]
    pub certs: RawDnsCerts,
}

impl Default for RawDns {
    fn default() -> Self {
        RawDns {
            magic_dns: true,
            base_domain: default_base_domain(),
            override_local_dns: None,
            nameservers: RawNameservers::default(),
            search_domains: Vec::new(),
            extra_records: Vec::new(),
            extra_records_path: None,
            server: RawDnsServer::default(),
            certs: RawDnsCerts::default(),
        }
    }
}

/// `dns.server`: absent values take the defaults `validate` documents.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDnsServer {
    #[serde(default)]
    pub enabled: bool,
    pub listen_addr: Option<String>,
    /// Absent: loopback plus the tailnet prefixes.
    pub allow: Option<Vec<String>>,
    pub ttl: Option<Scalar>,
    #[serde(default, deserialize_with = "null_default")]
    pub rate_limit: RawDnsRateLimit,
    pub tcp_timeout: Option<Scalar>,
    #[serde(default)]
    pub policy_filter: bool,
}

/// `dns.certs`: ACME DNS-01 challenges answered by the authoritative server.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDnsCerts {
    #[serde(default)]
    pub enabled: bool,
    /// Absent: true.
    pub all_nodes: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDnsRateLimit {
    pub qps: Option<u32>,
    pub burst: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNameservers {
    #[serde(default, deserialize_with = "null_default")]
    pub global: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub split: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExtraRecord {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

/// A YAML scalar kept as text: durations (`30m`, or `0`), file modes
/// (`"0770"`, or an unquoted `770`), Postgres `ssl` (`false` or `require`).
/// Numbers arrive already converted by YAML, so an unquoted `0o770` is the
/// text `504`; the example config says to quote modes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Scalar {
    pub text: String,
}

impl Scalar {
    pub fn text(text: &str) -> Scalar {
        Scalar {
            text: text.to_string(),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;

        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::text(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::text(if v { "true" } else { "false" }))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar {
                    text: v.to_string(),
                })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar {
                    text: v.to_string(),
                })
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar {
                    text: v.to_string(),
                })
            }
        }

        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// YAML `key:` with nothing after it is null; treat it like an absent key
/// (as Headscale's viper does) instead of a type error.
fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

pub(super) const DEFAULT_PREFIX_V4: &str = "100.64.0.0/10";
pub(super) const DEFAULT_PREFIX_V6: &str = "fd7a:115c:a1e0::/48";

fn default_true() -> bool {
    true
}
fn default_listen_addr() -> String {
    "127.0.0.1:8080".to_string()
}
fn default_unix_socket_permission() -> Scalar {
    Scalar::text("0770")
}
fn default_prefix_v4() -> Option<String> {
    Some(DEFAULT_PREFIX_V4.to_string())
}
fn default_prefix_v6() -> Option<String> {
    Some(DEFAULT_PREFIX_V6.to_string())
}
fn default_allocation() -> String {
    "sequential".to_string()
}
fn default_derp_update_frequency() -> Scalar {
    Scalar::text("3h")
}
fn default_derp_region_id() -> u32 {
    999
}
fn default_derp_region_code() -> String {
    "clawscale".to_string()
}
fn default_derp_region_name() -> String {
    "clawscale embedded DERP".to_string()
}
fn default_database_type() -> String {
    "sqlite".to_string()
}
fn default_postgres_max_open_conns() -> u32 {
    10
}
fn default_log_level() -> String {
    "info".to_string()
}
fn default_log_format() -> String {
    "text".to_string()
}
fn default_policy_mode() -> String {
    "file".to_string()
}
fn default_base_domain() -> String {
    "clawql.local".to_string()
}
