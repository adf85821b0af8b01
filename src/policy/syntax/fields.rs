//! Reading typed values out of parsed HuJSON with their positions: the
//! `Ctx` that turns a JSON pointer into a line:column error, list and
//! object accessors, and the small grammars shared by several sections
//! (port lists, IP protocol names, `alias:ports` destinations).

use serde_json::Value;

use super::hujson::{Positions, escape_pointer};
use crate::policy::model::{ALL_PORTS, PolicyError, Ports};

/// Builds errors pointing at the value under a JSON pointer.
pub struct Ctx<'a> {
    pub pos: &'a Positions,
}

impl Ctx<'_> {
    pub fn err(&self, path: &str, msg: impl Into<String>) -> PolicyError {
        // Fall back to the nearest ancestor that has a position.
        let mut p = path.to_string();
        loop {
            if let Some(&(l, c)) = self.pos.get(&p) {
                return PolicyError::at(l, c, msg);
            }
            match p.rfind('/') {
                Some(i) => p.truncate(i),
                None => return PolicyError::new(msg),
            }
        }
    }
}

pub fn key_path(base: &str, key: &str) -> String {
    format!("{base}/{}", escape_pointer(key))
}

pub fn strings(ctx: &Ctx, v: Option<&Value>, path: &str) -> Result<Vec<String>, PolicyError> {
    match v {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ctx.err(&format!("{path}/{i}"), "expected a string"))
            })
            .collect(),
        Some(_) => Err(ctx.err(path, "expected a list of strings")),
    }
}

pub fn obj<'v>(
    ctx: &Ctx,
    v: &'v Value,
    path: &str,
) -> Result<&'v serde_json::Map<String, Value>, PolicyError> {
    v.as_object()
        .ok_or_else(|| ctx.err(path, "expected an object"))
}

/// Parses a port list: `*`, `22`, `80,443`, `1000-2000`.
pub fn parse_ports(s: &str) -> Result<Vec<Ports>, String> {
    if s == "*" {
        return Ok(vec![ALL_PORTS]);
    }
    let mut out = Vec::new();
    for part in s.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let first: u16 = a
            .parse()
            .map_err(|_| format!("port range {part:?}: invalid first integer"))?;
        let last: u16 = b
            .parse()
            .map_err(|_| format!("port range {part:?}: invalid last integer"))?;
        if first == 0 {
            return Err(format!(
                "port range {part:?}: first port must be >0, or use '*' for wildcard"
            ));
        }
        if last < first {
            return Err(format!("port range {part:?}: last port must be >= first"));
        }
        out.push(Ports { first, last });
    }
    Ok(out)
}

/// Rejects any key of `o` (at JSON pointer `path`) not in `known`: an
/// unknown field is an error, never ignored. `unsupported` lists
/// Tailscale fields clawscale cannot honour, each with the reason, so
/// they are refused rather than silently dropped.
pub fn known_fields(
    ctx: &Ctx,
    o: &serde_json::Map<String, Value>,
    path: &str,
    known: &[&str],
    unsupported: &[(&str, &str)],
) -> Result<(), PolicyError> {
    for k in o.keys() {
        if known.contains(&k.as_str()) {
            continue;
        }
        let at = key_path(path, k);
        if let Some((_, why)) = unsupported.iter().find(|(u, _)| u == k) {
            return Err(ctx.err(&at, format!("{k:?} is not supported: {why}")));
        }
        return Err(ctx.err(&at, format!("unknown field {k:?}")));
    }
    Ok(())
}

/// Why device posture fields are refused: ignoring a posture condition
/// would grant more than the rule says.
pub const NO_POSTURE: &str = "clawscale has no device posture data, and ignoring the \
                              condition would grant more than the rule says";

/// A boolean field, if present.
pub fn boolean(ctx: &Ctx, v: Option<&Value>, path: &str) -> Result<bool, PolicyError> {
    match v {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ctx.err(path, "expected true or false")),
    }
}

/// IP protocols by name, as Tailscale names them (`proto` in `acls`,
/// `tcp:443` in `ip`); numbers 1-255 are accepted too.
const PROTOCOLS: &[(&str, i32)] = &[
    ("icmp", 1),
    ("igmp", 2),
    ("ipv4", 4),
    ("ip-in-ip", 4),
    ("tcp", 6),
    ("egp", 8),
    ("igp", 9),
    ("udp", 17),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("ipv6-icmp", 58),
    ("sctp", 132),
    ("fc", 133),
];

/// IP protocol names and numbers as Tailscale accepts them (names are
/// case-insensitive; numbers without leading zeros). Empty: the default
/// set (TCP, UDP, ICMP, ICMPv6).
pub fn parse_proto(s: &str) -> Result<Vec<i32>, String> {
    let lower = s.to_ascii_lowercase();
    if lower.is_empty() {
        return Ok(vec![]);
    }
    if let Some((_, n)) = PROTOCOLS.iter().find(|(name, _)| *name == lower) {
        return Ok(vec![*n]);
    }
    if lower == "*" {
        return Err(
            "proto name \"*\" not known; use protocol number 0-255 or protocol name \
                    (icmp, tcp, udp, etc.)"
                .into(),
        );
    }
    if lower.starts_with('0') {
        return Err(format!("leading 0 not permitted in protocol number: {s:?}"));
    }
    match lower.parse::<u32>() {
        Ok(n) if n <= 255 => Ok(vec![n as i32]),
        Ok(n) => Err(format!("protocol number out of range (0-255): {n}")),
        Err(_) => Err(format!(
            "invalid protocol number: {s:?} must be a known protocol name or valid protocol \
             number 0-255"
        )),
    }
}

/// Protocols whose packets carry ports; any other protocol may only be
/// written with `*` ports (Tailscale's clients match them on addresses).
pub fn has_ports(protos: &[i32]) -> bool {
    protos.is_empty() || protos.iter().all(|p| matches!(p, 6 | 17 | 132))
}

/// Splits a destination `alias:ports` at the last colon; an IPv6 address
/// may be bracketed (`[fd7a::1]:22`, `[fd7a::1]/128:22`).
pub fn split_dst(s: &str) -> Result<(String, &str), String> {
    let (host, rest) = match s.strip_prefix('[') {
        Some(inner) => {
            let close = inner.find(']').ok_or_else(|| {
                format!("dst {s:?}: square brackets are only valid around IPv6 addresses")
            })?;
            let addr = &inner[..close];
            if addr.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!(
                    "dst {s:?}: square brackets are only valid around IPv6 addresses"
                ));
            }
            let after = &inner[close + 1..];
            if !after.starts_with(':') && !after.starts_with('/') {
                return Err(format!("dst {s:?}: missing port"));
            }
            (Some(addr), after)
        }
        None => (None, s),
    };
    let i = rest
        .rfind(':')
        .ok_or_else(|| format!("dst {s:?}: missing port"))?;
    let (alias, ports) = (&rest[..i], &rest[i + 1..]);
    if ports.is_empty() {
        return Err(format!(
            "dst {s:?}: input cannot end with a colon character"
        ));
    }
    let alias = match host {
        Some(h) => format!("{h}{alias}"),
        None => alias.to_string(),
    };
    if alias.is_empty() {
        return Err(format!(
            "dst {s:?}: input cannot start with a colon character"
        ));
    }
    Ok((alias, ports))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(parse_ports("*").unwrap(), vec![ALL_PORTS]);
        assert_eq!(
            parse_ports("22,80-90").unwrap(),
            vec![
                Ports {
                    first: 22,
                    last: 22
                },
                Ports {
                    first: 80,
                    last: 90
                }
            ]
        );
        assert!(
            parse_ports("ssh")
                .unwrap_err()
                .contains("invalid first integer")
        );
        assert!(
            parse_ports("0")
                .unwrap_err()
                .contains("first port must be >0")
        );
        assert!(parse_ports("99999").is_err());
        assert!(parse_ports("-1").is_err());
    }

    #[test]
    fn protos_and_dst_split() {
        assert_eq!(parse_proto("udp").unwrap(), vec![17]);
        assert_eq!(parse_proto("6").unwrap(), vec![6]);
        assert!(parse_proto("bogus").is_err());
        assert_eq!(parse_proto("SCTP").unwrap(), vec![132]);
        assert_eq!(parse_proto("fc").unwrap(), vec![133]);
        assert_eq!(parse_proto("255").unwrap(), vec![255]);
        for bad in ["bogus", "icmpv6", "06", "0", "256", "*", "-1"] {
            assert!(parse_proto(bad).is_err(), "{bad}");
        }
        assert!(parse_proto("*").unwrap_err().contains("not known"));
        assert!(parse_proto("017").unwrap_err().contains("leading 0"));
        let split = |s| split_dst(s).map(|(a, p)| (a, p.to_string()));
        assert_eq!(
            split("tag:server:22").unwrap(),
            ("tag:server".into(), "22".into())
        );
        assert_eq!(
            split("autogroup:self").unwrap(),
            ("autogroup".into(), "self".into())
        );
        assert_eq!(
            split("fd7a::1:22").unwrap(),
            ("fd7a::1".into(), "22".into())
        );
        assert_eq!(
            split("[fd7a::1]:22").unwrap(),
            ("fd7a::1".into(), "22".into())
        );
        assert_eq!(
            split("[fd7a::1]/128:80,443").unwrap(),
            ("fd7a::1/128".into(), "80,443".into())
        );
        assert!(split("[100.64.0.1]:22").is_err());
        assert!(split("[fd7a::1]").is_err());
        assert!(split("tag:server:").is_err());
        assert!(split("host").is_err());
    }
}
