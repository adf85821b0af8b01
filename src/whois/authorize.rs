//! Forward-auth decisions (`GET /api/v1/authorize`), pure: who the caller
//! is (connection address, or `X-Forwarded-For` only from a trusted proxy),
//! whether the policy's `clawql.dev/cap/mcp` grants let it use the requested
//! MCP tool/server, and the identity headers a gateway passes upstream.
//!
//! Grant values are objects `{"tools": [glob…], "servers": [glob…]}`; a
//! missing list means "any". `*` matches any run of characters, `?` one.
//! Without `X-MCP-Tool`, any mcp grant (for the server, if named) admits
//! the caller: the gateway then only learns who it is.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use super::answer::{WhoIs, parse_ip};
use crate::policy::CapMap;

/// The capability whose grants decide MCP access.
pub const MCP_CAP: &str = "clawql.dev/cap/mcp";

/// Why no caller address could be determined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("no caller address")]
    Missing,
    #[error("malformed X-Forwarded-For entry {0:?}")]
    BadForwardedFor(String),
}

/// The caller's address. `peer` is the immediate peer (`None` on the unix
/// socket, whose clients are trusted like a proxy: socket permissions are
/// the authentication). `forwarded` lists every `X-Forwarded-For` header
/// value in order. Only a trusted peer's header counts; then the rightmost
/// entry that is not itself a trusted proxy is the caller (entries further
/// left were written by the untrusted client and may be forged).
pub fn client_ip(
    peer: Option<IpAddr>,
    forwarded: &[&str],
    trusted: &[IpNet],
) -> Result<IpAddr, SourceError> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    let peer_trusted = match peer {
        Some(p) => is_trusted(&p.to_canonical()),
        None => true,
    };
    if !peer_trusted {
        return peer.map(|p| p.to_canonical()).ok_or(SourceError::Missing);
    }
    let mut entries = Vec::new();
    for h in forwarded {
        for e in h.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let ip = parse_ip(e)
                .ok_or_else(|| SourceError::BadForwardedFor(e.chars().take(64).collect()))?;
            entries.push(ip.to_canonical());
        }
    }
    if let Some(ip) = entries.iter().rev().find(|ip| !is_trusted(ip)) {
        return Ok(*ip);
    }
    // Every hop is trusted: the leftmost is the origin.
    entries
        .first()
        .copied()
        .or(peer.map(|p| p.to_canonical()))
        .ok_or(SourceError::Missing)
}

/// `*`/`?` glob match over characters.
pub fn glob(pattern: &str, text: &str) -> bool {
    // Tool names are ASCII in practice: match bytes without collecting.
    if pattern.is_ascii() && text.is_ascii() {
        return glob_slice(pattern.as_bytes(), text.as_bytes(), b'*', b'?');
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob_slice(&p, &t, '*', '?')
}

fn glob_slice<T: PartialEq>(p: &[T], t: &[T], any: T, one: T) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == one || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == any {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == any)
}

/// An authorize verdict: the matching grant (`rule`) or the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Which grant value admitted the call, e.g. `clawql.dev/cap/mcp[1]
    /// tools:"search_*"`.
    pub rule: Option<String>,
    pub reason: String,
}

impl Decision {
    pub fn deny(reason: impl Into<String>) -> Decision {
        Decision {
            allowed: false,
            rule: None,
            reason: reason.into(),
        }
    }
}

/// One grant value's pattern list: absent means anything; present but
/// not an array of strings matches nothing (its non-string entries are
/// ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Patterns {
    Any,
    List(Vec<String>),
}

impl Patterns {
    fn of(v: Option<&Value>) -> Patterns {
        match v {
            None => Patterns::Any,
            Some(v) => Patterns::List(
                v.as_array()
                    .map(|l| {
                        l.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
        }
    }

    /// Which pattern matches `want`; `Some(None)` when anything goes (no
    /// list, or nothing asked), `None` when nothing matches.
    fn matching(&self, want: Option<&str>) -> Option<Option<&str>> {
        let (Patterns::List(list), Some(want)) = (self, want) else {
            return Some(None);
        };
        list.iter()
            .map(String::as_str)
            .find(|p| glob(p, want))
            .map(Some)
    }
}

/// A caller's `clawql.dev/cap/mcp` grant values, parsed once so each
/// decision only matches patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpGrants {
    /// (index among the grant values, servers, tools); values that are not
    /// objects grant nothing and are left out.
    grants: Vec<(usize, Patterns, Patterns)>,
    any: bool,
}

impl McpGrants {
    pub fn new(caps: &CapMap) -> McpGrants {
        let values = caps.get(MCP_CAP).map(Vec::as_slice).unwrap_or_default();
        McpGrants {
            any: !values.is_empty(),
            grants: values
                .iter()
                .enumerate()
                .filter(|(_, g)| g.is_object())
                .map(|(i, g)| {
                    (
                        i,
                        Patterns::of(g.get("servers")),
                        Patterns::of(g.get("tools")),
                    )
                })
                .collect(),
        }
    }

    /// Whether these grants admit `tool` on `server`.
    pub fn decide(&self, tool: Option<&str>, server: Option<&str>) -> Decision {
        if !self.any {
            return Decision::deny(format!("no {MCP_CAP} grant for this caller"));
        }
        for (i, servers, tools) in &self.grants {
            let Some(srv) = servers.matching(server) else {
                continue;
            };
            let Some(t) = tools.matching(tool) else {
                continue;
            };
            let mut rule = format!("{MCP_CAP}[{i}]");
            if let Some(t) = t {
                rule.push_str(&format!(" tools:{t:?}"));
            }
            if let Some(s) = srv {
                rule.push_str(&format!(" servers:{s:?}"));
            }
            return Decision {
                allowed: true,
                reason: "allowed".into(),
                rule: Some(rule),
            };
        }
        let what = match (tool, server) {
            (Some(t), Some(s)) => format!("tool {t:?} on server {s:?}"),
            (Some(t), None) => format!("tool {t:?}"),
            (None, Some(s)) => format!("server {s:?}"),
            (None, None) => "this call".into(),
        };
        Decision::deny(format!("no {MCP_CAP} grant allows {what}"))
    }
}

/// Whether `caps` (the caller's CapMap towards the gateway) admit `tool` on
/// `server`.
pub fn decide(caps: &CapMap, tool: Option<&str>, server: Option<&str>) -> Decision {
    McpGrants::new(caps).decide(tool, server)
}

/// Identity headers for an allowed call (name, value), values safe for
/// HTTP: non-ASCII text is RFC 2047-encoded as Tailscale's serve does.
pub fn identity_headers(w: &WhoIs) -> Vec<(&'static str, String)> {
    let caps = serde_json::to_string(&w.cap_map).unwrap_or_else(|_| "{}".into());
    vec![
        (
            "Tailscale-User-Login",
            header_text(&w.user_profile.login_name),
        ),
        (
            "Tailscale-User-Name",
            header_text(&w.user_profile.display_name),
        ),
        ("Tailscale-Node", header_text(w.fqdn())),
        ("Tailscale-Tags", w.node.node.tags.join(",")),
        ("Tailscale-Caps", header_text(&caps)),
    ]
}

/// Printable ASCII as is; anything else as an RFC 2047 Q-encoded word.
pub fn header_text(s: &str) -> String {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return s.to_string();
    }
    let mut out = String::from("=?utf-8?q?");
    for b in s.bytes() {
        match b {
            b' ' => out.push('_'),
            b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'.' | b'-' | b'@' => out.push(b as char),
            _ => out.push_str(&format!("={b:02X}")),
        }
    }
    out.push_str("?=");
    out
}

#[cfg(test)]
mod tests;
