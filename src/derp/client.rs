//! A minimal DERP client, written independently of [`crate::derp::server`] so tests can
//! check the server against a second implementation of the client side.
//!
//! Owns the client half of the wire protocol as Tailscale 1.96's `derphttp` and
//! `derp.Client` speak it: an HTTP/1.1 `GET /derp` with `Upgrade: DERP` (only the
//! 101 status is checked), then ServerKey → ClientInfo `{"version":2,"CanAckPings":true}`
//! → ServerInfo. Unlike Tailscale's client it waits for ServerInfo before returning,
//! so a handshake that succeeds here has fully succeeded. Sequential use only
//! (`&mut self`); it does not answer server pings by itself.
//! Depends on [`crate::derp::frame`] and [`crate::derp::key`].

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::frame::{self, Frame, Key, MAX_PACKET_SIZE};
use super::key;

/// Longest HTTP response head we accept before the upgrade.
const MAX_RESPONSE_HEAD: usize = 16 << 10;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("frame: {0}")]
    Frame(#[from] frame::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("upgrade refused: {0}")]
    UpgradeRefused(String),
    #[error("HTTP response head too long or malformed")]
    BadResponseHead,
    #[error("expected {want}, got {got:?}")]
    Unexpected { want: &'static str, got: Frame },
    #[error("ServerInfo does not open with the server key")]
    ServerInfoBox,
    #[error("ServerInfo JSON: {0}")]
    ServerInfoJson(#[source] serde_json::Error),
    #[error("packet of {0} bytes exceeds the DERP maximum")]
    PacketTooLarge(usize),
}

/// A connected, handshaken DERP client.
#[derive(Debug)]
pub struct Client<T> {
    io: BufReader<T>,
    private_key: [u8; 32],
    public_key: Key,
    server_key: Key,
    server_info: serde_json::Value,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Client<T> {
    /// HTTP upgrade on `io` (plain or TLS) followed by the DERP handshake.
    /// Returns the client and the response headers of the upgrade.
    pub async fn connect(
        io: T,
        host: &str,
        private_key: [u8; 32],
    ) -> Result<(Self, Vec<(String, String)>), Error> {
        let mut io = BufReader::new(io);
        let request = format!(
            "GET /derp HTTP/1.1\r\nHost: {host}\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n"
        );
        io.get_mut().write_all(request.as_bytes()).await?;
        io.get_mut().flush().await?;
        let headers = read_response_head(&mut io).await?;
        Ok((Self::handshake_buffered(io, private_key).await?, headers))
    }

    /// The DERP handshake on a stream that already speaks DERP.
    pub async fn handshake(io: T, private_key: [u8; 32]) -> Result<Self, Error> {
        Self::handshake_buffered(BufReader::new(io), private_key).await
    }

    async fn handshake_buffered(
        mut io: BufReader<T>,
        private_key: [u8; 32],
    ) -> Result<Self, Error> {
        let server_key = match frame::read_frame(&mut io).await? {
            Frame::ServerKey { key } => key,
            got => {
                return Err(Error::Unexpected {
                    want: "ServerKey",
                    got,
                });
            }
        };
        let info = serde_json::json!({ "version": frame::PROTOCOL_VERSION, "CanAckPings": true });
        let public_key = key::public_key(&private_key);
        let mut out = Vec::new();
        Frame::ClientInfo {
            key: public_key,
            sealed: key::seal_to(&private_key, &server_key, info.to_string().as_bytes()).into(),
        }
        .encode(&mut out);
        io.get_mut().write_all(&out).await?;
        io.get_mut().flush().await?;
        let sealed = match frame::read_frame(&mut io).await? {
            Frame::ServerInfo { sealed } => sealed,
            got => {
                return Err(Error::Unexpected {
                    want: "ServerInfo",
                    got,
                });
            }
        };
        let plain =
            key::open_from(&private_key, &server_key, &sealed).ok_or(Error::ServerInfoBox)?;
        let server_info = serde_json::from_slice(&plain).map_err(Error::ServerInfoJson)?;
        Ok(Client {
            io,
            private_key,
            public_key,
            server_key,
            server_info,
        })
    }

    pub fn public_key(&self) -> Key {
        self.public_key
    }

    pub fn private_key(&self) -> [u8; 32] {
        self.private_key
    }

    pub fn server_key(&self) -> Key {
        self.server_key
    }

    /// The decrypted ServerInfo JSON.
    pub fn server_info(&self) -> &serde_json::Value {
        &self.server_info
    }

    /// Sends `packet` to the node with key `dst`.
    pub async fn send(&mut self, dst: Key, packet: &[u8]) -> Result<(), Error> {
        if packet.len() > MAX_PACKET_SIZE {
            return Err(Error::PacketTooLarge(packet.len()));
        }
        self.send_frame(&Frame::SendPacket {
            dst,
            packet: bytes::Bytes::copy_from_slice(packet),
        })
        .await
    }

    /// Sends any frame (tests use this for pings, NotePreferred, odd frames).
    pub async fn send_frame(&mut self, f: &Frame) -> Result<(), Error> {
        let mut out = Vec::new();
        f.encode(&mut out);
        self.send_raw(&out).await
    }

    /// Writes raw bytes to the stream.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.io.get_mut().write_all(bytes).await?;
        self.io.get_mut().flush().await?;
        Ok(())
    }

    /// The next frame from the server, whatever it is.
    pub async fn recv(&mut self) -> Result<Frame, Error> {
        Ok(frame::read_frame(&mut self.io).await?)
    }

    /// The next received packet as (source key, payload), skipping keep-alives.
    pub async fn recv_packet(&mut self) -> Result<(Key, bytes::Bytes), Error> {
        loop {
            match self.recv().await? {
                Frame::RecvPacket { src, packet } => return Ok((src, packet)),
                Frame::KeepAlive => continue,
                got => {
                    return Err(Error::Unexpected {
                        want: "RecvPacket",
                        got,
                    });
                }
            }
        }
    }
}

/// Reads the HTTP response head up to the blank line; requires status 101.
/// Reads line by line so no DERP bytes after the head are consumed.
async fn read_response_head<R: AsyncRead + Unpin>(
    io: &mut BufReader<R>,
) -> Result<Vec<(String, String)>, Error> {
    let mut total = 0;
    let mut status = None;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        let n = (&mut *io)
            .take((MAX_RESPONSE_HEAD - total) as u64)
            .read_line(&mut line)
            .await?;
        total += n;
        if n == 0 || !line.ends_with('\n') || total >= MAX_RESPONSE_HEAD {
            return Err(Error::BadResponseHead);
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if status.is_none() {
            status = Some(line.to_string());
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    let status = status.ok_or(Error::BadResponseHead)?;
    if status.split_whitespace().nth(1) != Some("101") {
        return Err(Error::UpgradeRefused(status));
    }
    Ok(headers)
}
