//! The public HTTP surface outside the Noise tunnel: `/key`, `/ts2021`,
//! `/healthz`, `/metrics`, DERP, and the listener that serves plain HTTP and
//! TLS (for DERP) on one port; safe unix-socket binding (`unix`).
//!
//! May depend on: everything it mounts; nothing depends on it but `app`.

pub mod error;
pub mod listener;
pub mod metrics;
pub mod unix;
