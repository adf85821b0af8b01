//! The admin unix socket: REST `/api/v1` and headscale.v1 gRPC on one
//! socket, told apart by content type (`application/grpc…` goes to gRPC),
//! with local trust: whoever may open the socket (its mode,
//! `unix_socket_permission`, default 0770 as Headscale's) is an
//! administrator, and the audit log names them by uid (`SO_PEERCRED`).

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use tokio::net::{UnixListener, UnixStream};
use tower::ServiceExt;

use super::authn::LocalPeer;
use crate::limits::Timeouts;

fn is_grpc<B>(req: &axum::http::Request<B>) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// Serves `rest` and `grpc` on `listener` until the process ends; each
/// connection is bounded by `t` like the public port's (`crate::limits`),
/// so a local client that connects and hangs cannot hold it for ever.
pub async fn serve(listener: UnixListener, rest: Router, grpc: Router, t: Timeouts) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Transient (EMFILE under load): back off, keep accepting.
                tracing::warn!(error = %e, "admin socket: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        tokio::spawn(serve_connection(stream, rest.clone(), grpc.clone(), t));
    }
}

async fn serve_connection(stream: UnixStream, rest: Router, grpc: Router, t: Timeouts) {
    let peer = LocalPeer {
        uid: stream.peer_cred().ok().map(|c| c.uid()),
    };
    let svc = tower::service_fn(move |mut req: Request| {
        let (rest, grpc) = (rest.clone(), grpc.clone());
        async move {
            req.extensions_mut().insert(peer);
            let target = if is_grpc(&req) { grpc } else { rest };
            Ok::<_, Infallible>(target.oneshot(req).await.unwrap_or_else(|e| match e {}))
        }
    });
    let app = Router::new().fallback_service(svc);
    if let Err(e) = super::serve_bounded(stream, app, t).await {
        tracing::debug!(error = %e, "admin socket connection ended with error");
    }
}
