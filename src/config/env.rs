//! `CLAWSCALE_*` environment overrides for a few top-level settings, applied
//! to the raw tree so they go through the same validation as the file.
//!
//! The variable name is the YAML key in upper case with `.` → `_` (Headscale
//! does the same with its `HEADSCALE_` prefix). Only the keys in [`VARS`]
//! are read; `CLAWSCALE_DATA_DIR` and `CLAWSCALE_DATABASE_URL` are the
//! environment forms of the `--data-dir`/`--database-url` flags and reach us
//! as `Overrides`, which beat these.

use std::path::PathBuf;

use super::raw::RawConfig;
use super::validate::invalid;
use super::{EnvLookup, Error};

type Setter = fn(&mut RawConfig, &str, String) -> Result<(), Error>;

/// Every variable this module reads: name, the YAML key it stands for, and
/// how it is stored.
pub(super) const VARS: &[(&str, &str, Setter)] = &[
    ("CLAWSCALE_SERVER_URL", "server_url", |raw, _, v| {
        raw.server_url = Some(v);
        Ok(())
    }),
    ("CLAWSCALE_LOGIN_URL", "login_url", |raw, _, v| {
        raw.login_url = Some(v);
        Ok(())
    }),
    ("CLAWSCALE_LISTEN_ADDR", "listen_addr", |raw, _, v| {
        raw.listen_addr = v;
        Ok(())
    }),
    (
        "CLAWSCALE_METRICS_LISTEN_ADDR",
        "metrics_listen_addr",
        |raw, _, v| {
            raw.metrics_listen_addr = Some(v);
            Ok(())
        },
    ),
    (
        "CLAWSCALE_GRPC_LISTEN_ADDR",
        "grpc_listen_addr",
        |raw, _, v| {
            raw.grpc_listen_addr = Some(v);
            Ok(())
        },
    ),
    (
        "CLAWSCALE_GRPC_ALLOW_INSECURE",
        "grpc_allow_insecure",
        |raw, var, v| {
            raw.grpc_allow_insecure = parse_bool(var, &v)?;
            Ok(())
        },
    ),
    ("CLAWSCALE_UNIX_SOCKET", "unix_socket", |raw, _, v| {
        raw.unix_socket = Some(PathBuf::from(v));
        Ok(())
    }),
    (
        "CLAWSCALE_NOISE_PRIVATE_KEY_PATH",
        "noise.private_key_path",
        |raw, _, v| {
            raw.noise.private_key_path = Some(PathBuf::from(v));
            Ok(())
        },
    ),
    (
        "CLAWSCALE_DNS_BASE_DOMAIN",
        "dns.base_domain",
        |raw, _, v| {
            raw.dns.base_domain = v;
            Ok(())
        },
    ),
    ("CLAWSCALE_LOG_LEVEL", "log.level", |raw, _, v| {
        raw.log.level = v;
        Ok(())
    }),
    ("CLAWSCALE_LOG_FORMAT", "log.format", |raw, _, v| {
        raw.log.format = v;
        Ok(())
    }),
    ("CLAWSCALE_POLICY_MODE", "policy.mode", |raw, _, v| {
        raw.policy.mode = v;
        Ok(())
    }),
    ("CLAWSCALE_POLICY_PATH", "policy.path", |raw, _, v| {
        raw.policy.path = Some(PathBuf::from(v));
        Ok(())
    }),
    ("CLAWSCALE_POLICY_STRICT", "policy.strict", |raw, var, v| {
        raw.policy.strict = parse_bool(var, &v)?;
        Ok(())
    }),
];

pub(super) fn apply(raw: &mut RawConfig, env: EnvLookup) -> Result<(), Error> {
    for (var, _key, set) in VARS {
        if let Some(value) = env(var) {
            set(raw, var, value)?;
        }
    }
    Ok(())
}

fn parse_bool(var: &str, value: &str) -> Result<bool, Error> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(invalid(var, format!("{other:?} is not true or false"))),
    }
}
