//! What one client may hold: bounds on connections that no authentication
//! guards (the public port, Noise tunnels, the admin socket).
//!
//! Owns three mechanisms, each independent of what is served:
//! - [`gate`]: admission by source address, before a byte is read: at most
//!   `max_per_source` open connections per IPv4 address or IPv6 /64, and at
//!   most `max_total` altogether, so descriptors stay free for the database,
//!   the admin socket and DNS. Refusals are logged at most every 10 s.
//! - [`idle`]: serving one hyper connection (HTTP/1, HTTP/2 or both) so that
//!   it is closed when it stops making progress: the first request head must
//!   arrive within `read_header`, a request body within `read_body` of its
//!   head, and a connection with no request in flight is closed after `idle`
//!   (HTTP/1 also between requests after `read_header`). A request counts as
//!   in flight until its response body has been sent, so a map long-poll
//!   keeps its tunnel open for as long as it streams; HTTP/2 PINGs every
//!   `keepalive_interval` (answered within `keepalive_timeout`) close such
//!   streams when the peer is gone.
//! - [`nofile`]: raising the soft `RLIMIT_NOFILE` to the hard limit at
//!   start, as Go servers (and so Headscale and tailscaled) do.
//!
//! Depends on nothing else in the crate: `app` maps the `connections`
//! config section onto [`Timeouts`] and [`gate::Gate`]; `http::listener`,
//! `control` (Noise tunnels) and `admin` (its socket) use them.

pub mod gate;
pub mod idle;
pub mod nofile;

use std::time::Duration;

pub use gate::{Gate, Held};
pub use idle::{Activity, Tracked, serve_connection};

/// Time bounds for one served connection. See the module doc for what
/// each one covers; [`Timeouts::default`] matches the config defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From connecting (including TLS) to a complete first request head;
    /// for HTTP/1 also from one answer to the next head.
    pub read_header: Duration,
    /// From a request's head to the end of its body.
    pub read_body: Duration,
    /// How long a connection may stay open with no request in flight.
    pub idle: Duration,
    /// HTTP/2 PING interval when nothing was received for this long.
    pub keepalive_interval: Duration,
    /// How long a PING may go unanswered before the connection is closed.
    pub keepalive_timeout: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            read_header: Duration::from_secs(10),
            read_body: Duration::from_secs(30),
            idle: Duration::from_secs(120),
            keepalive_interval: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
        }
    }
}
