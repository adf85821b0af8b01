//! `dns.server` → [`DnsServer`]: the authoritative DNS server's listener,
//! access list, TTL and rate limits, with clawscale's defaults.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::super::raw::RawDnsServer;
use super::super::{DnsServer, Error, Prefixes};
use super::{invalid, parse};

const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5353);
const DEFAULT_TTL: u32 = 10;
/// Longest accepted TTL: a day. Names move; long caching defeats that.
const MAX_TTL: u32 = 86_400;
const DEFAULT_QPS: u32 = 500;
const DEFAULT_BURST: u32 = 1000;
const DEFAULT_TCP_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn build(raw: &RawDnsServer, prefixes: &Prefixes) -> Result<DnsServer, Error> {
    let listen_addr = match raw.listen_addr.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => parse::socket_addr("dns.server.listen_addr", text)?,
        _ => DEFAULT_LISTEN,
    };
    let allow = match &raw.allow {
        None => default_allow(prefixes),
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, text)| allow_entry(&format!("dns.server.allow[{i}]"), text))
            .collect::<Result<Vec<_>, _>>()?,
    };
    if allow.is_empty() {
        return Err(invalid(
            "dns.server.allow",
            "is empty, so nobody could query the server; remove the key for the default \
             (loopback and the tailnet prefixes)",
        ));
    }
    let ttl = match &raw.ttl {
        None => DEFAULT_TTL,
        Some(value) => {
            let d = parse::duration("dns.server.ttl", value)?;
            let secs = u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
            if secs == 0 || secs > MAX_TTL || d.subsec_nanos() != 0 {
                return Err(invalid(
                    "dns.server.ttl",
                    format!("must be whole seconds between 1s and {MAX_TTL}s"),
                ));
            }
            secs
        }
    };
    let tcp_timeout = match &raw.tcp_timeout {
        None => DEFAULT_TCP_TIMEOUT,
        Some(value) => parse::duration("dns.server.tcp_timeout", value)?,
    };
    if tcp_timeout.is_zero() {
        return Err(invalid("dns.server.tcp_timeout", "must be more than 0"));
    }
    let rate_limit_qps = raw.rate_limit.qps.unwrap_or(DEFAULT_QPS);
    let rate_limit_burst = raw.rate_limit.burst.unwrap_or(DEFAULT_BURST);
    if rate_limit_qps > 0 && rate_limit_burst == 0 {
        return Err(invalid(
            "dns.server.rate_limit.burst",
            "must be at least 1 when rate_limit.qps is set (0 qps turns the limit off)",
        ));
    }
    Ok(DnsServer {
        enabled: raw.enabled,
        listen_addr,
        allow,
        ttl,
        rate_limit_qps,
        rate_limit_burst,
        tcp_timeout,
        policy_filter: raw.policy_filter,
    })
}

/// Loopback, plus the tailnet prefixes in use.
fn default_allow(prefixes: &Prefixes) -> Vec<IpNet> {
    let mut allow = vec![
        IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8)),
        IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128)),
    ];
    allow.extend(prefixes.v4.map(IpNet::V4));
    allow.extend(prefixes.v6.map(IpNet::V6));
    allow
}

/// A prefix (`10.0.0.0/8`) or a single address (`192.0.2.7`).
fn allow_entry(key: &str, text: &str) -> Result<IpNet, Error> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
        invalid(
            key,
            format!("{text:?} is not an address or a prefix like 10.0.0.0/8"),
        )
    })
}
