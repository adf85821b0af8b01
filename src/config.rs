//! Server configuration: reading the YAML file, environment and CLI overrides
//! into one validated, typed [`Config`].
//!
//! Owns: the file format (Headscale v0.29 key names wherever the concept is the
//! same, so a Headscale `config.yaml` for the supported features loads as is),
//! defaults, validation and the list of warnings about Headscale keys that are
//! accepted but not acted on yet.
//!
//! Depends on nothing else in the crate. Everything downstream gets an
//! immutable `Config` (usually behind an `Arc`); nothing reads YAML or
//! `CLAWSCALE_*` variables anywhere else.
//!
//! Loading has two stages (see `STYLE.md`):
//! 1. `raw` mirrors the YAML with serde. Every struct denies unknown fields;
//!    `keys` checks the parsed document against that same schema first, so
//!    every unknown key is reported with its dotted path (`dns.magicdns`) and a
//!    suggestion, in one go.
//! 2. `validate` turns the raw tree (after `env` overrides) into [`Config`]:
//!    parsed addresses, prefixes, durations and database settings, with errors
//!    that name the offending key.
//!
//! Precedence, highest first: [`Overrides`] (CLI flags) > `CLAWSCALE_*`
//! environment variables (see `env`) > the file > built-in defaults.
//!
//! Relative paths are kept as written, so they resolve against the process
//! working directory. (Headscale resolves them against the directory of the
//! config file; absolute paths behave the same in both.)

mod env;
mod keys;
pub mod login;
mod oidc;
mod raw;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

pub use keys::UnknownKey;
pub use oidc::{Oidc, PkceMethod};

/// Errors from loading the configuration. Each names the key (dotted YAML
/// path) or file it is about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// YAML syntax error, or a value of the wrong type (serde's message
    /// carries the key path and the line/column).
    #[error("config file {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("config file {origin}: {}", format_unknown(.keys))]
    UnknownKeys {
        origin: String,
        keys: Vec<UnknownKey>,
    },
    #[error("invalid {key}: {reason}")]
    Invalid { key: String, reason: String },
}

fn format_unknown(keys: &[UnknownKey]) -> String {
    keys.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Settings given on the command line (or their environment fallbacks, which
/// `main.rs` wires through clap): they beat the file and `CLAWSCALE_*` keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--data-dir` / `CLAWSCALE_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url` / `CLAWSCALE_DATABASE_URL`: `postgres://…` or
    /// `postgresql://…` selects Postgres; `sqlite://path`, `sqlite:path` or a
    /// bare path selects SQLite.
    pub database_url: Option<String>,
    /// `--listen-addr`.
    pub listen_addr: Option<SocketAddr>,
}

/// Default `tuning.batch_change_delay`. Short enough that one change
/// reaches clients at once and a burst within a tenth of a second; long
/// enough that an enrollment wave costs each stream a few frames, not one
/// per join (`benches/enroll`).
pub const DEFAULT_BATCH_CHANGE_DELAY: Duration = Duration::from_millis(50);

/// The validated server configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// URL clients use to reach this server (no trailing slash).
    pub server_url: String,
    /// The URL clients log in through when it is not `server_url` (no
    /// trailing slash): with replicas, the load balancer's, while each
    /// replica's `server_url` names the replica itself (its relay's
    /// address). Auth URLs and SSH check URLs name it.
    pub login_url: Option<String>,
    pub listen_addr: SocketAddr,
    /// Extra listener for `/metrics`; `/metrics` is served on `listen_addr` too.
    pub metrics_listen_addr: Option<SocketAddr>,
    pub grpc_listen_addr: Option<SocketAddr>,
    pub grpc_allow_insecure: bool,
    pub unix_socket: PathBuf,
    pub unix_socket_permission: u32,
    pub data_dir: PathBuf,
    pub noise_private_key_path: PathBuf,
    pub prefixes: Prefixes,
    pub database: Database,
    pub dns: Dns,
    pub derp: Derp,
    pub tls: Tls,
    pub ephemeral_node_inactivity_timeout: Duration,
    /// `tuning.batch_change_delay`: least time between two delta frames on
    /// one map stream; what changes meanwhile is sent merged.
    pub batch_change_delay: Duration,
    pub log: Log,
    pub policy: Policy,
    /// The whois/authorize API (clawscale extension).
    pub whois: Whois,
    /// Connection limits and timeouts (clawscale extension).
    pub connections: Connections,
    /// The admin audit trail (clawscale extension).
    pub audit: Audit,
    /// Where the CLI finds a remote server (Headscale's `cli.*`).
    pub cli: Cli,
    /// Key expiry, device approval, interactive registration.
    pub login: login::Login,
    /// OpenID Connect login (`None`: not configured).
    pub oidc: Option<Oidc>,
    /// One line per accepted-but-ignored or deprecated setting; the server
    /// logs them at startup.
    pub warnings: Vec<String>,
}

/// Tailnet address ranges. At least one family is always present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefixes {
    pub v4: Option<Ipv4Net>,
    pub v6: Option<Ipv6Net>,
    pub allocation: Allocation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    /// Next free address after the last one handed out.
    Sequential,
    /// A random free address.
    Random,
}

#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite {
        path: PathBuf,
        write_ahead_log: bool,
    },
    Postgres {
        url: String,
        max_open_conns: u32,
    },
}

// Hand-written so the Postgres password never reaches a log line.
impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite {
                path,
                write_ahead_log,
            } => f
                .debug_struct("Sqlite")
                .field("path", path)
                .field("write_ahead_log", write_ahead_log)
                .finish(),
            Database::Postgres {
                url,
                max_open_conns,
            } => f
                .debug_struct("Postgres")
                .field("url", &validate::redact_url_password(url))
                .field("max_open_conns", max_open_conns)
                .finish(),
        }
    }
}

/// DNS settings pushed to clients (Headscale's `dns` section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dns {
    pub magic_dns: bool,
    /// Empty only when `magic_dns` is off and no base domain was given.
    pub base_domain: String,
    pub override_local_dns: bool,
    /// IP addresses or DoH URLs.
    pub nameservers_global: Vec<String>,
    /// Split DNS: domain → nameservers.
    pub nameservers_split: BTreeMap<String, Vec<String>>,
    pub search_domains: Vec<String>,
    pub extra_records: Vec<ExtraRecord>,
    /// JSON file of extra records, watched at runtime (exclusive with
    /// `extra_records`).
    pub extra_records_path: Option<PathBuf>,
    /// The authoritative DNS server (`dns.server`, a clawscale extension).
    pub server: DnsServer,
    /// `dns.certs` (a clawscale extension).
    pub certs: DnsCerts,
}

/// `dns.certs.*`: HTTPS certificates for tailnet names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsCerts {
    /// Nodes get `CertDomains` and the `https` capability, and
    /// `/machine/set-dns` publishes their ACME DNS-01 challenges on the
    /// authoritative server. Default false.
    pub enabled: bool,
    /// Every node may get certificates unless policy `nodeAttrs` give it
    /// `disable-https`; false: only nodes whose `nodeAttrs` give `https`.
    /// Default true.
    pub all_nodes: bool,
}

/// One static record, normalised: `name` without a trailing dot, `r#type`
/// upper-case. `A`/`AAAA` values are addresses of that family (the only
/// types Tailscale clients serve from their map); `CNAME` is a DNS name,
/// `TXT` free text, `SRV` `"priority weight port target"`. The
/// authoritative server serves all five.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraRecord {
    pub name: String,
    pub r#type: String,
    pub value: String,
}

/// `dns.server.*`: the authoritative server for the tailnet zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsServer {
    /// Default false.
    pub enabled: bool,
    /// UDP and TCP; default 127.0.0.1:5353.
    pub listen_addr: SocketAddr,
    /// Sources that may query; default loopback plus the tailnet prefixes.
    pub allow: Vec<IpNet>,
    /// TTL of every answer (and of negative answers), in seconds; default 10.
    pub ttl: u32,
    /// Sustained queries per second per source (0: no limit); default 500.
    pub rate_limit_qps: u32,
    /// Burst per source; default 1000.
    pub rate_limit_burst: u32,
    /// Idle timeout of a TCP connection; default 5 s.
    pub tcp_timeout: Duration,
    /// Answer a tailnet source only about nodes its policy lets it reach;
    /// default false.
    pub policy_filter: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derp {
    /// The embedded relay; `None` when `derp.server.enabled` is false.
    pub server: Option<DerpServer>,
    /// Remote DERP maps (Tailscale's JSON), merged into the DERP map.
    pub urls: Vec<String>,
    /// Local DERP map files (Headscale's YAML, or JSON), merged after `urls`.
    pub paths: Vec<PathBuf>,
    /// Read `urls` and `paths` again every `update_frequency`.
    pub auto_update_enabled: bool,
    pub update_frequency: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerpServer {
    pub region_id: u32,
    pub region_code: String,
    pub region_name: String,
    pub verify_clients: bool,
    /// `None` when explicitly set to an empty string (no STUN).
    pub stun_listen_addr: Option<SocketAddr>,
    pub private_key_path: PathBuf,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    pub automatically_add_embedded_derp_region: bool,
    /// `tls_cert_path`/`tls_key_path` when configured, otherwise a
    /// self-signed pair kept under `data_dir`.
    pub tls_cert_path: PathBuf,
    pub tls_key_path: PathBuf,
}

/// Certificate for the main listener (Headscale `tls_cert_path`/`tls_key_path`).
/// Both or neither are set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tls {
    pub cert_path: Option<PathBuf>,
    pub key_path: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    /// A `tracing` level name: `error`, `warn`, `info`, `debug` or `trace`
    /// (Headscale's `panic`/`fatal` map to `error`).
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: PolicyMode,
    /// HuJSON policy file for `PolicyMode::File`; `None` means no policy
    /// (everything allowed, as in Headscale).
    pub path: Option<PathBuf>,
    /// Refuse policies using clawscale extensions (ordered `deny` rules,
    /// `services`), for tailnets that must stay portable to Tailscale's
    /// hosted control plane.
    pub strict: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyMode {
    File,
    Database,
}

/// The whois/authorize API for gateways (`whois` section). Every listener
/// is off unless configured; the public port serves `/api/v1/whois` and
/// `/api/v1/authorize` (API key required) regardless.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Whois {
    /// LocalAPI-compatible unix socket, mode 0660; no API key needed.
    pub unix_socket: Option<PathBuf>,
    /// Extra TCP listener; every request needs an API key.
    pub listen_addr: Option<SocketAddr>,
    /// Default CapMap destination: a node name or tailnet IP.
    pub gateway: Option<String>,
    /// Peers whose `X-Forwarded-For` is believed by `/api/v1/authorize`.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Append-only JSON-lines audit log of authorize decisions.
    pub audit_log: Option<PathBuf>,
    /// How long a connection to the unix socket or `listen_addr` may wait
    /// for a request's headers, after connecting and between requests
    /// (HTTP/1); then it is closed, so idle or stalled clients cannot hold
    /// descriptors for ever.
    pub idle_timeout: std::time::Duration,
}

/// `audit.*`: the JSON-lines audit trail of every admin mutation and node
/// event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// `None`: auditing off (`audit.path: ""`). Default
    /// `<data_dir>/audit.jsonl`.
    pub path: Option<PathBuf>,
    /// Rotate before the file would grow past this many bytes.
    pub max_size: u64,
    /// Rotated files kept.
    pub max_files: u32,
}

impl Audit {
    pub const DEFAULT_MAX_SIZE: u64 = 100 << 20;
    pub const DEFAULT_MAX_FILES: u32 = 5;
}

/// `cli.*`: the CLI's remote server, as Headscale's CLI reads them. The
/// `--remote`/`--api-key` flags (and `CLAWSCALE_CLI_ADDRESS`/
/// `CLAWSCALE_CLI_API_KEY`) win over these.
#[derive(Clone, PartialEq, Eq)]
pub struct Cli {
    /// `https://ctl.example`; none: the local admin socket.
    pub address: Option<String>,
    pub api_key: Option<String>,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Cli {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
}

// Hand-written so the API key never reaches a log line.
impl fmt::Debug for Cli {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cli")
            .field("address", &self.address)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Whois {
    pub const DEFAULT_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
}

impl Default for Whois {
    fn default() -> Self {
        Whois {
            unix_socket: None,
            listen_addr: None,
            gateway: None,
            trusted_proxies: Vec::new(),
            audit_log: None,
            idle_timeout: Whois::DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// `connections`: what one client may hold on `listen_addr` (and in the
/// Noise tunnels and DERP streams it carries) and on the admin socket.
/// clawscale's own section; see `crate::limits` for what each bound covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connections {
    /// Open connections per IPv4 address or IPv6 /64 on `listen_addr`.
    pub max_per_ip: u32,
    /// Open connections on `listen_addr` (and `metrics_listen_addr`) in
    /// all; `None`: the open-file limit minus a reserve, at start.
    pub max_total: Option<u32>,
    /// Connect (and TLS) to a complete request head; HTTP/1 keep-alive.
    pub read_header_timeout: Duration,
    /// A request head to the end of its body.
    pub read_body_timeout: Duration,
    /// Open with no request in flight (HTTP/2, Noise tunnels, admin).
    pub idle_timeout: Duration,
    /// HTTP/2 PING after this long without hearing from the peer.
    pub keepalive_interval: Duration,
    /// Close when a PING is not answered within this.
    pub keepalive_timeout: Duration,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            max_per_ip: 1024,
            max_total: None,
            read_header_timeout: Duration::from_secs(10),
            read_body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            keepalive_interval: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
        }
    }
}

/// Environment lookup; tests pass a map instead of touching the process env.
type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Loads the configuration from `path` (or built-in defaults when `None`),
/// then applies `CLAWSCALE_*` environment variables and `overrides`.
pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, Error> {
    let env = |name: &str| std::env::var(name).ok();
    match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
                path: path.to_path_buf(),
                source,
            })?;
            build(&text, &path.display().to_string(), overrides, &env)
        }
        None => build("", "<defaults>", overrides, &env),
    }
}

/// Parses the `dns.extra_records_path` file: a JSON list of
/// `{"name", "type", "value"}` objects, checked like `dns.extra_records`.
pub fn parse_extra_records_json(text: &str) -> Result<Vec<ExtraRecord>, Error> {
    validate::extra_records_json(text)
}

impl Config {
    /// Built-in defaults with the given data directory, ignoring the
    /// environment. Used when no config file is given, and by tests.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Config {
        let overrides = Overrides {
            data_dir: Some(data_dir.into()),
            ..Overrides::default()
        };
        match build("", "<defaults>", &overrides, &|_| None) {
            Ok(config) => config,
            // The defaults are constants and a data directory is never
            // rejected, so this is a programming error; the tests cover it.
            Err(err) => panic!("built-in default config is invalid: {err}"),
        }
    }

    /// Parses YAML text with `overrides` but without reading the environment.
    pub fn from_yaml(text: &str, overrides: &Overrides) -> Result<Config, Error> {
        build(text, "<yaml>", overrides, &|_| None)
    }
}

fn build(text: &str, origin: &str, overrides: &Overrides, env: EnvLookup) -> Result<Config, Error> {
    let mut raw = raw::parse(text, origin)?;
    env::apply(&mut raw, env)?;
    validate::validate(raw, overrides)
}
