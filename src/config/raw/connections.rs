//! The `connections` section (clawscale's own; Headscale hard-codes a 30 s
//! read timeout and nothing else): what one client may hold on
//! `listen_addr`, in Noise tunnels and on the admin socket.

use serde::Deserialize;

use super::Scalar;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawConnections {
    /// Open connections per IPv4 address or IPv6 /64 (default 1024).
    pub max_per_ip: Option<u32>,
    /// Open connections in all; absent or 0: the open-file limit minus a
    /// reserve.
    pub max_total: Option<u32>,
    pub read_header_timeout: Option<Scalar>,
    pub read_body_timeout: Option<Scalar>,
    pub idle_timeout: Option<Scalar>,
    pub keepalive_interval: Option<Scalar>,
    pub keepalive_timeout: Option<Scalar>,
}
