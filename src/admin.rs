//! The headscale.v1 admin API: a gRPC service on a local unix socket, so the
//! `clawscale` CLI (and a Headscale v0.29 CLI) can manage users, pre-auth
//! keys and nodes.
//!
//! Owns: the generated protobuf types ([`proto`], from `proto/headscale/v1`
//! via `build.rs`), the service ([`AdminService`]), the proto ↔ domain
//! conversions (`convert`), the one `state::Error` → `tonic::Status` mapping
//! (`status`) and the unix-socket plumbing (`socket`).
//!
//! May depend on: `state` (all reads and writes go through [`StateHandle`];
//! reads come from the published World, never the database, except pre-auth
//! keys, which only the database holds), `types`, `config` (socket path and
//! mode), `mapper::build` (the tagged-devices user id), `limits` (connection
//! timeouts on the socket).
//!
//! Mirrors Headscale v0.29.2 `hscontrol/grpcv1.go` in behaviour where the
//! features overlap, but never returns raw internal errors: clients get a
//! status code that says what went wrong, and internals stay in the log.
//! Like Headscale, the unix socket needs no API key: filesystem permissions
//! on the socket are the access control.

mod convert;
mod service;
mod socket;
mod status;

#[cfg(test)]
pub(crate) mod tests;

use std::path::PathBuf;

pub use proto::headscale_service_client::HeadscaleServiceClient;
pub use service::AdminService;
pub use socket::{bind_unix, connect_unix, serve_listener, serve_unix};

use crate::config::Config;
use crate::limits::Timeouts;
use crate::state::StateHandle;

/// Generated headscale.v1 messages, client and server.
pub mod proto {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("headscale.v1");
}

/// What can go wrong setting up or reaching the admin socket. (Request
/// failures are `tonic::Status`, built in `status`.)
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("admin socket {}: {source}", path.display())]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "admin socket {} is in use by a running server (stop it first)",
        .0.display()
    )]
    InUse(PathBuf),
    #[error("{} exists and is not a socket; refusing to replace it", .0.display())]
    NotASocket(PathBuf),
    #[error(
        "cannot connect to the admin socket {}: permission denied (the CLI needs write access to the socket: run it as the server's user or a member of the socket's group; see unix_socket_permission)",
        path.display()
    )]
    PermissionDenied { path: PathBuf },
    #[error(
        "cannot connect to the admin socket {}: {source} (is `clawscale serve` running with this config?)",
        path.display()
    )]
    NotRunning {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot connect to the admin socket {}: {detail}", path.display())]
    Connect { path: PathBuf, detail: String },
}

/// Binds the admin socket from `config` and serves it on a background task.
/// Returns once the socket accepts connections.
/// (`grpc_listen_addr` is not served yet; `config` warns about it.)
pub async fn start(config: &Config, state: StateHandle, timeouts: Timeouts) -> Result<(), Error> {
    let path = config.unix_socket.clone();
    let listener = bind_unix(&path, config.unix_socket_permission)?;
    tracing::info!(path = %path.display(), "admin API listening");
    tokio::spawn(serve_listener(listener, AdminService::new(state), timeouts));
    Ok(())
}
