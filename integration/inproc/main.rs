//! Fast in-process tier: the whole server (`clawscale::app::start`) on
//! 127.0.0.1 port 0 with a temp data directory, driven by simulated nodes
//! built on tailscale-rs `ts_control` (see `client.rs`). No namespaces and
//! no real `tailscaled`; the whole target runs in seconds.
//!
//! Modules: `server` (fixture), `client` (simulated node), `enroll`
//! (netmap, joins, disconnects, re-registration, restart), `keys`
//! (pre-auth key rules and the single-use race), `postgres` (the enrollment
//! scenarios on PostgreSQL), `policy` (a database-stored policy reaching
//! open streams), `badinput` (hostile input, then a health check), `whois`
//! (whois/authorize over HTTP and the unix socket), `derp_map` (remote DERP
//! maps fetched, refreshed and streamed; a deleted node told so), `hsapi`
//! (the admin REST API driven by hsapi-client from PyPI), `tsapi` (API v2
//! driven by Tailscale's API client from PyPI, `tailscale`; `pyvenv` makes
//! their virtualenvs), `certs` (`/machine/set-dns` authorisation and the
//! DNS answer it publishes).

mod badinput;
mod certs;
mod client;
mod derp_map;
mod enroll;
mod hsapi;
mod keys;
mod policy;
mod postgres;
mod pyvenv;
mod server;
mod tsapi;
mod whois;

use std::time::Duration;

/// `dns.base_domain` of the embedded config.
pub const BASE_DOMAIN: &str = "clawql.local";

/// Bound on waiting for a netmap condition.
pub const WAIT: Duration = Duration::from_secs(15);
