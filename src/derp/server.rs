//! The DERP relay: handshake, per-connection read and write loops, forwarding.
//!
//! Owns the server's DERP key pair, the connection `registry` and the relay counters.
//! Mirrors `derp/derpserver/derpserver.go` (Tailscale 1.96) for what a single,
//! non-meshed server does:
//! - handshake `ServerKey` → `ClientInfo` (NaCl box opened with the *claimed* node key,
//!   which proves the client owns it) → `ServerInfo {"version":2}`, 10 s per step;
//! - `SendPacket(dst)` ⇒ `RecvPacket(src)` on dst's active connection through a bounded
//!   `mailbox` (never blocking the sender), `PeerGone(dst, NotHere)` for disco packets
//!   to unknown keys (≤ 3/s burst, 1/s sustained, per connection), `PeerGone(src,
//!   Disconnected)` to receivers when a sender's last connection goes;
//! - `KeepAlive` every 60 s plus up to 5 s jitter, `Ping` ⇒ `Pong`, `NotePreferred`
//!   ignored, mesh frames (no mesh key is ever granted) close the connection.
//!
//! Depends on [`crate::derp::frame`] and [`crate::derp::key`] only; the control plane
//! plugs in admission through [`ClientVerifier`].

mod mailbox;
mod registry;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::time::Instant;

use super::frame::{self, Frame, Key, PeerGoneReason};
use super::key;
use mailbox::{Batch, Mailbox, Pkt};
use registry::{ConnEntry, Registry};

/// Connection timing. [`Timing::default`] is Tailscale's; tests shorten it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Time allowed for each handshake step (Tailscale: 10 s).
    pub handshake_step: Duration,
    /// Base keep-alive period (Tailscale: 60 s; the client's read deadline is 120 s).
    /// Up to a twelfth of it is added as jitter so connections made together do
    /// not tick together (Tailscale: up to 5 s).
    pub keepalive: Duration,
    /// Per-frame write deadline (Tailscale: 2 s): a client that cannot take a frame
    /// in this long is dropped rather than holding its queue.
    pub write: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            handshake_step: Duration::from_secs(10),
            keepalive: Duration::from_secs(60),
            write: Duration::from_secs(2),
        }
    }
}

/// PeerGone(NotHere) replies: bucket size and refill interval.
const PEER_GONE_BURST: f64 = 3.0;
const PEER_GONE_EVERY: Duration = Duration::from_secs(1);

/// Decides whether a node key may use this relay (e.g. "is it a node of the tailnet").
pub trait ClientVerifier: Send + Sync {
    fn is_allowed(&self, node_key: &[u8; 32]) -> bool;
}

/// Admits every node key (`verify_clients: false`).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl ClientVerifier for AllowAll {
    fn is_allowed(&self, _node_key: &[u8; 32]) -> bool {
        true
    }
}

/// Relay counters since start (for metrics and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Authenticated connections right now (several per key count separately).
    pub clients_connected: u64,
    /// Packets written to their destination.
    pub packets_relayed: u64,
    /// Payload bytes of those packets.
    pub bytes_relayed: u64,
    /// Packets not delivered: unknown destination, full queue, failed write.
    pub packets_dropped: u64,
}

/// Errors ending one client connection. None of them affects other clients.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("frame: {0}")]
    Frame(#[from] frame::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("handshake step timed out")]
    HandshakeTimeout,
    #[error("write timed out")]
    WriteTimeout,
    #[error("expected ClientInfo as first frame, got type {0:#04x}")]
    ExpectedClientInfo(u8),
    #[error("ClientInfo box does not open with the claimed node key")]
    ClientInfoBox,
    #[error("ClientInfo JSON: {0}")]
    ClientInfoJson(#[source] serde_json::Error),
    #[error("node key {0} is not allowed")]
    NotAllowed(String),
    #[error("mesh frame {0:?} from a client without mesh key")]
    MeshNotPermitted(frame::FrameType),
}

/// What we read from ClientInfo; unknown fields are ignored.
#[derive(Debug, Default, serde::Deserialize)]
struct ClientInfo {
    #[serde(default)]
    version: i64,
    #[serde(default, rename = "CanAckPings")]
    can_ack_pings: bool,
    #[serde(default, rename = "IsProber")]
    is_prober: bool,
}

/// The embedded DERP relay. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

struct Inner {
    private_key: [u8; 32],
    public_key: Key,
    verifier: Arc<dyn ClientVerifier>,
    timing: Timing,
    registry: Mutex<Registry>,
    next_conn_id: AtomicU64,
    packets_relayed: AtomicU64,
    bytes_relayed: AtomicU64,
    packets_dropped: AtomicU64,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("public_key", &hex::encode(self.inner.public_key))
            .finish_non_exhaustive()
    }
}

/// Unregisters a connection when its serving future ends or is dropped.
struct Registration {
    server: Server,
    entry: Arc<ConnEntry>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.server.registry().unregister(&self.entry);
        let left = self.entry.mailbox.take().packet_count();
        self.server.count_dropped(left);
    }
}

impl Server {
    pub fn new(private_key: [u8; 32], verifier: Arc<dyn ClientVerifier>) -> Server {
        Server::with_timing(private_key, verifier, Timing::default())
    }

    pub fn with_timing(
        private_key: [u8; 32],
        verifier: Arc<dyn ClientVerifier>,
        timing: Timing,
    ) -> Server {
        Server {
            inner: Arc::new(Inner {
                private_key,
                public_key: key::public_key(&private_key),
                verifier,
                timing,
                registry: Mutex::new(Registry::default()),
                next_conn_id: AtomicU64::new(1),
                packets_relayed: AtomicU64::new(0),
                bytes_relayed: AtomicU64::new(0),
                packets_dropped: AtomicU64::new(0),
            }),
        }
    }

    /// The server's DERP public key (sent in ServerKey and `Derp-Public-Key`).
    pub fn public_key(&self) -> Key {
        self.inner.public_key
    }

    pub fn stats(&self) -> Stats {
        let i = &self.inner;
        Stats {
            clients_connected: self.registry().connection_count() as u64,
            packets_relayed: i.packets_relayed.load(Ordering::Relaxed),
            bytes_relayed: i.bytes_relayed.load(Ordering::Relaxed),
            packets_dropped: i.packets_dropped.load(Ordering::Relaxed),
        }
    }

    /// Whether some connection for `node_key` is registered.
    pub fn is_client_connected(&self, node_key: &Key) -> bool {
        self.registry().is_connected(node_key)
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // Registry updates are single map operations; after a panic elsewhere the
        // maps are still usable, and a relay must not die because of it.
        self.inner
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn count_dropped(&self, n: usize) {
        if n > 0 {
            self.inner
                .packets_dropped
                .fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Serves one client connection (already upgraded from HTTP) until it ends.
    /// Errors concern only this connection and are for logging.
    pub async fn serve_conn<T>(&self, io: T) -> Result<(), Error>
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (rd, wr) = tokio::io::split(io);
        let mut rd = BufReader::new(rd);
        let mut wr = BufWriter::new(wr);

        let mut out = Vec::new();
        Frame::ServerKey {
            key: self.inner.public_key,
        }
        .encode(&mut out);
        self.handshake_step(write_flush(&mut wr, &out)).await??;

        let first = self.handshake_step(frame::read_frame(&mut rd)).await??;
        let Frame::ClientInfo {
            key: client_key,
            sealed,
        } = first
        else {
            return Err(Error::ExpectedClientInfo(first.frame_type()));
        };
        let plain = key::open_from(&self.inner.private_key, &client_key, &sealed)
            .ok_or(Error::ClientInfoBox)?;
        let info: ClientInfo = serde_json::from_slice(&plain).map_err(Error::ClientInfoJson)?;
        if !self.inner.verifier.is_allowed(&client_key) {
            return Err(Error::NotAllowed(hex::encode(client_key)));
        }
        tracing::debug!(
            node_key = %hex::encode(client_key),
            version = info.version,
            can_ack_pings = info.can_ack_pings,
            is_prober = info.is_prober,
            "DERP client connected"
        );

        let entry = Arc::new(ConnEntry {
            id: self.inner.next_conn_id.fetch_add(1, Ordering::Relaxed),
            key: client_key,
            mailbox: Arc::new(Mailbox::default()),
            dup: AtomicBool::new(false),
        });
        self.registry().register(Arc::clone(&entry));
        let _registration = Registration {
            server: self.clone(),
            entry: Arc::clone(&entry),
        };

        let server_info = serde_json::json!({ "version": frame::PROTOCOL_VERSION }).to_string();
        out.clear();
        Frame::ServerInfo {
            sealed: Bytes::from(key::seal_to(
                &self.inner.private_key,
                &client_key,
                server_info.as_bytes(),
            )),
        }
        .encode(&mut out);
        self.handshake_step(write_flush(&mut wr, &out)).await??;

        tokio::select! {
            r = self.read_loop(&mut rd, &entry) => r,
            r = self.write_loop(&mut wr, &entry) => r,
        }
    }

    async fn handshake_step<F: std::future::Future>(&self, f: F) -> Result<F::Output, Error> {
        tokio::time::timeout(self.inner.timing.handshake_step, f)
            .await
            .map_err(|_| Error::HandshakeTimeout)
    }

    async fn read_loop<R: AsyncRead + Unpin>(
        &self,
        rd: &mut R,
        entry: &Arc<ConnEntry>,
    ) -> Result<(), Error> {
        let mut peer_gone_limit = TokenBucket::new(PEER_GONE_BURST, PEER_GONE_EVERY);
        loop {
            let frame = match frame::read_frame(rd).await {
                Ok(f) => f,
                Err(frame::Error::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            };
            if entry.dup.load(Ordering::Relaxed) {
                self.registry().note_activity(entry);
            }
            match frame {
                Frame::SendPacket { dst, packet } => {
                    self.forward(entry, dst, packet, &mut peer_gone_limit);
                }
                Frame::Ping(data) => entry.mailbox.push_pong(data),
                Frame::Mesh { frame_type } if frame_type != frame::FrameType::PeerPresent => {
                    return Err(Error::MeshNotPermitted(frame_type));
                }
                // NotePreferred is only a statistic; Pong, KeepAlive and frames a client
                // has no reason to send are skipped, as Tailscale's server does.
                _ => {}
            }
        }
    }

    fn forward(&self, from: &ConnEntry, dst: Key, packet: Bytes, limit: &mut TokenBucket) {
        let target = self.registry().lookup(&dst);
        match target {
            Some(mailbox) => {
                let dropped = mailbox.push_packet(Pkt {
                    src: from.key,
                    data: packet,
                });
                self.count_dropped(usize::from(dropped));
            }
            None => {
                self.count_dropped(1);
                // Tell the sender its peer is not here, but only for disco (so
                // magicsock re-evaluates paths) and rate-limited, like Tailscale.
                if frame::looks_like_disco(&packet) && limit.allow(Instant::now()) {
                    from.mailbox.push_control(Frame::PeerGone {
                        key: dst,
                        reason: PeerGoneReason::NotHere,
                    });
                }
            }
        }
    }

    async fn write_loop<W: AsyncWrite + Unpin>(
        &self,
        wr: &mut W,
        entry: &Arc<ConnEntry>,
    ) -> Result<(), Error> {
        let Timing {
            keepalive, write, ..
        } = self.inner.timing;
        let jitter = keepalive.mul_f64(rand::thread_rng().gen_range(0.0..1.0 / 12.0));
        // interval_at panics on a zero period; a misconfigured zero means "often".
        let period = (keepalive + jitter).max(Duration::from_millis(1));
        let mut keepalive = tokio::time::interval_at(Instant::now() + period, period);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Sources this connection already watches for PeerGone (saves the registry
        // lock on every packet).
        let mut watched: HashSet<Key> = HashSet::new();
        let mut out = Vec::new();
        loop {
            let batch = entry.mailbox.take();
            if batch.is_empty() {
                tokio::select! {
                    _ = entry.mailbox.notified() => continue,
                    _ = keepalive.tick() => {
                        out.clear();
                        Frame::KeepAlive.encode(&mut out);
                        timed_write(wr, &out, write).await?;
                        timed_flush(wr, write).await?;
                        continue;
                    }
                }
            }
            self.write_batch(wr, entry, batch, &mut watched, &mut out)
                .await?;
        }
    }

    async fn write_batch<W: AsyncWrite + Unpin>(
        &self,
        wr: &mut W,
        entry: &ConnEntry,
        batch: Batch,
        watched: &mut HashSet<Key>,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let timeout = self.inner.timing.write;
        let mut pending = batch.packet_count();
        let result = async {
            for f in &batch.control {
                if let Frame::PeerGone {
                    key,
                    reason: PeerGoneReason::Disconnected,
                } = f
                {
                    // The registry forgot this watch; a returning peer needs a new one.
                    watched.remove(key);
                }
                out.clear();
                f.encode(out);
                timed_write(wr, out, timeout).await?;
            }
            if let Some(data) = batch.pong {
                out.clear();
                Frame::Pong(data).encode(out);
                timed_write(wr, out, timeout).await?;
            }
            let (mut packets, mut bytes) = (0u64, 0u64);
            for pkt in batch.disco.iter().chain(batch.packets.iter()) {
                if watched.insert(pkt.src) {
                    self.registry().add_watcher(pkt.src, entry);
                }
                out.clear();
                Frame::RecvPacket {
                    src: pkt.src,
                    packet: pkt.data.clone(),
                }
                .encode(out);
                timed_write(wr, out, timeout).await?;
                packets += 1;
                bytes += pkt.data.len() as u64;
            }
            timed_flush(wr, timeout).await?;
            pending = 0;
            let i = &self.inner;
            i.packets_relayed.fetch_add(packets, Ordering::Relaxed);
            i.bytes_relayed.fetch_add(bytes, Ordering::Relaxed);
            Ok::<(), Error>(())
        }
        .await;
        // Whatever was not flushed when the write failed is lost.
        self.count_dropped(pending);
        result
    }
}

async fn write_flush<W: AsyncWrite + Unpin>(w: &mut W, b: &[u8]) -> Result<(), Error> {
    w.write_all(b).await?;
    w.flush().await?;
    Ok(())
}

async fn timed_write<W: AsyncWrite + Unpin>(w: &mut W, b: &[u8], t: Duration) -> Result<(), Error> {
    tokio::time::timeout(t, w.write_all(b))
        .await
        .map_err(|_| Error::WriteTimeout)??;
    Ok(())
}

async fn timed_flush<W: AsyncWrite + Unpin>(w: &mut W, t: Duration) -> Result<(), Error> {
    tokio::time::timeout(t, w.flush())
        .await
        .map_err(|_| Error::WriteTimeout)??;
    Ok(())
}

/// A small token bucket (`rate.NewLimiter(rate.Every(1s), 3)` in Tailscale).
struct TokenBucket {
    tokens: f64,
    burst: f64,
    every: Duration,
    last: Instant,
}

impl TokenBucket {
    fn new(burst: f64, every: Duration) -> Self {
        TokenBucket {
            tokens: burst,
            burst,
            every,
            last: Instant::now(),
        }
    }

    fn allow(&mut self, now: Instant) -> bool {
        let refill =
            now.saturating_duration_since(self.last).as_secs_f64() / self.every.as_secs_f64();
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests;
