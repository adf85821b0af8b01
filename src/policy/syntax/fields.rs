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

/// IP protocol names and numbers as Tailscale accepts them.
pub fn parse_proto(s: &str) -> Result<Vec<i32>, String> {
    let p = match s.to_ascii_lowercase().as_str() {
        "" => return Ok(vec![]),
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "ipv6-icmp" | "icmpv6" => 58,
        "igmp" => 2,
        "ipv4" | "ip-in-ip" => 4,
        "egp" => 8,
        "igp" => 9,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "sctp" => 132,
        other => match other.parse::<u8>() {
            Ok(n) if n > 0 => n as i32,
            _ => return Err(format!("proto {s:?} is not valid")),
        },
    };
    Ok(vec![p])
}

/// Splits an ACL destination `alias:ports` at the last colon.
pub fn split_dst(s: &str) -> Result<(&str, &str), String> {
    match s.rfind(':') {
        Some(i) => Ok((&s[..i], &s[i + 1..])),
        None => Err(format!("dst {s:?}: missing port")),
    }
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
        assert_eq!(split_dst("tag:server:22").unwrap(), ("tag:server", "22"));
        assert_eq!(split_dst("autogroup:self").unwrap(), ("autogroup", "self"));
    }
}
