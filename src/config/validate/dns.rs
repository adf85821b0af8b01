//! `dns` section → [`Dns`], with Headscale's rules: MagicDNS needs a base
//! domain, the base domain must not swallow the server's own host name,
//! overriding local DNS needs global nameservers, and nameservers that are
//! neither an address nor a URL are dropped with a warning.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use super::super::raw::{RawDns, RawExtraRecord};
use super::super::{Dns, DnsCerts, Error, ExtraRecord, Prefixes};
use super::{dns_server, invalid, parse};

/// Longest TXT value accepted: several 255-byte strings, still well inside
/// a TCP answer.
const MAX_TXT: usize = 8192;

pub(super) fn build(
    raw: &RawDns,
    server_host: &str,
    prefixes: &Prefixes,
    warnings: &mut Vec<String>,
) -> Result<Dns, Error> {
    let base_domain = raw.base_domain.trim().to_ascii_lowercase();
    if base_domain.is_empty() {
        if raw.magic_dns {
            return Err(invalid(
                "dns.base_domain",
                "must be set when dns.magic_dns is true",
            ));
        }
    } else {
        check_base_domain(&base_domain, server_host)?;
    }

    let nameservers_global =
        nameservers(&raw.nameservers.global, "dns.nameservers.global", warnings);
    let nameservers_split: BTreeMap<String, Vec<String>> = raw
        .nameservers
        .split
        .iter()
        .map(|(domain, servers)| {
            let key = format!("dns.nameservers.split.{domain}");
            (
                domain.trim().to_string(),
                nameservers(servers, &key, warnings),
            )
        })
        .collect();

    // Without the key Headscale would default to true and then insist on
    // global nameservers; defaulting to "only if there are some" lets a
    // file without nameservers load, and changes nothing for one with them.
    let override_local_dns = raw
        .override_local_dns
        .unwrap_or(!nameservers_global.is_empty());
    if override_local_dns && nameservers_global.is_empty() {
        return Err(invalid(
            "dns.override_local_dns",
            "is true but dns.nameservers.global has no usable nameserver",
        ));
    }

    let extra_records = raw
        .extra_records
        .iter()
        .enumerate()
        .map(|(index, record)| extra_record(&format!("dns.extra_records[{index}]"), record))
        .collect::<Result<Vec<_>, _>>()?;
    let extra_records_path = super::non_empty_path(raw.extra_records_path.as_deref());
    if extra_records_path.is_some() && !extra_records.is_empty() {
        return Err(invalid(
            "dns.extra_records_path",
            "cannot be combined with dns.extra_records; keep one of them",
        ));
    }

    let server = dns_server::build(&raw.server, prefixes)?;
    if server.enabled && base_domain.is_empty() {
        return Err(invalid(
            "dns.server.enabled",
            "needs dns.base_domain: the server is authoritative for it",
        ));
    }
    // The CA validates a certificate by asking our server for the
    // challenge record, so there must be a server and a zone.
    if raw.certs.enabled && !server.enabled {
        return Err(invalid(
            "dns.certs.enabled",
            "needs dns.server.enabled: the CA reads the ACME challenges from that server",
        ));
    }
    Ok(Dns {
        magic_dns: raw.magic_dns,
        base_domain,
        override_local_dns,
        nameservers_global,
        nameservers_split,
        search_domains: raw
            .search_domains
            .iter()
            .map(|d| d.trim().to_string())
            .filter(|d| !d.is_empty())
            .collect(),
        extra_records,
        extra_records_path,
        server,
        certs: DnsCerts {
            enabled: raw.certs.enabled,
            all_nodes: raw.certs.all_nodes.unwrap_or(true),
        },
    })
}

/// The `dns.extra_records_path` file: a JSON list of records.
pub(in super::super) fn extra_records_json(text: &str) -> Result<Vec<ExtraRecord>, Error> {
    let raw: Vec<RawExtraRecord> = serde_json::from_str(text).map_err(|e| Error::Parse {
        origin: "dns.extra_records_path".into(),
        message: e.to_string(),
    })?;
    raw.iter()
        .enumerate()
        .map(|(index, record)| extra_record(&format!("[{index}]"), record))
        .collect()
}

/// Clients resolve everything under the base domain through MagicDNS, so a
/// server (or DERP) named inside it would become unreachable for them.
fn check_base_domain(base_domain: &str, server_host: &str) -> Result<(), Error> {
    if !parse::is_dns_name(base_domain) {
        return Err(invalid(
            "dns.base_domain",
            format!(
                "{base_domain:?} is not a DNS name (letters, digits, hyphens; no trailing dot)"
            ),
        ));
    }
    if server_host == base_domain {
        return Err(invalid(
            "dns.base_domain",
            format!(
                "{base_domain:?} must differ from the server_url host, or clients could no longer reach the server"
            ),
        ));
    }
    if server_host.ends_with(&format!(".{base_domain}")) {
        return Err(invalid(
            "dns.base_domain",
            format!(
                "server_url host {server_host:?} lies inside {base_domain:?}; clients could no longer reach the server"
            ),
        ));
    }
    Ok(())
}

/// Keeps addresses (`1.1.1.1`, `1.1.1.1:53`, `[::1]:53`) and URLs (DoH,
/// `https://dns.nextdns.io/abc`); drops the rest with a warning, as Headscale
/// does.
fn nameservers(list: &[String], key: &str, warnings: &mut Vec<String>) -> Vec<String> {
    list.iter()
        .map(|ns| ns.trim())
        .filter(|ns| {
            let usable = ns.parse::<IpAddr>().is_ok()
                || ns.parse::<SocketAddr>().is_ok()
                || ns
                    .split_once("://")
                    .is_some_and(|(scheme, rest)| !scheme.is_empty() && !rest.is_empty());
            if !usable {
                warnings.push(format!(
                    "{key}: ignoring {ns:?}, which is neither an IP address nor a URL"
                ));
            }
            usable
        })
        .map(str::to_string)
        .collect()
}

fn extra_record(at: &str, raw: &RawExtraRecord) -> Result<ExtraRecord, Error> {
    let key = |field: &str| format!("{at}.{field}");
    let name = raw.name.trim().trim_end_matches('.').to_ascii_lowercase();
    if !is_record_name(&name) {
        return Err(invalid(
            &key("name"),
            format!("{:?} is not a DNS name", raw.name),
        ));
    }
    let kind = raw.kind.trim().to_ascii_uppercase();
    let bad_value = |why: String| invalid(&key("value"), why);
    let value = match kind.as_str() {
        "A" | "AAAA" => {
            let text = raw.value.trim();
            let ip: IpAddr = text
                .parse()
                .map_err(|_| bad_value(format!("{text:?} is not an IP address")))?;
            if (kind == "A") != ip.is_ipv4() {
                return Err(bad_value(format!(
                    "{text} does not match record type {kind}"
                )));
            }
            ip.to_string()
        }
        "CNAME" => {
            let target = raw.value.trim().trim_end_matches('.').to_ascii_lowercase();
            if !is_record_name(&target) {
                return Err(bad_value(format!("{:?} is not a DNS name", raw.value)));
            }
            target
        }
        "TXT" => {
            if raw.value.is_empty() || raw.value.len() > MAX_TXT {
                return Err(bad_value(format!(
                    "TXT values must have 1 to {MAX_TXT} bytes, not {}",
                    raw.value.len()
                )));
            }
            raw.value.clone()
        }
        "SRV" => srv_value(&raw.value).ok_or_else(|| {
            bad_value(format!(
                "{:?} is not \"priority weight port target\" (numbers 0-65535, a DNS name)",
                raw.value
            ))
        })?,
        _ => {
            return Err(invalid(
                &key("type"),
                format!(
                    "{:?} is not one of \"A\", \"AAAA\", \"CNAME\", \"TXT\", \"SRV\"",
                    raw.kind
                ),
            ));
        }
    };
    Ok(ExtraRecord {
        name,
        r#type: kind,
        value,
    })
}

/// `"priority weight port target"`, normalised to single spaces.
fn srv_value(text: &str) -> Option<String> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [p, w, port, target] = parts.as_slice() else {
        return None;
    };
    let nums: Vec<u16> = [p, w, port]
        .iter()
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    let target = target.trim_end_matches('.').to_ascii_lowercase();
    is_record_name(&target).then(|| format!("{} {} {} {target}", nums[0], nums[1], nums[2]))
}

/// A DNS name, also allowing the `_service._proto` labels SRV owners use.
fn is_record_name(name: &str) -> bool {
    let plain: Vec<String> = name
        .split('.')
        .map(|l| l.strip_prefix('_').unwrap_or(l).to_string())
        .collect();
    !name.contains("._.") && parse::is_dns_name(&plain.join("."))
}
