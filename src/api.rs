//! The admin API's transports, over the operations layer (`admin`):
//! - [`v1`]: REST `/api/v1`, Headscale main's contract, with its OpenAPI
//!   document; on the control port (API keys) and the admin socket;
//! - [`grpc`]: headscale.v1 gRPC for Headscale ≤ 0.29 CLIs; on the admin
//!   socket and, with `grpc_listen_addr`, on TCP (API keys);
//! - [`socket`]: the admin unix socket serving both, with local trust;
//! - [`v2`]: Tailscale's API v2 (the subset Terraform and the Kubernetes
//!   operator use), OAuth clients and API keys, on the control port;
//! - [`authn`]: who is calling (API key or socket peer), for the REST
//!   transports; [`problem`]: the one admin-error → HTTP mapping (v2 keeps
//!   its codes and answers in Tailscale's `{"message"}` shape).
//!
//! A transport parses, authenticates and converts; authorisation, rules and
//! the audit trail are the operations'.
//!
//! May depend on: `admin`, `types`, `config`, `http` (socket binding),
//! `mapper::build` (the tagged-devices user id), `derp::tls` (certificate
//! loading).

pub mod authn;
pub mod grpc;
pub mod problem;
pub mod socket;
pub mod v1;
pub mod v2;

use std::net::SocketAddr;

use crate::admin::Admin;
use crate::config::Config;
use crate::limits::{self, Timeouts};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("admin socket: {0}")]
    Socket(#[from] crate::http::unix::BindError),
    #[error("binding grpc_listen_addr {addr}: {source}")]
    GrpcBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("gRPC TLS (tls_cert_path/tls_key_path): {0}")]
    Tls(String),
}

/// What `start` bound.
#[derive(Debug, Clone, Default)]
pub struct Bound {
    /// Where remote gRPC listens (`grpc_listen_addr`).
    pub grpc: Option<SocketAddr>,
}

/// Serves the admin socket (REST and gRPC) and, if configured, remote gRPC
/// on spawned tasks; returns REST v1's and API v2's routes for the control
/// port and what was bound. Returns once every listener accepts
/// connections.
pub async fn start(
    config: &Config,
    admin: Admin,
    timeouts: Timeouts,
) -> Result<(axum::Router, Bound), Error> {
    let rest = v1::router(admin.clone());
    let admin_v2 = admin.clone();
    let listener = crate::http::unix::bind(&config.unix_socket, config.unix_socket_permission)?;
    tracing::info!(path = %config.unix_socket.display(), "admin API listening on the unix socket");
    tokio::spawn(socket::serve(
        listener,
        rest.clone(),
        grpc::router(admin.clone()),
        timeouts,
    ));
    let mut bound = Bound::default();
    if let Some(addr) = config.grpc_listen_addr {
        let tls = match (&config.tls.cert_path, &config.tls.key_path) {
            (Some(c), Some(k)) => Some(grpc::tls_config(c, k).map_err(Error::Tls)?),
            // Config validation refuses this without grpc_allow_insecure.
            _ => None,
        };
        let l = grpc::bind(addr)
            .await
            .map_err(|source| Error::GrpcBind { addr, source })?;
        bound.grpc = l.local_addr().ok();
        if tls.is_none() {
            tracing::warn!(%addr, "gRPC listening WITHOUT TLS (grpc_allow_insecure): API keys cross the network in clear");
        } else {
            tracing::info!(%addr, "gRPC listening (TLS)");
        }
        tokio::spawn(grpc::serve_tcp(l, admin, tls, timeouts));
    }
    Ok((rest.merge(v2::router(admin_v2)), bound))
}

/// Serves one admin connection (unix socket or remote gRPC) with the
/// public port's bounds: a first request within `read_header`, closed after
/// `idle` with nothing in flight, HTTP/2 PINGs for the peer's liveness.
async fn serve_bounded<IO>(io: IO, app: axum::Router, t: Timeouts) -> std::io::Result<()>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;

    let first_request_by = tokio::time::Instant::now() + t.read_header;
    let activity = limits::Activity::new();
    let service =
        limits::Tracked::new(TowerToHyperService::new(app), activity.clone(), t.read_body);
    let builder = limits::idle::auto_builder(&t);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    limits::serve_connection(conn, &activity, first_request_by, t.idle)
        .await
        .map_err(std::io::Error::other)
}
