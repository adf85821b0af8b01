//! One TCP listener for everything public: plain HTTP (control, `/key`,
//! `/ts2021`, health, metrics) and TLS on the same port (the embedded DERP
//! server, which clients always reach over TLS). The first byte decides: a
//! TLS ClientHello starts with 0x16, which no HTTP method does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// TLS record type "handshake".
const TLS_HANDSHAKE: u8 = 0x16;
/// A client that sends nothing is dropped after this long.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections until the listener fails; each connection is served
/// on its own task so one bad client cannot affect others.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
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
        let app = app.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, remote, app, acceptor).await {
                tracing::debug!(%remote, error = %e, "connection ended with error");
            }
        });
    }
}

async fn handle(
    stream: TcpStream,
    remote: SocketAddr,
    app: Router,
    acceptor: Option<TlsAcceptor>,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut first = [0u8; 1];
    let n = tokio::time::timeout(FIRST_BYTE_TIMEOUT, stream.peek(&mut first))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no request"))??;
    if n == 0 {
        return Ok(());
    }
    let app = app.layer(axum::Extension(ConnectInfo(remote)));
    match acceptor {
        Some(acceptor) if first[0] == TLS_HANDSHAKE => {
            let tls = tokio::time::timeout(FIRST_BYTE_TIMEOUT, acceptor.accept(stream))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake")
                })??;
            serve_conn(tls, app).await
        }
        _ => serve_conn(stream, app).await,
    }
}

async fn serve_conn<IO>(io: IO, app: Router) -> std::io::Result<()>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app);
    auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .await
        .map_err(std::io::Error::other)
}
