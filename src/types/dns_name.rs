//! MagicDNS labels: sanitising a client-supplied hostname the way Tailscale's
//! `util/dnsname.SanitizeHostname` does, and making it unique in the tailnet.
//!
//! Semantics mirrored (tailscale v1.96): strip one trailing `.local`,
//! `.localdomain` or `.lan`; cut to 63 bytes; drop leading/trailing bytes that
//! are not ASCII letters/digits; turn inner separators (space `.` `@` `_`) into
//! `-`; keep `[a-z0-9-]` lower-cased; drop everything else.

use std::fmt;

const MAX_LABEL: usize = 63;

/// A valid, lower-case DNS label (1–63 bytes of `[a-z0-9-]`, alphanumeric at
/// both ends).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DnsLabel(String);

impl DnsLabel {
    /// Sanitises a client hostname into a label; falls back to `node` when
    /// nothing usable remains (e.g. a hostname of only punctuation).
    pub fn from_hostname(hostname: &str) -> Self {
        let trimmed = [".local", ".localdomain", ".lan"]
            .iter()
            .fold(hostname, |h, suffix| h.strip_suffix(suffix).unwrap_or(h));
        let label = sanitize_label(trimmed);
        if label.is_empty() {
            DnsLabel("node".to_string())
        } else {
            DnsLabel(label)
        }
    }

    /// Validates an operator-chosen name (rename): it must already be a
    /// valid label; we do not silently rewrite what an admin typed.
    pub fn parse(name: &str) -> Result<Self, String> {
        let ok = !name.is_empty()
            && name.len() <= MAX_LABEL
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && name.as_bytes()[0].is_ascii_alphanumeric()
            && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
        if ok {
            Ok(DnsLabel(name.to_string()))
        } else {
            Err(format!(
                "{name:?} is not a valid DNS label: use 1-63 characters a-z, 0-9 and '-', \
                 starting and ending with a letter or digit"
            ))
        }
    }

    /// The label with a numeric suffix (`name-1`, `name-2`, …), shortening the
    /// base so the result still fits in 63 bytes.
    pub fn with_suffix(&self, n: u32) -> Self {
        let suffix = format!("-{n}");
        let mut base = self.0.as_str();
        if base.len() + suffix.len() > MAX_LABEL {
            base = base[..MAX_LABEL - suffix.len()].trim_end_matches('-');
        }
        DnsLabel(format!("{base}{suffix}"))
    }

    /// Picks the first of `self`, `self-1`, `self-2`, … for which `taken`
    /// answers false.
    pub fn unique(&self, taken: impl Fn(&str) -> bool) -> Self {
        if !taken(&self.0) {
            return self.clone();
        }
        (1..)
            .map(|n| self.with_suffix(n))
            .find(|candidate| !taken(&candidate.0))
            .expect("an unbounded suffix search always finds a free name")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<label>.<base_domain>.` — the form `tailcfg.Node.Name` carries.
    pub fn fqdn(&self, base_domain: &str) -> String {
        format!("{}.{}.", self.0, base_domain.trim_end_matches('.'))
    }
}

impl fmt::Display for DnsLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn sanitize_label(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut end = bytes.len().min(MAX_LABEL);
    let mut start = 0;
    while start < end && !bytes[start].is_ascii_alphanumeric() {
        start += 1;
    }
    while end > start && !bytes[end - 1].is_ascii_alphanumeric() {
        end -= 1;
    }
    let mut out = String::with_capacity(end - start);
    for (i, &b) in bytes.iter().enumerate().take(end).skip(start) {
        let at_edge = i == start || i == end - 1;
        if !at_edge && matches!(b, b' ' | b'.' | b'@' | b'_') {
            out.push('-');
        } else if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(b.to_ascii_lowercase() as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(h: &str) -> String {
        DnsLabel::from_hostname(h).0
    }

    #[test]
    fn sanitizes_like_tailscale() {
        assert_eq!(s("My Laptop"), "my-laptop");
        assert_eq!(s("alice@box_1"), "alice-box-1");
        assert_eq!(s("host.local"), "host");
        assert_eq!(s("host.example.com"), "host-example-com");
        assert_eq!(s("--weird--"), "weird");
        assert_eq!(s("ünïcode-host"), "ncode-host");
        assert_eq!(s("???"), "node");
        assert_eq!(s(""), "node");
        assert_eq!(s(&"a".repeat(80)).len(), 63);
    }

    #[test]
    fn unique_appends_numeric_suffixes() {
        let taken = ["web", "web-1"];
        let l = DnsLabel::from_hostname("web");
        assert_eq!(l.unique(|n| taken.contains(&n)).as_str(), "web-2");
        assert_eq!(l.unique(|_| false).as_str(), "web");
        let long = DnsLabel::from_hostname(&"x".repeat(63));
        let base = "x".repeat(63);
        let u = long.unique(|n| n == base);
        assert_eq!(u.as_str(), format!("{}-1", "x".repeat(61)));
        assert_eq!(u.as_str().len(), 63);
    }

    #[test]
    fn fqdn_has_trailing_dot() {
        assert_eq!(
            DnsLabel::from_hostname("alpha").fqdn("clawql.local"),
            "alpha.clawql.local."
        );
    }

    #[test]
    fn parse_rejects_invalid_names() {
        assert!(DnsLabel::parse("ok-name1").is_ok());
        assert!(DnsLabel::parse("Bad").is_err());
        assert!(DnsLabel::parse("-x").is_err());
        assert!(DnsLabel::parse("").is_err());
        assert!(DnsLabel::parse(&"a".repeat(64)).is_err());
    }
}
