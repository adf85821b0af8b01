//! `/ts2021`: accept the Noise upgrade, then serve the tunnel router over
//! HTTP/2 (prior knowledge; the client is the HTTP/2 client and multiplexes
//! every control request on this one connection).
//!
//! A tunnel is closed when it stops making progress (see `crate::limits`):
//! its first request must arrive within `read_header` of the handshake (a
//! client dials only when it has a request to send), and a tunnel with no
//! request in flight for `idle` gets a GOAWAY; tailscaled's HTTP/2 transport
//! then dials a new one for its next request. A map long-poll is a request
//! in flight for as long as it streams, so it is never cut for idleness;
//! HTTP/2 PINGs close it when the client stops answering.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::time::Instant;

use tower::ServiceExt;

use super::{Peer, Public};
use crate::limits::{self, Activity, Tracked};
use crate::noise;
use crate::types::MachinePublic;

/// Same budget the client gives the whole handshake (controlhttp).
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub(super) async fn upgrade(State(Public { cs, tunnel }): State<Public>, req: Request) -> Response {
    let (resp, pending) = match noise::accept(req, &cs.noise_key) {
        Ok(ok) => ok,
        Err(e) => {
            tracing::debug!(error = %e, "rejected /ts2021 upgrade");
            let status = if e.is_peer_fault() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            return (status, e.to_string()).into_response();
        }
    };
    tokio::spawn(async move {
        // Writing the handshake response must not wait forever on a client
        // that stopped reading after its upgrade request.
        let accepted = match tokio::time::timeout(HANDSHAKE_TIMEOUT, pending.finish()).await {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "noise upgrade did not complete");
                return;
            }
            Err(_) => {
                tracing::debug!("noise upgrade timed out");
                return;
            }
        };
        cs.metrics.noise_handshakes.inc();
        let peer = Peer {
            machine_key: MachinePublic(accepted.machine_key),
            version: accepted.version,
        };
        tracing::debug!(machine = ?peer.machine_key, version = peer.version, "noise tunnel up");
        let t = cs.timeouts;
        let first_request_by = Instant::now() + t.read_header;
        // The shared router, with this tunnel's authenticated peer added
        // to each request (what an `Extension` layer would do, without
        // rebuilding the routes).
        let router = tunnel.map_request(move |mut req: limits::idle::IncomingRequest| {
            req.extensions_mut().insert(peer);
            req
        });
        let activity = Activity::new();
        let service = Tracked::new(
            TowerToHyperService::new(router),
            activity.clone(),
            t.read_body,
        );
        let builder = limits::idle::http2_builder(&t);
        let conn = builder.serve_connection(TokioIo::new(accepted.stream), service);
        if let Err(e) = limits::serve_connection(conn, &activity, first_request_by, t.idle).await {
            tracing::debug!(error = %e, machine = ?peer.machine_key, "noise tunnel closed");
        }
    });
    resp
}
