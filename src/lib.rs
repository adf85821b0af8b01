//! clawscale: a self-hosted, Headscale-compatible Tailscale control server.
//!
//! Architecture (see `../shared/design/STYLE.md`):
//! - `types`: domain model (keys, users, nodes, pre-auth keys).
//! - `tailcfg`: Tailscale wire types (JSON only, no logic).
//! - `noise`: the TS2021 Noise transport; `control`: the control protocol
//!   served over it.
//! - `state`: the one owner of tailnet state: an immutable `World` published
//!   by a single writer after each database commit (`db`), with typed changes.
//! - `policy`: Tailscale policy files parsed, validated and compiled per node
//!   (packet filters, peers, CapMaps, SSH policies).
//! - `mapper`: World → MapResponses, and the live map sessions.
//! - `derp`: embedded DERP relay and STUN; `dns`: the authoritative DNS
//!   server for the tailnet zone.
//! - `admin`: the admin operations (every API's rules, authorisation and
//!   audit trail); `api`: their transports (REST `/api/v1`, headscale.v1
//!   gRPC, the admin socket); `cli`: the command line.
//! - `auth`: people proving who they are: interactive login for machines
//!   without a pre-auth key (the auth URL, its page, the wait for a
//!   decision) and Tailscale SSH check mode.
//! - `whois`: identity lookups and forward-auth for gateways.
//! - `limits`: what one unauthenticated client may hold (connections per
//!   source, timeouts, the open-file limit).
//! - `certs`: HTTPS certificates for tailnet names (which names a node may
//!   prove, and its live ACME DNS-01 challenges).
//! - `http`: the public listener, errors, metrics; `app`: wiring.

pub mod policy;
pub mod tailcfg;
pub mod types;

// Everything that serves: without the `server` feature (on by default) the
// library is the three modules above, which is all the fuzz target needs.
#[cfg(feature = "server")]
pub mod admin;
#[cfg(feature = "server")]
pub mod api;
#[cfg(feature = "server")]
pub mod app;
#[cfg(feature = "server")]
pub mod auth;
#[cfg(feature = "server")]
pub mod certs;
#[cfg(feature = "server")]
pub mod cli;
#[cfg(feature = "server")]
pub mod clock;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod control;
#[cfg(feature = "server")]
pub mod db;
#[cfg(feature = "server")]
pub mod derp;
#[cfg(feature = "server")]
pub mod dns;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod import;
#[cfg(feature = "server")]
pub mod limits;
#[cfg(feature = "server")]
pub mod mapper;
#[cfg(feature = "server")]
pub mod noise;
#[cfg(feature = "server")]
pub mod state;
#[cfg(feature = "server")]
pub mod whois;
