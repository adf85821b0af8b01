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
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::derp;
use crate::limits::{self, Activity, Gate, Held, Timeouts, Tracked};

/// TLS record type "handshake".
const TLS_HANDSHAKE: u8 = 0x16;

/// Accept queue asked of the kernel, which caps it at `net.core.somaxconn`.
/// Tokio's default (1,024) is what `TcpListener::bind` would use.
const BACKLOG: u32 = 1024;

/// A port that is bound but not yet listening: its address is known (the
/// server URL and DERP map need it) while connections to it are refused at
/// once. Listening before the state is loaded let the kernel queue SYNs
/// nobody accepted; when the queue overflowed they were dropped, and the
/// clients sat in TCP's SYN retransmit backoff (1 s, 3 s, 7 s, ...) long
/// after the server was ready. A refusal instead leaves the retry to the
/// client's own backoff.
#[derive(Debug)]
pub struct Bound {
    socket: TcpSocket,
    addr: SocketAddr,
}

impl Bound {
    /// Binds `addr` (with `SO_REUSEADDR`, as `TcpListener::bind` does, so a
    /// restarted server gets its port back while old sockets linger).
    pub fn new(addr: SocketAddr) -> std::io::Result<Bound> {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let addr = socket.local_addr()?;
        Ok(Bound { socket, addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts accepting: from here on connections queue for [`serve`].
    pub fn listen(self) -> std::io::Result<TcpListener> {
        self.socket.listen(BACKLOG)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Until it listens, a bound port refuses connections at once rather
    /// than queueing them (which is what left clients in SYN backoff).
    #[tokio::test]
    async fn a_bound_port_refuses_until_it_listens() {
        let bound = Bound::new("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = bound.local_addr();
        assert_ne!(addr.port(), 0);
        let err = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);

        let listener = bound.listen().unwrap();
        let (dialed, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (dialed, (accepted, _)) = (dialed.unwrap(), accepted.unwrap());
        assert_eq!(dialed.local_addr().unwrap(), accepted.peer_addr().unwrap());
    }
}
