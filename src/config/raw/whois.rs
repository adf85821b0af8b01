//! The `whois` section (clawscale's own; Headscale has none): identity
//! lookups for gateways. Everything is off unless configured.

use std::path::PathBuf;

use serde::Deserialize;

use super::{Scalar, null_default};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawWhois {
    /// LocalAPI-compatible unix socket (mode 0660, no API key).
    pub unix_socket: Option<PathBuf>,
    /// Extra TCP listener (API key required).
    pub listen_addr: Option<String>,
    /// Default destination (node name or tailnet IP) for CapMaps.
    pub gateway: Option<String>,
    /// CIDRs whose `X-Forwarded-For` is believed by `/api/v1/authorize`.
    #[serde(default, deserialize_with = "null_default")]
    pub trusted_proxies: Vec<String>,
    /// JSON-lines audit log of authorize decisions; off when unset.
    pub audit_log: Option<PathBuf>,
    /// How long a connection to a whois listener may go without sending a
    /// request's headers (default 60s).
    pub idle_timeout: Option<Scalar>,
}
