//! Authoritative DNS server for the tailnet zone (MagicDNS names for resolvers outside Tailscale).
//!
//! Owns: the in-memory [`RecordIndex`] (built from a [`ZoneData`] the caller derives from its
//! World snapshot), the per-source rate limiter, and the listeners. hickory-server 0.26 (its
//! types stay inside this module) provides the wire types, the request-handler contract and
//! the TCP listener; UDP uses our own per-socket loops (`udp.rs`) because hickory's
//! task-per-datagram listener cost too much CPU per query. Depends on nothing else in the
//! crate: the caller rebuilds the index and publishes it through a `tokio::sync::watch`
//! channel; the next query after a swap sees the new data.
//!
//! Files: `records.rs` (index build), `lookup.rs` (answering rules, pure), `handler.rs`
//! (per-request checks and EDNS), `limiter.rs` (token buckets), `udp.rs`, `server.rs`
//! (binding, shutdown).
//!
//! Mirrors what a Tailscale client's MagicDNS resolver (100.100.100.100) answers for tailnet
//! names: `<node>.<base_domain>` → the node's 100.64.0.0/10 and fd7a:115c:a1e0::/48 addresses,
//! and PTR for those addresses. On top of that it behaves like a plain authoritative server:
//!
//! - Zones: `<base_domain>`, the 64 IPv4 reverse zones `64.100.in-addr.arpa` …
//!   `127.100.in-addr.arpa` (100.64.0.0/10 split on the octet boundary) and the IPv6 reverse zone
//!   for fd7a:115c:a1e0::/48. Everything else is `REFUSED`; there is no recursion (RA is never
//!   set), no zone transfer and no dynamic update.
//! - SOA/NS: the SOA MNAME and the NS target are the apex `<base_domain>` itself, RNAME is
//!   `hostmaster.<base_domain>`. Using the apex avoids inventing an `ns.` label that could
//!   collide with a node called `ns`. The SOA serial is [`ZoneData::serial`]; SOA MINIMUM (the
//!   negative-caching TTL) equals the record TTL so deleted or renamed nodes vanish quickly.
//! - NXDOMAIN vs NODATA: a name that exists (including empty non-terminals such as `_tcp.x`
//!   under an SRV owner) but has no record of the asked type gets `NOERROR` with the SOA in the
//!   authority section; an unknown name gets `NXDOMAIN` with the SOA.
//! - ANY (RFC 8482 spirit): answers the name's address records (A+AAAA), or if it has none its
//!   CNAME, TXT or SRV set, in that order; at the apex the SOA. Never the whole node.
//! - Size: responses over UDP are capped at the client's EDNS payload size, at most 1232 bytes
//!   (DNS flag day 2020), or 512 without EDNS; larger answers set TC and the client retries
//!   over TCP on the same port.
//! - Access: sources outside [`ServerConfig::allow`] get `REFUSED`; each source (IPv4 address,
//!   tailnet IPv6 address, or other IPv6 /64) has a token bucket, and queries over the limit are
//!   dropped silently (answering would help reflection attacks).
//! - Known limits: hickory's TCP listener does not cap concurrent connections (idle ones close
//!   after [`ServerConfig::tcp_timeout`]); the UDP sockets use `SO_REUSEPORT`, so a second
//!   process of the same user binding the same port would share the traffic instead of failing.
//! - Visibility (off by default): with a [`Visibility`] callback, a source only learns the names
//!   and PTRs of nodes the callback says it may reach; the others look like NXDOMAIN.
//! - ACME challenges (off by default): with a [`ChallengeSource`], a `_acme-challenge.` name in
//!   the zone that has live values is answered (TXT) to any source, allow-list or not: a CA
//!   validates from resolvers of its own. Names without values fall through to the rules
//!   above. Values are read per query, so one published is answered at once (`challenge.rs`).

mod challenge;
mod handler;
mod limiter;
mod lookup;
mod records;
mod server;
mod udp;

#[cfg(test)]
mod e2e_tests;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

pub use records::RecordIndex;
pub use server::{ServerHandle, serve};

/// Errors from building an index or starting the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The base domain is not a valid DNS name with at least one label.
    #[error("invalid base domain {0:?}")]
    BaseDomain(String),
    /// A node or service label is not a single valid DNS label.
    #[error("invalid label {0:?}")]
    Label(String),
    /// An extra record's name or target is not a valid DNS name.
    #[error("invalid name {0:?}")]
    Name(String),
    /// An extra record's type or value could not be parsed.
    #[error("invalid {kind} record value {value:?}")]
    Value { kind: String, value: String },
    /// Two nodes/services claim the same name, or a CNAME shares its name with other data.
    #[error("name {0:?} is defined twice or conflicts with a CNAME")]
    Conflict(String),
    /// `ServerConfig::allow` is empty: nobody could ever query the server.
    #[error("dns server allow-list is empty")]
    EmptyAllowList,
    /// Binding the UDP or TCP socket failed.
    #[error("dns server cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// A listener stopped with an error.
    #[error("dns server failed: {0}")]
    Serve(String),
}

/// Everything the index is built from; the caller derives it from its World snapshot.
#[derive(Clone, Debug, Default)]
pub struct ZoneData {
    /// Zone apex, e.g. `tail.example.com` (trailing dot optional, case ignored).
    pub base_domain: String,
    /// SOA serial; must change whenever the contents change (the World generation works).
    pub serial: u32,
    /// TTL of every record and of negative answers, in seconds.
    pub ttl: u32,
    pub nodes: Vec<NodeName>,
    pub services: Vec<ServiceName>,
    pub extra: Vec<ExtraRecord>,
}

/// A node's DNS label and addresses: `<label>.<base_domain>` → `ipv4`/`ipv6`, plus PTRs.
#[derive(Clone, Debug)]
pub struct NodeName {
    /// Node id, passed to the [`Visibility`] callback.
    pub id: u64,
    /// Single DNS label (the node's given name), e.g. `laptop`.
    pub label: String,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
}

/// A service name (`<label>.<base_domain>`) with its addresses; always visible.
#[derive(Clone, Debug)]
pub struct ServiceName {
    pub label: String,
    pub addrs: Vec<IpAddr>,
}

/// An operator-configured record (headscale's `dns.extra_records`). Records whose name lies
/// outside `base_domain` are skipped by the server (they still belong in the clients' map).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtraRecord {
    /// Owner name, absolute or relative to nothing (e.g. `grafana.tail.example.com`).
    pub name: String,
    pub value: ExtraValue,
}

/// The typed data of an [`ExtraRecord`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtraValue {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(String),
    /// One logical string; split into 255-byte character-strings on the wire.
    Txt(String),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
}

impl ExtraRecord {
    /// Parses headscale-style `{name, type, value}` config strings. `kind` is case-insensitive
    /// (`A`, `AAAA`, `CNAME`, `TXT`, `SRV`); an SRV value is `"priority weight port target"`.
    pub fn parse(name: &str, kind: &str, value: &str) -> Result<Self, Error> {
        let bad = || Error::Value {
            kind: kind.to_owned(),
            value: value.to_owned(),
        };
        let value = match kind.to_ascii_uppercase().as_str() {
            "A" => ExtraValue::A(value.trim().parse().map_err(|_| bad())?),
            "AAAA" => ExtraValue::Aaaa(value.trim().parse().map_err(|_| bad())?),
            "CNAME" => ExtraValue::Cname(value.trim().to_owned()),
            "TXT" => ExtraValue::Txt(value.to_owned()),
            "SRV" => {
                let parts: Vec<&str> = value.split_whitespace().collect();
                let [p, w, port, target] = parts.as_slice() else {
                    return Err(bad());
                };
                ExtraValue::Srv {
                    priority: p.parse().map_err(|_| bad())?,
                    weight: w.parse().map_err(|_| bad())?,
                    port: port.parse().map_err(|_| bad())?,
                    target: (*target).to_owned(),
                }
            }
            _ => return Err(bad()),
        };
        Ok(Self {
            name: name.to_owned(),
            value,
        })
    }
}

/// Listener settings (config keys `dns.server.*`).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// UDP and TCP bind address; port 0 picks a free port shared by both.
    pub listen: SocketAddr,
    /// Source prefixes that may query; others get REFUSED. Must not be empty.
    pub allow: Vec<IpNet>,
    /// Sustained queries per second per source; 0 disables rate limiting.
    pub rate_limit_qps: u32,
    /// Bucket size: queries a source may send in a burst.
    pub burst: u32,
    /// Idle timeout of a TCP connection.
    pub tcp_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 5353)),
            allow: default_allow(),
            rate_limit_qps: 500,
            burst: 1000,
            tcp_timeout: Duration::from_secs(5),
        }
    }
}

/// Loopback plus the tailnet prefixes.
pub fn default_allow() -> Vec<IpNet> {
    vec![LOOPBACK_V4, LOOPBACK_V6, TAILNET_V4, TAILNET_V6]
}

/// Optional per-source visibility filter (policy option): may `src` learn node `id`'s name?
pub type Visibility = Arc<dyn Fn(IpAddr, u64) -> bool + Send + Sync>;

/// Live ACME DNS-01 challenge values, read on every `_acme-challenge.` query.
#[async_trait::async_trait]
pub trait ChallengeSource: Send + Sync {
    /// The TXT values at `owner` (lower-case, no trailing dot); empty when none.
    /// Async: with replicas a value published through another replica is
    /// read from the database.
    async fn txt(&self, owner: &str) -> Vec<String>;
    /// Called once per response that carried challenge values.
    fn served(&self);
}

/// Optional live behaviour of the server beyond the index.
#[derive(Clone, Default)]
pub struct Hooks {
    pub visibility: Option<Visibility>,
    pub challenges: Option<Arc<dyn ChallengeSource>>,
}

const LOOPBACK_V4: IpNet = IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8));
const LOOPBACK_V6: IpNet = IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128));
/// The tailnet IPv4 range (CGNAT) whose reverse zones we serve.
const TAILNET_V4: IpNet = IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(100, 64, 0, 0), 10));
/// The tailnet IPv6 ULA range whose reverse zone we serve.
const TAILNET_V6: IpNet = IpNet::V6(Ipv6Net::new_assert(
    Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, 0),
    48,
));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_extra_records() {
        let r = ExtraRecord::parse("x.ts.net", "aaaa", "fd7a:115c:a1e0::1").unwrap();
        assert_eq!(
            r.value,
            ExtraValue::Aaaa("fd7a:115c:a1e0::1".parse().unwrap())
        );
        let r = ExtraRecord::parse("_h._tcp.ts.net", "SRV", "10 5 443 web.ts.net").unwrap();
        assert_eq!(
            r.value,
            ExtraValue::Srv {
                priority: 10,
                weight: 5,
                port: 443,
                target: "web.ts.net".into()
            }
        );
        assert!(ExtraRecord::parse("x", "A", "fd7a::1").is_err());
        assert!(ExtraRecord::parse("x", "SRV", "1 2 3").is_err());
        assert!(ExtraRecord::parse("x", "MX", "10 mail").is_err());
    }

    #[test]
    fn default_allow_covers_loopback_and_tailnet() {
        let allow = default_allow();
        for ip in [
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "100.64.0.1",
            "100.127.255.1",
            "fd7a:115c:a1e0::9",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(allow.iter().any(|n| n.contains(&ip)), "{ip}");
        }
        for ip in ["10.0.0.1", "100.128.0.1", "fd7a:115c:a1e1::1", "8.8.8.8"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!allow.iter().any(|n| n.contains(&ip)), "{ip}");
        }
    }
}
