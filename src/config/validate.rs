//! Stage two: `RawConfig` (+ CLI overrides) → typed [`Config`].
//!
//! Derived defaults are resolved here because they depend on other settings:
//! file paths live under `data_dir`, `server_url` follows `listen_addr`, the
//! STUN port sits on `listen_addr`'s IP. Errors name the YAML key. Headscale
//! keys that are accepted but not acted on become `Config::warnings`
//! (`unsupported`).

mod admin;
mod connections;
mod database;
mod derp;
mod dns;
mod dns_server;
mod login;
mod parse;
mod unsupported;
mod whois;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::raw::{RawConfig, RawPrefixes};
use super::{
    Allocation, Config, Error, Log, LogFormat, Overrides, Policy, PolicyMode, Prefixes, Tls,
};

pub(super) use database::redact_url_password;
pub(super) use dns::extra_records_json;
pub(super) use parse::{duration, invalid};

const DEFAULT_DATA_DIR: &str = "./clawscale-data";

/// Headscale's floor for the ephemeral timeout: the map keepalive (60s) plus
/// a margin, so a healthy idle node is never mistaken for a gone one.
const MIN_EPHEMERAL_TIMEOUT: Duration = Duration::from_secs(65);

pub(super) fn validate(raw: RawConfig, overrides: &Overrides) -> Result<Config, Error> {
    let mut warnings = Vec::new();

    let data_dir = overrides
        .data_dir
        .clone()
        .or_else(|| non_empty_path(raw.data_dir.as_deref()))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let in_data_dir = |name: &str| data_dir.join(name);

    let listen_addr = match overrides.listen_addr {
        Some(addr) => addr,
        None => parse::socket_addr("listen_addr", &raw.listen_addr)?,
    };
    let server_url = optional_url("server_url", raw.server_url.as_deref())?
        .unwrap_or_else(|| url_for(listen_addr));
    let server_host = parse::url_host(&server_url)
        .ok_or_else(|| invalid("server_url", format!("{server_url:?} has no host")))?;
    let login_url = optional_url("login_url", raw.login_url.as_deref())?;

    let metrics_listen_addr =
        optional_addr("metrics_listen_addr", raw.metrics_listen_addr.as_deref())?;
    let grpc_listen_addr = optional_addr("grpc_listen_addr", raw.grpc_listen_addr.as_deref())?;

    let unix_socket =
        non_empty_path(raw.unix_socket.as_deref()).unwrap_or_else(|| in_data_dir("clawscale.sock"));
    let unix_socket_permission =
        parse::file_mode("unix_socket_permission", &raw.unix_socket_permission)?;
    let noise_private_key_path = non_empty_path(raw.noise.private_key_path.as_deref())
        .unwrap_or_else(|| in_data_dir("noise_private.key"));

    let prefixes = prefixes(&raw.prefixes)?;
    let database = database::build(&raw.database, overrides.database_url.as_deref(), &data_dir)?;
    let dns = dns::build(&raw.dns, &server_host, &prefixes, &mut warnings)?;
    let tls = tls(&raw)?;
    let derp = derp::build(&raw.derp, listen_addr, &data_dir, &tls)?;
    let ephemeral_node_inactivity_timeout = ephemeral_timeout(&raw, &mut warnings)?;
    let log = log(&raw.log.level, &raw.log.format)?;
    let policy = policy(
        &raw.policy.mode,
        raw.policy.path.as_deref(),
        raw.policy.strict,
    )?;
    let whois = whois::build(&raw.whois)?;
    let connections = connections::build(&raw.connections)?;
    let audit = admin::audit(&raw.audit, &data_dir)?;
    let cli = admin::cli(&raw.cli)?;
    let login = login::build(&raw)?;
    let batch_change_delay = login::batch_change_delay(&raw)?;
    let oidc = super::oidc::build(raw.oidc.as_ref())?;
    admin::grpc_tls(&raw, grpc_listen_addr.is_some(), &tls)?;

    unsupported::collect(&raw, &mut warnings);

    Ok(Config {
        server_url,
        login_url,
        listen_addr,
        metrics_listen_addr,
        grpc_listen_addr,
        grpc_allow_insecure: raw.grpc_allow_insecure,
        unix_socket,
        unix_socket_permission,
        data_dir,
        noise_private_key_path,
        prefixes,
        database,
        dns,
        derp,
        tls,
        ephemeral_node_inactivity_timeout,
        batch_change_delay,
        log,
        policy,
        whois,
        connections,
        audit,
        cli,
        login,
        oidc,
        warnings,
    })
}

/// Headscale treats an empty string like an absent key for paths.
fn non_empty_path(path: Option<&Path>) -> Option<PathBuf> {
    path.filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
}

/// Absent or empty disables the listener (as in Headscale).
fn optional_addr(key: &str, text: Option<&str>) -> Result<Option<SocketAddr>, Error> {
    match text.map(str::trim) {
        Some(text) if !text.is_empty() => parse::socket_addr(key, text).map(Some),
        _ => Ok(None),
    }
}

/// An http(s) URL with a host, without a trailing `/`; `None` when unset.
fn optional_url(key: &str, text: Option<&str>) -> Result<Option<String>, Error> {
    let url = match text.map(str::trim) {
        Some(url) if !url.is_empty() => url.trim_end_matches('/').to_string(),
        _ => return Ok(None),
    };
    match parse::url_host(&url) {
        Some(_) => Ok(Some(url)),
        None => Err(invalid(
            key,
            format!("{url:?} is not an http:// or https:// URL with a host"),
        )),
    }
}

/// The URL a client on this machine would use for `addr`; a wildcard bind
/// is reachable on loopback.
fn url_for(addr: SocketAddr) -> String {
    match addr.ip() {
        IpAddr::V4(ip) => {
            let ip = if ip.is_unspecified() {
                Ipv4Addr::LOCALHOST
            } else {
                ip
            };
            format!("http://{ip}:{}", addr.port())
        }
        IpAddr::V6(ip) => {
            let ip = if ip.is_unspecified() {
                Ipv6Addr::LOCALHOST
            } else {
                ip
            };
            format!("http://[{ip}]:{}", addr.port())
        }
    }
}

// Tailscale clients hard-code these ranges (tsaddr.CGNATRange and
// TailscaleULARange); addresses outside them break MagicDNS, interface routes
// and peer filtering in ways that are hard to debug, so Headscale's "this is
// unsupported" banner becomes an error here.
const CGNAT: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(100, 64, 0, 0), 10);
const TAILSCALE_ULA: Ipv6Net =
    Ipv6Net::new_assert(Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, 0), 48);

fn prefixes(raw: &RawPrefixes) -> Result<Prefixes, Error> {
    let v4 = match prefix("prefixes.v4", raw.v4.as_deref(), IpNet::V4(CGNAT))? {
        Some(IpNet::V4(net)) => Some(net),
        _ => None,
    };
    let v6 = match prefix("prefixes.v6", raw.v6.as_deref(), IpNet::V6(TAILSCALE_ULA))? {
        Some(IpNet::V6(net)) => Some(net),
        _ => None,
    };
    if v4.is_none() && v6.is_none() {
        return Err(invalid(
            "prefixes",
            "at least one of prefixes.v4 and prefixes.v6 must be set",
        ));
    }
    let allocation = match raw.allocation.trim() {
        "sequential" => Allocation::Sequential,
        "random" => Allocation::Random,
        other => {
            return Err(invalid(
                "prefixes.allocation",
                format!("{other:?} is not one of \"sequential\", \"random\""),
            ));
        }
    };
    Ok(Prefixes { v4, v6, allocation })
}

/// One family's prefix: empty or null turns the family off; otherwise it
/// must lie within `range` (which also pins the family). Host bits are
/// cleared.
fn prefix(key: &str, text: Option<&str>, range: IpNet) -> Result<Option<IpNet>, Error> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let net: IpNet = text
        .parse()
        .map_err(|_| invalid(key, format!("{text:?} is not a prefix like {range}")))?;
    if !range.contains(&net) {
        return Err(invalid(
            key,
            format!("{text} is outside {range}, the only range Tailscale clients support"),
        ));
    }
    Ok(Some(net.trunc()))
}

fn tls(raw: &RawConfig) -> Result<Tls, Error> {
    let cert_path = non_empty_path(raw.tls_cert_path.as_deref());
    let key_path = non_empty_path(raw.tls_key_path.as_deref());
    match (&cert_path, &key_path) {
        (Some(_), None) => Err(invalid(
            "tls_key_path",
            "must be set together with tls_cert_path",
        )),
        (None, Some(_)) => Err(invalid(
            "tls_cert_path",
            "must be set together with tls_key_path",
        )),
        _ => Ok(Tls {
            cert_path,
            key_path,
        }),
    }
}

fn ephemeral_timeout(raw: &RawConfig, warnings: &mut Vec<String>) -> Result<Duration, Error> {
    const KEY: &str = "node.ephemeral.inactivity_timeout";
    const OLD_KEY: &str = "ephemeral_node_inactivity_timeout";
    let current = raw
        .node
        .ephemeral
        .inactivity_timeout
        .as_ref()
        .filter(|s| !s.text.trim().is_empty());
    if raw.ephemeral_node_inactivity_timeout.is_some() {
        warnings.push(format!("{OLD_KEY:?} is deprecated; use {KEY:?} instead"));
    }
    // As in Headscale, the new key wins when both are present.
    let (key, timeout) = match (current, &raw.ephemeral_node_inactivity_timeout) {
        (Some(value), _) => (KEY, parse::duration(KEY, value)?),
        (None, Some(value)) => (OLD_KEY, parse::duration(OLD_KEY, value)?),
        (None, None) => (KEY, Duration::from_secs(30 * 60)),
    };
    if timeout.is_zero() {
        return Err(invalid(key, "must be longer than zero"));
    }
    if timeout <= MIN_EPHEMERAL_TIMEOUT {
        warnings.push(format!(
            "{key:?} is {}, not more than the 65s Headscale requires; idle ephemeral nodes may be removed while still connected",
            humantime::format_duration(timeout)
        ));
    }
    Ok(timeout)
}

fn log(level: &str, format: &str) -> Result<Log, Error> {
    let level = match level.trim().to_ascii_lowercase().as_str() {
        // zerolog levels Headscale accepts that `tracing` lacks.
        "panic" | "fatal" => "error".to_string(),
        "warning" => "warn".to_string(),
        level @ ("error" | "warn" | "info" | "debug" | "trace") => level.to_string(),
        other => {
            return Err(invalid(
                "log.level",
                format!(
                    "{other:?} is not one of trace, debug, info, warn, error (or Headscale's fatal, panic)"
                ),
            ));
        }
    };
    let format = match format.trim() {
        "" | "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(invalid(
                "log.format",
                format!("{other:?} is not one of \"text\", \"json\""),
            ));
        }
    };
    Ok(Log { level, format })
}

fn policy(mode: &str, path: Option<&Path>, strict: bool) -> Result<Policy, Error> {
    let mode = match mode.trim() {
        "file" => PolicyMode::File,
        "database" => PolicyMode::Database,
        other => {
            return Err(invalid(
                "policy.mode",
                format!("{other:?} is not one of \"file\", \"database\""),
            ));
        }
    };
    Ok(Policy {
        mode,
        path: non_empty_path(path),
        strict,
    })
}
