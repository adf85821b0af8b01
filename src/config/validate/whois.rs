//! `whois.*` → [`Whois`].

use ipnet::IpNet;

use super::super::raw::RawWhois;
use super::super::{Error, Whois};
use super::parse::{duration, invalid};
use super::{non_empty_path, optional_addr};

pub(in crate::config) fn build(raw: &RawWhois) -> Result<Whois, Error> {
    let listen_addr = optional_addr("whois.listen_addr", raw.listen_addr.as_deref())?;
    let trusted_proxies = raw
        .trusted_proxies
        .iter()
        .map(|s| {
            let s = s.trim();
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    invalid(
                        "whois.trusted_proxies",
                        format!("{s:?} is not an IP address or CIDR prefix"),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let gateway = raw
        .gateway
        .as_deref()
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_string);
    let idle_timeout = match &raw.idle_timeout {
        None => Whois::DEFAULT_IDLE_TIMEOUT,
        Some(v) => duration("whois.idle_timeout", v)?,
    };
    if idle_timeout.is_zero() {
        return Err(invalid("whois.idle_timeout", "must be more than 0"));
    }
    Ok(Whois {
        unix_socket: non_empty_path(raw.unix_socket.as_deref()),
        listen_addr,
        gateway,
        trusted_proxies,
        audit_log: non_empty_path(raw.audit_log.as_deref()),
        idle_timeout,
    })
}
