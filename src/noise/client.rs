//! A TS2021 client: HTTP/1.1 upgrade, Noise initiator, early payload.
//!
//! Owns the hand-written upgrade request and the parsing of the `101`
//! reply. Used by our in-process test client and load bench, never by the
//! server itself.
//!
//! Depends on [`super::handshake`], [`super::stream`], [`super::early`] and
//! tokio I/O.
//!
//! Mirrors `control/controlhttp/client.go` (Tailscale v1.96): the request
//! carries `Upgrade`, `Connection: upgrade` and `X-Tailscale-Handshake`; the
//! reply must be `101` with the `upgrade` connection token and exactly
//! `Upgrade: tailscale-control-protocol`. Like `ts2021/conn.go` it strips
//! the early payload before HTTP/2; unlike it, it does so eagerly, which
//! assumes the server speaks first (hyper and Go HTTP/2 servers send their
//! SETTINGS without waiting for the client preface).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use x25519_dalek::StaticSecret;

use super::handshake::{HEADER_LEN, Initiator, MSG_ERROR, MSG_RESPONSE, RESPONSE_LEN};
use super::stream::NoiseStream;
use super::upgrade::UPGRADE_PROTOCOL;
use super::{Error, early};

/// Upper bound on the `101` response head we are willing to buffer.
const MAX_HEAD_LEN: usize = 16 * 1024;

/// Upgrades `io` (a fresh connection to the control server) to TS2021 as
/// machine `machine`, trusting `server_pub` (the `/key` answer). Returns
/// the stream, positioned at the server's first HTTP/2 byte, and the
/// early payload's `chalpub:` challenge if the server sent one.
/// Has no timeout of its own: wrap it in `tokio::time::timeout`.
pub async fn connect<T: AsyncRead + AsyncWrite + Unpin>(
    mut io: T,
    host: &str,
    server_pub: [u8; 32],
    machine: &StaticSecret,
    version: u16,
) -> Result<(NoiseStream<T>, Option<String>), Error> {
    if host.is_empty() || host.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(Error::Host);
    }
    let (initiator, init) = Initiator::new(machine, &server_pub, version)?;
    let request = format!(
        "POST /ts2021 HTTP/1.1\r\n\
         Host: {host}\r\n\
         Upgrade: {UPGRADE_PROTOCOL}\r\n\
         Connection: upgrade\r\n\
         X-Tailscale-Handshake: {}\r\n\
         Content-Length: 0\r\n\
         \r\n",
        STANDARD.encode(init)
    );
    io.write_all(request.as_bytes()).await?;
    io.flush().await?;

    let (head_len, mut buf) = read_head(&mut io).await?;
    check_head(&buf[..head_len])?;
    buf.drain(..head_len);

    fill(&mut io, &mut buf, HEADER_LEN).await?;
    match buf[0] {
        MSG_RESPONSE => {}
        MSG_ERROR => {
            let len = usize::from(u16::from_be_bytes([buf[1], buf[2]]));
            fill(&mut io, &mut buf, HEADER_LEN + len).await?;
            let text = String::from_utf8_lossy(&buf[HEADER_LEN..HEADER_LEN + len]);
            return Err(Error::ServerRefused(text.into_owned()));
        }
        other => {
            return Err(Error::MessageType {
                got: other,
                want: MSG_RESPONSE,
            });
        }
    }
    fill(&mut io, &mut buf, RESPONSE_LEN).await?;
    let established = initiator.finish(&buf[..RESPONSE_LEN])?;
    let mut stream = NoiseStream::with_read_buffer(io, &established.keys, &buf[RESPONSE_LEN..]);
    let early = early::read(&mut stream).await?;
    Ok((stream, early.map(|e| e.node_key_challenge)))
}

/// Reads until the end of the HTTP response head; returns its length
/// (including the blank line) and everything read so far.
async fn read_head<T: AsyncRead + Unpin>(io: &mut T) -> Result<(usize, Vec<u8>), Error> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok((pos + 4, buf));
        }
        if buf.len() > MAX_HEAD_LEN {
            return Err(Error::UpgradeResponse("response head too long"));
        }
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Err(Error::UpgradeResponse("connection closed before response"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads until `buf` holds at least `want` bytes.
async fn fill<T: AsyncRead + Unpin>(
    io: &mut T,
    buf: &mut Vec<u8>,
    want: usize,
) -> Result<(), Error> {
    let mut chunk = [0u8; 1024];
    while buf.len() < want {
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Err(Error::Truncated);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(())
}

/// Checks the status line and the two upgrade headers.
fn check_head(head: &[u8]) -> Result<(), Error> {
    let head =
        std::str::from_utf8(head).map_err(|_| Error::UpgradeResponse("head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let proto = parts.next().unwrap_or_default();
    if !proto.starts_with("HTTP/1.") {
        return Err(Error::UpgradeResponse("not an HTTP/1 response"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or(Error::UpgradeResponse("bad status line"))?;
    if status != 101 {
        return Err(Error::UpgradeStatus(status));
    }
    let mut upgrade = None;
    let mut connection_upgrade = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or(Error::UpgradeResponse("malformed header line"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade = Some(value);
        } else if name.eq_ignore_ascii_case("connection") {
            connection_upgrade |= value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
        }
    }
    if !connection_upgrade {
        return Err(Error::UpgradeResponse("missing Connection: upgrade"));
    }
    match upgrade {
        Some(UPGRADE_PROTOCOL) => Ok(()),
        Some(_) => Err(Error::UpgradeResponse(
            "server switched to another protocol",
        )),
        None => Err(Error::UpgradeResponse("missing Upgrade header")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_proper_101() {
        let head = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: tailscale-control-protocol\r\nconnection: Upgrade\r\ndate: x\r\n\r\n";
        check_head(head).unwrap();
        let head = b"HTTP/1.1 101 Switching Protocols\r\nConnection: keep-alive, upgrade\r\nUpgrade: tailscale-control-protocol\r\n\r\n";
        check_head(head).unwrap();
    }

    #[test]
    fn rejects_bad_heads() {
        let cases: [(&[u8], &str); 6] = [
            (b"HTTP/1.1 400 Bad Request\r\n\r\n", "status 400"),
            (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: tailscale-control-protocol\r\n\r\n", "Connection"),
            (b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n", "missing Upgrade"),
            (b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", "another protocol"),
            (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1"),
            (b"HTTP/1.1 abc\r\n\r\n", "bad status"),
        ];
        for (head, want) in cases {
            let err = check_head(head).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
    }

    #[tokio::test]
    async fn refuses_hosts_that_would_inject_headers() {
        let (a, _b) = tokio::io::duplex(64);
        let err = connect(a, "h\r\nX: y", [9; 32], &StaticSecret::random(), 133).await;
        assert!(matches!(err, Err(Error::Host)));
    }

    #[tokio::test]
    async fn server_error_message_is_reported() {
        let (a, mut b) = tokio::io::duplex(4096);
        let server = tokio::spawn(async move {
            let mut req = vec![0u8; 2048];
            let _ = b.read(&mut req).await.unwrap();
            b.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: tailscale-control-protocol\r\nConnection: upgrade\r\n\r\n").await.unwrap();
            b.write_all(&crate::noise::handshake::error_message("go away"))
                .await
                .unwrap();
            b
        });
        let err = connect(a, "ctl", [9; 32], &StaticSecret::random(), 133).await;
        assert!(matches!(err, Err(Error::ServerRefused(ref m)) if m == "go away"));
        server.await.unwrap();
    }
}
