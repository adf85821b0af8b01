//! Derives the per-map settings (DERP map, DNS config) and a few listener
//! facts from configuration.

use std::net::{IpAddr, SocketAddr};

use axum::http::Uri;
use ipnet::{Ipv4Net, Ipv6Net};

use crate::config::{Config, Connections, DerpServer};
use crate::http::listener;
use crate::limits::{self, Gate, Timeouts};
use crate::state::dns::DnsBase;
use crate::state::{Certs, DerpMaps, Settings};
use crate::tailcfg::{DerpMap, DerpNode, DerpRegion, DnsConfig, DnsRecord};

/// `server_url` with a `:0` port replaced by the port actually bound (tests
/// and ad-hoc runs listen on port 0).
pub(super) fn effective_server_url(server_url: &str, bound: SocketAddr) -> String {
    match server_url.parse::<Uri>() {
        Ok(u) if u.port_u16() == Some(0) => {
            let host = u.host().unwrap_or("127.0.0.1");
            let scheme = u.scheme_str().unwrap_or("http");
            let path = u.path().trim_end_matches('/');
            format!("{scheme}://{host}:{}{path}", bound.port())
        }
        _ => server_url.trim_end_matches('/').to_string(),
    }
}

/// Host part of a URL, without IPv6 brackets.
fn url_host(url: &str) -> Option<String> {
    let u: Uri = url.parse().ok()?;
    Some(
        u.host()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    )
}

fn url_port(url: &str) -> u16 {
    let Ok(u) = url.parse::<Uri>() else {
        return 443;
    };
    u.port_u16().unwrap_or(match u.scheme_str() {
        Some("http") => 80,
        _ => 443,
    })
}

/// The `connections` section as the listeners use it. A derived total
/// comes from the open-file limit in force now (after `run` raised it).
pub(super) fn connection_limits(c: &Connections) -> listener::Limits {
    let soft = limits::nofile::soft_limit();
    let max_total = c
        .max_total
        .unwrap_or_else(|| limits::nofile::default_total(soft));
    tracing::info!(
        max_per_ip = c.max_per_ip,
        max_total,
        "connection limits on the public port"
    );
    listener::Limits {
        gate: Gate::new(c.max_per_ip, max_total),
        timeouts: Timeouts {
            read_header: c.read_header_timeout,
            read_body: c.read_body_timeout,
            idle: c.idle_timeout,
            keepalive_interval: c.keepalive_interval,
            keepalive_timeout: c.keepalive_timeout,
        },
    }
}

/// Names the DERP certificate must cover: everything a client may dial.
pub(super) fn tls_names(server_url: &str, d: &DerpServer, bound: SocketAddr) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(h) = url_host(server_url) {
        names.push(h);
    }
    if let Some(a) = d.ipv4 {
        names.push(a.to_string());
    }
    if let Some(a) = d.ipv6 {
        names.push(a.to_string());
    }
    if super::dialable(bound.ip()) {
        names.push(bound.ip().to_string());
    }
    names.sort();
    names.dedup();
    names
}

/// The embedded DERP server's region, as the DERP map lists it.
///
/// `IPv4`/`IPv6` are never left to guesswork: an empty family makes the
/// client resolve `HostName` for it and, in netcheck, wait its full 3 s STUN
/// timeout for an answer that never comes (every `tailscale up` took 3 s
/// longer). So a family is the configured address (`derp.server.ipv4`/
/// `ipv6`), else `server_url`'s host if it is an address of that family,
/// else `"none"` (`tailcfg.DERPNode`: a non-address disables the family) —
/// except IPv4 for a DNS host name, which is left to DNS as names have A
/// records. An operator whose relay answers on IPv6 sets `derp.server.ipv6`.
pub(super) fn embedded_region(
    server_url: &str,
    d: &DerpServer,
    cert_pin: Option<String>,
    stun: Option<SocketAddr>,
) -> anyhow::Result<DerpRegion> {
    let host = url_host(server_url)
        .ok_or_else(|| anyhow::anyhow!("server_url {server_url:?} has no host"))?;
    let host_ip: Option<IpAddr> = host.parse().ok();
    let ipv4 = match (d.ipv4, host_ip) {
        (Some(a), _) => a.to_string(),
        (None, Some(IpAddr::V4(a))) => a.to_string(),
        (None, Some(IpAddr::V6(_))) => NONE.to_string(),
        (None, None) => String::new(),
    };
    let ipv6 = match (d.ipv6, host_ip) {
        (Some(a), _) => a.to_string(),
        (None, Some(IpAddr::V6(a))) => a.to_string(),
        (None, _) => NONE.to_string(),
    };
    let region_id = i32::try_from(d.region_id)?;
    let node = DerpNode {
        name: format!("{region_id}a"),
        region_id,
        host_name: host,
        cert_name: cert_pin.unwrap_or_default(),
        ipv4,
        ipv6,
        stun_port: stun.map(|s| i32::from(s.port())).unwrap_or(-1),
        derp_port: i32::from(url_port(server_url)),
        ..Default::default()
    };
    Ok(DerpRegion {
        region_id,
        region_code: d.region_code.clone(),
        region_name: d.region_name.clone(),
        nodes: vec![node],
        ..Default::default()
    })
}

/// `tailcfg.DERPNode`'s conventional value for "not this address family".
const NONE: &str = "none";

/// The settings every map carries, with `derp_map` as the DERP map.
pub(super) fn world_settings(config: &Config, derp_map: DerpMap, login_url: &str) -> Settings {
    Settings {
        login_url: login_url.to_string(),
        base_domain: config.dns.base_domain.clone(),
        derp_map: DerpMaps::new(derp_map),
        dns: dns_config(config),
        domain: config.dns.base_domain.clone(),
        certs: match config.dns.certs {
            c if !c.enabled => Certs::Off,
            c if c.all_nodes => Certs::AllNodes,
            _ => Certs::OptIn,
        },
    }
}

/// The config file's `dns` section as the state writer combines it with
/// API v2's changes (`state::dns`).
pub(super) fn dns_base(config: &Config) -> DnsBase {
    let dns = &config.dns;
    DnsBase {
        magic_dns: dns.magic_dns,
        base_domain: dns.base_domain.clone(),
        override_local_dns: dns.override_local_dns,
        nameservers: dns.nameservers_global.clone(),
        split: dns.nameservers_split.clone(),
        search_domains: dns.search_domains.clone(),
        reverse_zones: reverse_zones(config.prefixes.v4, config.prefixes.v6),
    }
}

/// Headscale's mapping of the `dns` section onto `tailcfg.DNSConfig`, as
/// the file alone gives it.
pub(super) fn dns_config(config: &Config) -> DnsConfig {
    let mut out = dns_base(config).build(&Default::default());
    out.extra_records = config
        .dns
        .extra_records
        .iter()
        .map(|r| DnsRecord {
            name: r.name.clone(),
            r#type: r.r#type.clone(),
            value: r.value.clone(),
        })
        .collect();
    out
}

/// Reverse-DNS zones covering the tailnet prefixes, at label granularity.
pub(super) fn reverse_zones(v4: Option<Ipv4Net>, v6: Option<Ipv6Net>) -> Vec<String> {
    let mut zones = Vec::new();
    if let Some(net) = v4 {
        let octets = usize::from(net.prefix_len().div_ceil(8)).max(1);
        let wider = Ipv4Net::new(net.network(), (octets * 8) as u8)
            .map(|n| n.trunc())
            .ok();
        if let Some(sub) = wider {
            for n in net.subnets(sub.prefix_len()).into_iter().flatten() {
                let o = n.network().octets();
                let labels: Vec<String> = o[..octets].iter().rev().map(|b| b.to_string()).collect();
                zones.push(format!("{}.in-addr.arpa.", labels.join(".")));
            }
        }
    }
    if let Some(net) = v6 {
        let nibbles = usize::from(net.prefix_len().div_ceil(4)).max(1);
        let hex: String = net
            .network()
            .octets()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let labels: Vec<String> = hex[..nibbles]
            .chars()
            .rev()
            .map(|c| c.to_string())
            .collect();
        // Prefixes not on a nibble boundary would need several zones; the
        // Tailscale range (/48) is on one.
        zones.push(format!("{}.ip6.arpa.", labels.join(".")));
    }
    zones
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_url_port_zero_is_replaced() {
        let bound: SocketAddr = "127.0.0.1:41000".parse().unwrap();
        assert_eq!(
            effective_server_url("http://127.0.0.1:0", bound),
            "http://127.0.0.1:41000"
        );
        assert_eq!(
            effective_server_url("https://ctl.example/", bound),
            "https://ctl.example"
        );
    }

    #[test]
    fn reverse_zones_for_tailscale_ranges() {
        let z = reverse_zones(
            Some("100.64.0.0/10".parse().unwrap()),
            Some("fd7a:115c:a1e0::/48".parse().unwrap()),
        );
        assert_eq!(z.len(), 65);
        assert_eq!(z[0], "64.100.in-addr.arpa.");
        assert_eq!(z[63], "127.100.in-addr.arpa.");
        assert_eq!(z[64], "0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa.");
    }

    #[test]
    fn derp_region_pins_self_signed_cert() {
        let cfg = Config::embedded("/tmp/x");
        let d = cfg.derp.server.clone().unwrap();
        let stun: SocketAddr = "127.0.0.1:3478".parse().unwrap();
        let region = embedded_region(
            "http://127.0.0.1:8080",
            &d,
            Some("sha256-raw:ab".into()),
            Some(stun),
        )
        .unwrap();
        assert_eq!(region.region_id, d.region_id as i32);
        let node = &region.nodes[0];
        assert_eq!(node.cert_name, "sha256-raw:ab");
        assert_eq!(node.host_name, "127.0.0.1");
        assert_eq!(node.derp_port, 8080);
        assert_eq!(node.stun_port, 3478);
        let settings = world_settings(&cfg, DerpMap::default(), "");
        assert!(settings.dns.proxied);
        assert_eq!(settings.dns.domains, vec!["clawql.local".to_string()]);
    }

    /// An empty family makes netcheck wait 3 s for a STUN answer over it,
    /// so each family is an address or "none".
    #[test]
    fn derp_node_never_leaves_an_address_family_to_guesswork() {
        let mut d = Config::embedded("/tmp/x").derp.server.clone().unwrap();
        let node = |url: &str, d: &DerpServer| {
            embedded_region(url, d, None, None).unwrap().nodes[0].clone()
        };
        let n = node("http://10.1.2.3:8080", &d);
        assert_eq!((n.ipv4.as_str(), n.ipv6.as_str()), ("10.1.2.3", "none"));
        assert_eq!(n.cert_name, "");
        assert_eq!(n.stun_port, -1);
        let n = node("https://[fd00::5]", &d);
        assert_eq!((n.ipv4.as_str(), n.ipv6.as_str()), ("none", "fd00::5"));
        assert_eq!(n.derp_port, 443);
        // A DNS name: IPv4 from its A records, IPv6 off unless configured.
        let n = node("https://ctl.example.com", &d);
        assert_eq!((n.ipv4.as_str(), n.ipv6.as_str()), ("", "none"));
        d.ipv4 = Some("198.51.100.1".parse().unwrap());
        d.ipv6 = Some("2001:db8::1".parse().unwrap());
        let n = node("https://ctl.example.com", &d);
        assert_eq!(
            (n.ipv4.as_str(), n.ipv6.as_str()),
            ("198.51.100.1", "2001:db8::1")
        );
        let json = serde_json::to_value(node(
            "http://10.1.2.3:8080",
            &Config::embedded("/tmp/x").derp.server.unwrap(),
        ))
        .unwrap();
        assert_eq!(json["IPv6"], "none");
    }
}
