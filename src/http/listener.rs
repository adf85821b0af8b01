//! One TCP listener for everything public: plain HTTP (control, `/key`,
//! `/ts2021`, health, metrics) and TLS on the same port (the embedded DERP
//! server, which clients always reach over TLS). The first byte decides: a
//! TLS ClientHello starts with 0x16, which no HTTP method does. Requests
//! that came over TLS carry [`derp::http::OverTls`], which `/derp` requires.
//!
//! Nothing here trusts the client: a connection is admitted by the
//! [`Gate`] (per source and in total) before a byte is read, must finish
//! its TLS handshake and first request head within `read_header`, and is
//! closed once idle (see [`crate::limits`]). Its permit travels with the
//! socket into an upgraded Noise tunnel or DERP stream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::derp;
use crate::limits::{self, Activity, Gate, Held, Timeouts, Tracked};

/// TLS record type "handshake".
const TLS_HANDSHAKE: u8 = 0x16;

/// Who may connect and for how long.
#[derive(Debug, Clone)]
pub struct Limits {
    pub gate: Gate,
    pub timeouts: Timeouts,
}

/// Accepts connections until the listener fails; each connection is served
/// on its own task so one bad client cannot affect others.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
) -> std::io::Result<()> {
    let acceptor = tls.map(TlsAcceptor::from);
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Running out of file descriptors and similar are transient:
                // back off instead of spinning or exiting.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Refused connections are closed unread (the gate logs them).
        let Ok(permit) = limits.gate.admit(remote.ip()) else {
            continue;
        };
        let app = app.clone();
        let acceptor = acceptor.clone();
        let timeouts = limits.timeouts;
        tokio::spawn(async move {
            let stream = Held::new(stream, permit);
            if let Err(e) = handle(stream, remote, app, acceptor, timeouts).await {
                tracing::debug!(%remote, error = %e, "connection ended with error");
            }
        });
    }
}

async fn handle(
    stream: Held<TcpStream>,
    remote: SocketAddr,
    app: Router,
    acceptor: Option<TlsAcceptor>,
    t: Timeouts,
) -> std::io::Result<()> {
    let first_request_by = Instant::now() + t.read_header;
    let timed_out = |what| std::io::Error::new(std::io::ErrorKind::TimedOut, what);
    stream.get_ref().set_nodelay(true)?;
    let mut first = [0u8; 1];
    let n = timeout_at(first_request_by, stream.get_ref().peek(&mut first))
        .await
        .map_err(|_| timed_out("no request"))??;
    if n == 0 {
        return Ok(());
    }
    match acceptor {
        Some(acceptor) if first[0] == TLS_HANDSHAKE => {
            let tls = timeout_at(first_request_by, acceptor.accept(stream))
                .await
                .map_err(|_| timed_out("TLS handshake"))??;
            serve_conn(tls, app, remote, true, first_request_by, t).await
        }
        _ => serve_conn(stream, app, remote, false, first_request_by, t).await,
    }
}

async fn serve_conn<IO>(
    io: IO,
    app: Router,
    remote: SocketAddr,
    over_tls: bool,
    first_request_by: Instant,
    t: Timeouts,
) -> std::io::Result<()>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let app = app.map_request(move |mut req: limits::idle::IncomingRequest| {
        req.extensions_mut().insert(ConnectInfo(remote));
        if over_tls {
            req.extensions_mut().insert(derp::http::OverTls);
        }
        req
    });
    let activity = Activity::new();
    let service = Tracked::new(TowerToHyperService::new(app), activity.clone(), t.read_body);
    let builder = limits::idle::auto_builder(&t);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    limits::serve_connection(conn, &activity, first_request_by, t.idle)
        .await
        .map_err(std::io::Error::other)
}
