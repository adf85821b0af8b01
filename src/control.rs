//! The Tailscale control protocol (TS2021): `/key`, the `/ts2021` upgrade,
//! and the router served over HTTP/2 inside each Noise tunnel
//! (`/machine/register`, `/machine/map`, `/machine/set-dns`,
//! `/machine/ssh/action/…`, stubs for the rest).
//!
//! The Noise handshake authenticates the client's machine key; it travels
//! with every tunnelled request as the [`Peer`] extension and is checked
//! against the node each request names (Headscale #2642 was this hole).
//!
//! May depend on: `noise`, `tailcfg`, `state`, `mapper`, `certs`, `limits`,
//! `auth`, `http::error`.

mod map;
mod owner;
mod register;
mod set_dns;
mod ssh_action;
mod tunnel;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use x25519_dalek::StaticSecret;

use crate::http::metrics::Metrics;
use crate::state::StateHandle;
use crate::types::MachinePublic;

/// Requests inside the tunnel are small JSON documents; cap them before
/// anything is parsed or authenticated (Headscale uses the same 1 MiB).
pub const NOISE_BODY_LIMIT: usize = 1 << 20;

/// The authenticated identity of a Noise tunnel.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub machine_key: MachinePublic,
    /// Protocol (capability) version from the handshake.
    pub version: u16,
}

/// Everything the control handlers need.
#[derive(Clone)]
pub struct ControlState {
    pub state: StateHandle,
    pub noise_key: Arc<StaticSecret>,
    pub noise_public: MachinePublic,
    pub metrics: Arc<Metrics>,
    /// Map keep-alive period (plus jitter); well inside the client's 120 s
    /// watchdog.
    pub keepalive: Duration,
    /// Least time between two delta frames on one map stream
    /// (`tuning.batch_change_delay`); changes in between are merged.
    pub batch_change_delay: Duration,
    /// The embedded relay is advertised with the self-signed certificate
    /// clawscale generated, which clients before 1.82 cannot verify.
    pub self_signed_relay: bool,
    /// How long a tunnel may wait for its first request, stay open with
    /// no request in flight, and leave HTTP/2 PINGs unanswered.
    pub timeouts: crate::limits::Timeouts,
    /// Live ACME challenges that `/machine/set-dns` publishes; `None` when
    /// `dns.certs` is off.
    pub challenges: Option<Arc<crate::certs::Challenges>>,
    /// Tailscale SSH check mode (`/machine/ssh/action/…`); `None` in
    /// tests that serve only the control protocol.
    pub ssh_checks: Option<crate::auth::ssh_check::SshChecks>,
    /// Interactive login for registrations without a key; `None`: such
    /// registrations are refused.
    pub auth: Option<crate::auth::AuthFlows>,
}

impl ControlState {
    pub fn new(state: StateHandle, noise_key: StaticSecret, metrics: Arc<Metrics>) -> Self {
        let noise_public = MachinePublic(x25519_dalek::PublicKey::from(&noise_key).to_bytes());
        ControlState {
            state,
            noise_key: Arc::new(noise_key),
            noise_public,
            metrics,
            keepalive: Duration::from_secs(50),
            batch_change_delay: crate::config::DEFAULT_BATCH_CHANGE_DELAY,
            self_signed_relay: false,
            timeouts: crate::limits::Timeouts::default(),
            challenges: None,
            ssh_checks: None,
            auth: None,
        }
    }
}

/// What the public routes share: the control state, and the router every
/// Noise tunnel serves, built once. Built per tunnel, its route table was
/// several KiB of every connected node's memory.
#[derive(Clone)]
struct Public {
    cs: ControlState,
    tunnel: Router,
}

impl FromRef<Public> for ControlState {
    fn from_ref(p: &Public) -> ControlState {
        p.cs.clone()
    }
}

/// Routes served on the public listener.
pub fn public_router(cs: ControlState) -> Router {
    let tunnel = tunnel_router(cs.clone());
    Router::new()
        .route("/key", get(key))
        .route("/ts2021", any(tunnel::upgrade))
        .with_state(Public { cs, tunnel })
}

/// Routes served inside each Noise tunnel.
pub fn tunnel_router(cs: ControlState) -> Router {
    Router::new()
        .route("/machine/register", post(register::handler))
        .route("/machine/map", post(map::handler))
        .route("/machine/set-dns", post(set_dns::handler))
        .route(
            "/machine/ssh/action/{src}/to/{dst}",
            get(ssh_action::handler),
        )
        .route("/machine/{*rest}", any(not_implemented))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(NOISE_BODY_LIMIT))
        .with_state(cs)
}

#[derive(serde::Deserialize)]
struct KeyQuery {
    v: Option<String>,
}

/// `GET /key?v=N`: the server's Noise public key. Clients below capability
/// 39 cannot speak Noise; they get an empty 200 (as Headscale does).
async fn key(State(cs): State<ControlState>, Query(q): Query<KeyQuery>) -> Response {
    let v: i32 = q.v.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
    if v < 39 {
        return StatusCode::OK.into_response();
    }
    let body = serde_json::json!({
        "publicKey": cs.noise_public.to_string(),
        "legacyPublicKey": crate::types::MachinePublic::default().to_string(),
    });
    axum::Json(body).into_response()
}

async fn not_implemented() -> Response {
    (StatusCode::NOT_IMPLEMENTED, "not implemented by clawscale").into_response()
}

async fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}
