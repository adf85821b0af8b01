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
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
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
    p[pi..].iter().all(|c| *c == '*')
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

/// Which pattern of `list` matches `want`; `Some(None)` when the list is
/// absent (anything goes), `None` when nothing matches.
fn matching<'v>(list: Option<&'v Value>, want: Option<&str>) -> Option<Option<&'v str>> {
    let (Some(list), Some(want)) = (list, want) else {
        return Some(None);
    };
    let list = list.as_array()?;
    list.iter()
        .filter_map(Value::as_str)
        .find(|p| glob(p, want))
        .map(Some)
}

/// Whether `caps` (the caller's CapMap towards the gateway) admit `tool` on
/// `server`.
pub fn decide(caps: &CapMap, tool: Option<&str>, server: Option<&str>) -> Decision {
    let Some(grants) = caps.get(MCP_CAP).filter(|g| !g.is_empty()) else {
        return Decision::deny(format!("no {MCP_CAP} grant for this caller"));
    };
    for (i, g) in grants.iter().enumerate() {
        if !g.is_object() {
            continue;
        }
        let Some(srv) = matching(g.get("servers"), server) else {
            continue;
        };
        let Some(t) = matching(g.get("tools"), tool) else {
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
