//! Embedded DERP relay, STUN responder and self-signed TLS for the embedded region.
//!
//! Owns everything a Tailscale client (1.96, DERP protocol version 2) needs from the
//! embedded DERP node advertised in the DERP map:
//! - [`frame`]: the wire codec (`type:u8 | len:u32 BE | payload`), no state, no policy;
//! - [`key`]: the DERP server key file (`privkey:<hex>`) and NaCl-box sealing;
//! - [`server`]: the relay (handshake, per-key registry, forwarding, keep-alives);
//! - [`http`]: the axum routes (`/derp` upgrade, probes, `/generate_204`);
//! - [`stun`]: the UDP STUN binding responder used by netcheck;
//! - [`tls`]: a self-signed certificate whose SHA-256 is pinned via `CertName: "sha256-raw:<hex>"`;
//! - [`client`]: a minimal client used to test the server against a second implementation.
//!
//! Dependencies: tokio, axum/hyper, rustls (ring provider), rcgen, crypto_box. Nothing
//! else in the crate: the control plane plugs in through [`server::ClientVerifier`].
//! Mirrors `derp/derp.go`, `derp/derpserver`, `net/stun` and `net/tlsdial` of Tailscale 1.96.

pub mod client;
pub mod frame;
pub mod http;
pub mod key;
pub mod server;
pub mod stun;
pub mod tls;

pub use server::{AllowAll, ClientVerifier, Server, Stats, Timing};

#[cfg(test)]
mod tests;
