//! Listeners: UDP sockets (our loops, see `udp.rs`) and a TCP listener (hickory's `Server`) on
//! one port, running until the shutdown future resolves.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use hickory_server::Server;
use socket2::{Domain, Protocol as SockProtocol, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::handler::Handler;
use super::limiter::Limiter;
use super::records::RecordIndex;
use super::udp::serve_udp;
use super::{Error, Hooks, ServerConfig};

/// Most sources the rate limiter tracks at once (a few MiB of table at worst).
const MAX_TRACKED_SOURCES: usize = 65_536;
/// Responses queued per TCP connection before the writer applies back-pressure.
const TCP_RESPONSE_BUFFER: usize = 16;
/// Attempts to find a port free for both UDP and TCP when the config asks for port 0.
const EPHEMERAL_PORT_TRIES: usize = 16;
/// Requested UDP receive buffer per socket: ~40 ms of queries at 100k qps. Linux caps it at
/// `net.core.rmem_max`; failing to enlarge it is not fatal.
const UDP_RECV_BUFFER: usize = 4 << 20;
/// Upper bound on UDP sockets (one receive loop each).
const MAX_UDP_SOCKETS: usize = 4;

/// A running server: its bound addresses and the task that ends after shutdown.
#[derive(Debug)]
pub struct ServerHandle {
    udp: SocketAddr,
    tcp: SocketAddr,
    task: JoinHandle<Result<(), Error>>,
}

impl ServerHandle {
    /// The bound UDP address (useful with port 0).
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp
    }

    /// The bound TCP address; same IP and port as UDP.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp
    }

    /// Waits until the server has stopped (after the shutdown future resolved).
    pub async fn join(self) -> Result<(), Error> {
        self.task
            .await
            .map_err(|e| Error::Serve(format!("dns server task: {e}")))?
    }
}

/// Binds `cfg.listen` on UDP and TCP and answers from the latest index in `index` until
/// `shutdown` resolves. A new value sent on the watch channel is used from the next query on.
pub async fn serve(
    cfg: ServerConfig,
    index: watch::Receiver<Arc<RecordIndex>>,
    hooks: Hooks,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<ServerHandle, Error> {
    if cfg.allow.is_empty() {
        return Err(Error::EmptyAllowList);
    }
    let sockets = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_UDP_SOCKETS);
    let (udps, tcp) = bind(cfg.listen, sockets)?;
    let bind_err = |source| Error::Bind {
        addr: cfg.listen,
        source,
    };
    let udp_addr = udps[0].local_addr().map_err(bind_err)?;
    let tcp_addr = tcp.local_addr().map_err(bind_err)?;
    let handler = Handler {
        index,
        allow: cfg.allow.clone().into(),
        limiter: Arc::new(Limiter::new(
            cfg.rate_limit_qps,
            cfg.burst,
            MAX_TRACKED_SOURCES,
        )),
        visibility: hooks.visibility,
        challenges: hooks.challenges,
    };
    let mut udp_loops = JoinSet::new();
    for socket in udps {
        udp_loops.spawn(serve_udp(socket, handler.clone()));
    }
    let mut server = Server::new(handler);
    server.register_listener(tcp, cfg.tcp_timeout, TCP_RESPONSE_BUFFER);
    tracing::info!(udp = %udp_addr, tcp = %tcp_addr, sockets, "dns server listening");
    let task = tokio::spawn(async move {
        let outcome = tokio::select! {
            () = shutdown => Ok(()),
            result = server.block_until_done() => {
                result.map_err(|e| Error::Serve(format!("tcp: {e}")))
            }
            Some(result) = udp_loops.join_next() => match result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(Error::Serve(format!("udp: {e}"))),
                Err(e) => Err(Error::Serve(format!("udp task: {e}"))),
            },
        };
        udp_loops.shutdown().await;
        let stopped = server
            .shutdown_gracefully()
            .await
            .map_err(|e| Error::Serve(format!("tcp: {e}")));
        outcome.and(stopped)
    });
    Ok(ServerHandle {
        udp: udp_addr,
        tcp: tcp_addr,
        task,
    })
}

/// Binds `count` UDP sockets and one TCP listener, all on the same port (the first UDP
/// socket picks it when `listen` has port 0), so TC-bit fallback reaches this server.
fn bind(listen: SocketAddr, count: usize) -> Result<(Vec<UdpSocket>, TcpListener), Error> {
    let tries = if listen.port() == 0 {
        EPHEMERAL_PORT_TRIES
    } else {
        1
    };
    let mut last = io::Error::from(io::ErrorKind::AddrInUse);
    for _ in 0..tries {
        match bind_once(listen, count) {
            Ok(bound) => return Ok(bound),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && tries > 1 => last = e,
            Err(source) => {
                return Err(Error::Bind {
                    addr: listen,
                    source,
                });
            }
        }
    }
    Err(Error::Bind {
        addr: listen,
        source: last,
    })
}

fn bind_once(listen: SocketAddr, count: usize) -> io::Result<(Vec<UdpSocket>, TcpListener)> {
    let first = udp_socket(listen)?;
    let addr = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..count {
        sockets.push(udp_socket(addr)?);
    }
    let tcp = std::net::TcpListener::bind(addr)?;
    tcp.set_nonblocking(true)?;
    Ok((sockets, TcpListener::from_std(tcp)?))
}

/// A non-blocking UDP socket with `SO_REUSEPORT` (only sockets of the same user can join the
/// port, and only if they set it too) and an enlarged receive buffer to absorb bursts.
fn udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM,
        Some(SockProtocol::UDP),
    )?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    if let Err(e) = socket.set_recv_buffer_size(UDP_RECV_BUFFER) {
        tracing::debug!(error = %e, "dns: cannot enlarge the UDP receive buffer");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}
