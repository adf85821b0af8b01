//! The headscale.v1 gRPC transport, for Headscale ≤ 0.29 CLIs and scripts:
//! on the admin unix socket (local trust, next to REST, `api::socket`) and,
//! with `grpc_listen_addr`, on TCP with API keys (`authorization: Bearer
//! <key>` metadata, as Headscale), over TLS (`tls_cert_path`/
//! `tls_key_path`) or, only with `grpc_allow_insecure: true`, in clear.
//!
//! Owns: the generated protobuf types ([`proto`], from `proto/headscale/v1`
//! via `build.rs`), the service (`service`, thin: parse, call `admin`,
//! convert), the proto ↔ domain conversions (`convert`) and the one
//! `admin::Error` → `tonic::Status` mapping (`status`).

mod convert;
mod service;
mod status;

#[cfg(test)]
pub(crate) mod tests;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, UnixStream};
use tonic::transport::{Channel, Endpoint, Uri};

pub use proto::headscale_service_client::HeadscaleServiceClient;
pub use service::AdminService;

use super::authn::{Authn, LocalPeer};
use crate::admin::keycache::{AuthError, bearer_token};
use crate::admin::{Admin, Caller, Transport};
use crate::limits::Timeouts;

/// Generated headscale.v1 messages, client and server.
pub mod proto {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("headscale.v1");
}

/// The request's caller: put there by the TCP listener's authentication,
/// or local trust on the unix socket. Anything else is unauthenticated.
pub(crate) fn caller<T>(r: &tonic::Request<T>) -> Result<Caller, tonic::Status> {
    if let Some(c) = r.extensions().get::<Caller>() {
        return Ok(c.clone());
    }
    match r.extensions().get::<LocalPeer>() {
        Some(peer) => Ok(Caller::local(peer.uid, Transport::Grpc)),
        None => Err(tonic::Status::unauthenticated("API key required")),
    }
}

/// The gRPC service as an axum router (the unix socket dispatches to it by
/// content type).
pub fn router(admin: Admin) -> axum::Router {
    tonic::service::Routes::new(AdminService::new(admin).into_server())
        .prepare()
        .into_axum_router()
}

/// `authorization: Bearer <key>` metadata → caller, else `UNAUTHENTICATED`.
async fn authenticate(State(authn): State<Authn>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(AUTHORIZATION)
        .ok_or(AuthError::Missing)
        .and_then(|v| v.to_str().map_err(|_| AuthError::Invalid))
        .and_then(|v| bearer_token(v).map(str::to_string));
    let key = match token {
        Ok(t) => authn.admin.keys().authenticate(&t).await,
        Err(e) => Err(e),
    };
    match key {
        Ok(k) => {
            let c = Caller::api_key(&k.prefix, k.scope, Transport::Grpc);
            req.extensions_mut().insert(c);
            next.run(req).await
        }
        Err(AuthError::Unavailable) => {
            tonic::Status::unavailable(AuthError::Unavailable.to_string()).into_http()
        }
        Err(e) => tonic::Status::unauthenticated(e.to_string()).into_http(),
    }
}

/// Serves gRPC with API keys on `listener` until the process ends, over
/// TLS when `tls` is given.
pub async fn serve_tcp(
    listener: TcpListener,
    admin: Admin,
    tls: Option<Arc<rustls::ServerConfig>>,
    t: Timeouts,
) {
    let authn = Authn {
        admin: admin.clone(),
        transport: Transport::Grpc,
    };
    let app = router(admin).layer(middleware::from_fn_with_state(authn, authenticate));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "gRPC listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let app = app.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let r = match acceptor {
                Some(a) => match tokio::time::timeout(t.read_header, a.accept(stream)).await {
                    Ok(Ok(tls)) => super::serve_bounded(tls, app, t).await,
                    _ => return,
                },
                None => super::serve_bounded(stream, app, t).await,
            };
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "gRPC connection ended with error");
            }
        });
    }
}

/// Binds `addr` for gRPC.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// The TLS settings for gRPC: the configured certificate, speaking HTTP/2.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    for p in [cert, key] {
        if !p.exists() {
            return Err(format!("{} does not exist", p.display()));
        }
    }
    let tls = crate::derp::tls::load_or_generate(cert, key, &[]).map_err(|e| e.to_string())?;
    let mut config = (*tls.server_config).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A gRPC client over the admin socket at `path` (tests, and Headscale
/// CLIs do the same).
pub async fn connect_unix(
    path: &Path,
) -> Result<HeadscaleServiceClient<Channel>, tonic::transport::Error> {
    // The URI is only a placeholder for HTTP/2's :authority; the connector
    // below ignores it and dials the socket.
    let endpoint = Endpoint::from_static("http://clawscale.sock")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60));
    let socket = path.to_path_buf();
    let channel = endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { UnixStream::connect(socket).await.map(TokioIo::new) }
        }))
        .await?;
    Ok(HeadscaleServiceClient::new(channel))
}
