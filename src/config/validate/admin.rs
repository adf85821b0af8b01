//! `audit.*`, `cli.*` and the remote gRPC listener's TLS rule.

use std::path::Path;
use std::time::Duration;

use super::super::raw::{RawAudit, RawCli, RawConfig};
use super::super::{Audit, Cli, Error, Tls};
use super::parse::{duration, invalid, url_host};

/// The smallest `audit.max_size`: a few entries must fit before rotating.
const MIN_AUDIT_SIZE: u64 = 64 * 1024;

pub(super) fn audit(raw: &RawAudit, data_dir: &Path) -> Result<Audit, Error> {
    let path = match raw.path.as_deref() {
        None => Some(data_dir.join("audit.jsonl")),
        Some(p) if p.as_os_str().is_empty() => None,
        Some(p) => Some(p.to_path_buf()),
    };
    let max_size = match &raw.max_size {
        None => Audit::DEFAULT_MAX_SIZE,
        Some(v) => byte_size("audit.max_size", &v.text)?,
    };
    if max_size < MIN_AUDIT_SIZE {
        return Err(invalid(
            "audit.max_size",
            format!("must be at least {MIN_AUDIT_SIZE} bytes (64KiB)"),
        ));
    }
    Ok(Audit {
        path,
        max_size,
        max_files: raw.max_files.unwrap_or(Audit::DEFAULT_MAX_FILES),
    })
}

/// `1048576`, `512KiB`, `100MiB`, `1GiB`, `10MB`, `1GB` (case-insensitive).
fn byte_size(key: &str, text: &str) -> Result<u64, Error> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" | "k" => 1 << 10,
        "mb" => 1000 * 1000,
        "mib" | "m" => 1 << 20,
        "gb" => 1000 * 1000 * 1000,
        "gib" | "g" => 1 << 30,
        _ => u64::MAX,
    };
    num.parse::<u64>()
        .ok()
        .filter(|_| factor != u64::MAX)
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| {
            invalid(
                key,
                format!("{t:?} is not a size like \"100MiB\", \"10MB\" or a number of bytes"),
            )
        })
}

pub(super) fn cli(raw: &RawCli) -> Result<Cli, Error> {
    let address = raw
        .address
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| {
            // Headscale's form is `host:port`, meaning HTTPS.
            let url = if a.contains("://") {
                a.to_string()
            } else {
                format!("https://{a}")
            };
            url_host(&url)
                .map(|_| url.trim_end_matches('/').to_string())
                .ok_or_else(|| {
                    invalid(
                        "cli.address",
                        format!("{a:?} is not host:port or an http(s):// URL"),
                    )
                })
        })
        .transpose()?;
    let timeout = match &raw.timeout {
        None => Cli::DEFAULT_TIMEOUT,
        Some(v) => duration("cli.timeout", v)?,
    };
    if timeout == Duration::ZERO {
        return Err(invalid("cli.timeout", "must be more than 0"));
    }
    Ok(Cli {
        address,
        api_key: raw
            .api_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_string),
        timeout,
    })
}

/// Remote gRPC carries API keys: it needs TLS unless the operator opts out.
pub(super) fn grpc_tls(raw: &RawConfig, listening: bool, tls: &Tls) -> Result<(), Error> {
    if listening && tls.cert_path.is_none() && !raw.grpc_allow_insecure {
        return Err(invalid(
            "grpc_listen_addr",
            "remote gRPC needs TLS: set tls_cert_path and tls_key_path, or \
             grpc_allow_insecure: true for a trusted network",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_addresses_default_to_https() {
        let raw = |a: &str| RawCli {
            address: Some(a.into()),
            ..RawCli::default()
        };
        let c = cli(&raw("hs.example.net:50443")).unwrap();
        assert_eq!(c.address.as_deref(), Some("https://hs.example.net:50443"));
        let c = cli(&raw("http://10.0.0.1:8080/")).unwrap();
        assert_eq!(c.address.as_deref(), Some("http://10.0.0.1:8080"));
        assert!(cli(&raw("ftp://x")).is_err());
        assert_eq!(
            cli(&RawCli::default()).unwrap().timeout,
            Cli::DEFAULT_TIMEOUT
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(byte_size("k", "1048576").unwrap(), 1 << 20);
        assert_eq!(byte_size("k", "100MiB").unwrap(), 100 << 20);
        assert_eq!(byte_size("k", "10MB").unwrap(), 10_000_000);
        assert_eq!(byte_size("k", "1 GiB").unwrap(), 1 << 30);
        assert_eq!(byte_size("k", "64kib").unwrap(), 64 << 10);
        for bad in ["", "MiB", "10XB", "-5", "1.5MiB", "99999999999999999999GiB"] {
            assert!(byte_size("audit.max_size", bad).is_err(), "{bad:?}");
        }
    }
}
