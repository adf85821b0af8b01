//! Text → value parsers shared by the validation steps, each reporting
//! errors against the key it was given. Accepts the spellings Headscale's Go
//! parsers accept where they differ from Rust's (`:8080`, `localhost:8080`,
//! `0770`).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::super::Error;
use super::super::raw::Scalar;

pub(in crate::config) fn invalid(key: &str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// `ip:port`, `[v6]:port`, Go's `:port` (all IPv4 interfaces here) and
/// `localhost:port`. Other host names are rejected: a listener needs an
/// address, and resolving names at startup would make it depend on DNS.
pub(super) fn socket_addr(key: &str, text: &str) -> Result<SocketAddr, Error> {
    let text = text.trim();
    let bad = || {
        invalid(
            key,
            format!("{text:?} is not an address like 127.0.0.1:8080 or [::]:8080"),
        )
    };
    if let Some(port) = text.strip_prefix(':') {
        return port
            .parse::<u16>()
            .map(|port| SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
            .map_err(|_| bad());
    }
    if let Some(port) = text.strip_prefix("localhost:") {
        return port
            .parse::<u16>()
            .map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .map_err(|_| bad());
    }
    text.parse().map_err(|_| bad())
}

/// Host of an `http://` or `https://` URL, lowercased and without IPv6
/// brackets; `None` if the URL has another scheme, no host or a bad port.
pub(super) fn url_host(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if let Some(port) = port {
        port.parse::<u16>().ok()?;
    }
    if host.is_empty() || host.chars().any(|c| c.is_whitespace()) {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

/// Go-style and humantime durations: `30m`, `1h30m`, `1.5h`, `180d`, `500ms`;
/// a bare `0` means zero. Numbers other than 0 need a unit.
pub(in crate::config) fn duration(key: &str, value: &Scalar) -> Result<Duration, Error> {
    let text = value.text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text).map_err(|err| {
        invalid(
            key,
            format!("{text:?} is not a duration like \"30m\" or \"1h30m\": {err}"),
        )
    })
}

/// Octal permission bits: `"0770"`, `"0o770"`, `"770"`. YAML reads an
/// unquoted `0770` as text but an unquoted `770` as a number; both mean
/// octal 770, like Headscale's `strconv.ParseUint(s, 8, …)`.
pub(super) fn file_mode(key: &str, value: &Scalar) -> Result<u32, Error> {
    let text = value.text.trim();
    let digits = text
        .strip_prefix("0o")
        .or_else(|| text.strip_prefix("0O"))
        .unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if !digits.is_empty() && mode <= 0o777 => Ok(mode),
        _ => Err(invalid(
            key,
            format!("{text:?} is not an octal file mode like \"0770\" (quote it in YAML)"),
        )),
    }
}

/// A DNS name as Tailscale uses it for MagicDNS: dot-separated labels of
/// ASCII letters, digits and inner hyphens, 1–63 characters each, 253 in
/// all, no trailing dot, not all-numeric (that would read as an address).
pub(super) fn is_dns_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    let numeric = name
        .split('.')
        .all(|label| label.chars().all(|c| c.is_ascii_digit()));
    labels_ok && !numeric
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_addr_accepts_go_spellings() {
        assert_eq!(
            socket_addr("k", ":8080").unwrap(),
            "0.0.0.0:8080".parse().unwrap()
        );
        assert_eq!(
            socket_addr("k", "localhost:9").unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
        assert_eq!(
            socket_addr("k", "[::]:443").unwrap(),
            "[::]:443".parse().unwrap()
        );
        let err = socket_addr("grpc_listen_addr", "example.com:80").unwrap_err();
        assert!(err.to_string().contains("grpc_listen_addr"), "{err}");
        assert!(socket_addr("k", ":99999").is_err());
        assert!(socket_addr("k", "1.2.3.4").is_err());
    }

    #[test]
    fn url_host_extracts_host() {
        assert_eq!(
            url_host("https://HS.Example.com:443/x").as_deref(),
            Some("hs.example.com")
        );
        assert_eq!(url_host("http://[::1]:8080").as_deref(), Some("::1"));
        assert_eq!(url_host("http://user:pw@host").as_deref(), Some("host"));
        assert_eq!(url_host("ftp://host"), None);
        assert_eq!(url_host("https://"), None);
        assert_eq!(url_host("https://host:port"), None);
        assert_eq!(url_host("host:8080"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(
            duration("k", &Scalar::text("30m")).unwrap(),
            Duration::from_secs(1800)
        );
        assert_eq!(
            duration("k", &Scalar::text("1h30m")).unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(duration("k", &Scalar::text("0")).unwrap(), Duration::ZERO);
        let err = duration("derp.update_frequency", &Scalar::text("soon")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid derp.update_frequency:"),
            "{err}"
        );
        assert!(duration("k", &Scalar::text("30")).is_err());
    }

    #[test]
    fn file_modes() {
        assert_eq!(file_mode("k", &Scalar::text("0770")).unwrap(), 0o770);
        assert_eq!(file_mode("k", &Scalar::text("0o600")).unwrap(), 0o600);
        assert_eq!(file_mode("k", &Scalar::text("770")).unwrap(), 0o770);
        assert!(file_mode("k", &Scalar::text("0789")).is_err());
        assert!(file_mode("k", &Scalar::text("07777")).is_err());
        assert!(file_mode("k", &Scalar::text("")).is_err());
    }

    #[test]
    fn dns_names() {
        assert!(is_dns_name("clawql.local"));
        assert!(is_dns_name("tail-net.example.com"));
        assert!(is_dns_name("ts"));
        assert!(!is_dns_name("example.com."));
        assert!(!is_dns_name("-bad.com"));
        assert!(!is_dns_name("under_score.com"));
        assert!(!is_dns_name("a..b"));
        assert!(!is_dns_name("10.0.0.1"));
        assert!(!is_dns_name(&"a".repeat(64)));
    }
}
