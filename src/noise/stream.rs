//! [`NoiseStream`]: tokio `AsyncRead + AsyncWrite` over TS2021 records.
//!
//! Owns the read buffer (ciphertext not yet decrypted, plaintext not yet
//! handed out) and the write buffer (sealed records not yet on the socket).
//! Purely poll-based: it never blocks and never spawns.
//!
//! Depends on [`super::codec`] for the record layer and on tokio's I/O traits.
//!
//! Mirrors `controlbase.Conn` (Tailscale v1.96): writes are split at 4077
//! plaintext bytes per record, a bad incoming record ends the read side for
//! good, and a failed write ends the write side for good (after a partial
//! write the peer's counter can no longer match ours).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Error;
use super::codec::{self, MAX_PLAINTEXT_LEN, Opener, Sealer};
use super::handshake::TransportKeys;

/// How much to ask the socket for per read: a couple of full frames.
const READ_CHUNK: usize = 2 * codec::MAX_FRAME_LEN;
/// Plaintext accepted per `poll_write` call; bounds how much one call seals.
const MAX_ACCEPT: usize = 16 * MAX_PLAINTEXT_LEN;
/// Sealed bytes we let pile up before `poll_write` waits for the socket.
const WRITE_HIGH_WATER: usize = 64 * 1024;
/// A drained write buffer larger than this is freed, not kept: a full map
/// grows it to the map's size, and thousands of idle streams each holding
/// one measured 12 KiB per node (heaptrack, 500 nodes).
const WRITE_RETAIN: usize = 4 * 1024;

/// An established TS2021 connection over `T`.
///
/// Written bytes are sealed at once (so the nonce counter always matches
/// what was accepted) and reach `T` on `flush`, or earlier once
/// [`WRITE_HIGH_WATER`] bytes wait. HTTP/2 (hyper, via
/// `hyper_util::rt::TokioIo`) runs on top; it writes a frame's header and
/// payload as separate slices and flushes after each batch of frames, so
/// vectored writes share a record and a flush shares one socket write
/// (Go's HTTP/2 server coalesces the same way through its `bufio.Writer`).
pub struct NoiseStream<T> {
    io: T,
    opener: Opener,
    sealer: Sealer,
    /// Raw bytes read from `io`, starting at a record boundary.
    rbuf: BytesMut,
    /// Decrypted bytes not yet returned to the reader.
    plain: BytesMut,
    read_eof: bool,
    /// Sealed records (and, before the first flush, raw handshake bytes)
    /// waiting for `io`.
    wbuf: BytesMut,
    /// Set by the first write failure; every later write fails with it.
    write_failed: Option<io::ErrorKind>,
}

impl<T> NoiseStream<T> {
    /// Wraps `io`, which must be positioned right after the handshake.
    pub fn new(io: T, keys: &TransportKeys) -> Self {
        Self::with_read_buffer(io, keys, &[])
    }

    /// Like [`new`](Self::new), for when the caller already read some bytes
    /// past the handshake (e.g. while parsing an HTTP response).
    pub fn with_read_buffer(io: T, keys: &TransportKeys, already_read: &[u8]) -> Self {
        NoiseStream {
            io,
            opener: Opener::new(&keys.recv),
            sealer: Sealer::new(&keys.send),
            rbuf: BytesMut::from(already_read),
            plain: BytesMut::new(),
            read_eof: false,
            wbuf: BytesMut::new(),
            write_failed: None,
        }
    }

    pub fn get_ref(&self) -> &T {
        &self.io
    }

    pub fn get_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// Puts plaintext back in front of what the next read returns (used
    /// after peeking for the early payload).
    pub(crate) fn unread(&mut self, bytes: &[u8]) {
        let mut front = BytesMut::with_capacity(bytes.len() + self.plain.len());
        front.extend_from_slice(bytes);
        front.extend_from_slice(&self.plain);
        self.plain = front;
    }

    /// Queues bytes to go out unencrypted ahead of any record (the
    /// handshake response); sent by the next flush.
    pub(crate) fn queue_raw(&mut self, raw: &[u8]) {
        self.wbuf.extend_from_slice(raw);
    }

    /// Seals `plaintext` into the write buffer without touching `io`.
    pub(crate) fn queue(&mut self, plaintext: &[u8]) -> Result<(), Error> {
        self.sealer.seal_chunked(plaintext, &mut self.wbuf)
    }

    fn check_writable(&self) -> io::Result<()> {
        match self.write_failed {
            Some(kind) => Err(io::Error::new(
                kind,
                "noise stream: an earlier write failed",
            )),
            None => Ok(()),
        }
    }

    fn fail_write(&mut self, e: io::Error) -> io::Error {
        self.write_failed = Some(e.kind());
        e
    }
}

impl<T: AsyncRead + Unpin> NoiseStream<T> {
    /// Reads whatever `io` has (up to [`READ_CHUNK`]) onto the end of `rbuf`.
    /// Read through the stack, so `rbuf` holds only bytes received: an idle
    /// stream waiting here keeps no read buffer allocated.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut chunk = [0u8; READ_CHUNK];
        let mut rb = ReadBuf::new(&mut chunk);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut rb))?;
        let got = rb.filled();
        if got.is_empty() {
            self.read_eof = true;
        }
        self.rbuf.extend_from_slice(got);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> NoiseStream<T> {
    /// Writes buffered bytes to `io` until at most `keep` remain.
    fn poll_drain(&mut self, cx: &mut Context<'_>, keep: usize) -> Poll<io::Result<()>> {
        while self.wbuf.len() > keep {
            match ready!(Pin::new(&mut self.io).poll_write(cx, &self.wbuf)) {
                Ok(0) => {
                    let e = io::Error::new(io::ErrorKind::WriteZero, "noise stream: socket closed");
                    return Poll::Ready(Err(self.fail_write(e)));
                }
                Ok(n) => self.wbuf.advance(n),
                Err(e) => return Poll::Ready(Err(self.fail_write(e))),
            }
        }
        // `capacity()` counts only the room past the bytes written out, so
        // it can be small while a map-sized allocation stays behind it:
        // reclaiming more than the retained size succeeds only if the
        // allocation is larger than that.
        if self.wbuf.is_empty() && self.wbuf.try_reclaim(WRITE_RETAIN + 1) {
            self.wbuf = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for NoiseStream<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if !this.plain.is_empty() {
                let n = buf.remaining().min(this.plain.len());
                buf.put_slice(&this.plain[..n]);
                this.plain.advance(n);
                return Poll::Ready(Ok(()));
            }
            // Empty records are legal, so keep decoding until there is
            // plaintext, a partial record, or an error.
            if let Some(pt) = this.opener.open(&mut this.rbuf)? {
                this.plain = pt;
                continue;
            }
            if this.read_eof {
                codec::check_eof(&this.rbuf)?;
                return Poll::Ready(Ok(()));
            }
            // Consumed buffers may still own the last record's allocation.
            if this.rbuf.is_empty() {
                this.rbuf = BytesMut::new();
            }
            this.plain = BytesMut::new();
            ready!(this.poll_fill(cx))?;
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for NoiseStream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_writable()?;
        // Backpressure: a slow peer must not make us buffer without bound.
        if this.wbuf.len() >= WRITE_HIGH_WATER {
            ready!(this.poll_drain(cx, WRITE_HIGH_WATER - 1))?;
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = buf.len().min(MAX_ACCEPT);
        if let Err(e) = this.queue(&buf[..n]) {
            return Poll::Ready(Err(this.fail_write(e.into())));
        }
        // Once sealed the bytes are ours to deliver: they go out on flush.
        Poll::Ready(Ok(n))
    }

    /// Seals the slices together: an HTTP/2 frame header and its payload
    /// become one record instead of a 9-byte record and another.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut filled = bufs.iter().filter(|b| !b.is_empty());
        match (filled.next(), filled.next()) {
            (None, _) => return self.poll_write(cx, &[]),
            (Some(only), None) => return self.poll_write(cx, only),
            _ => {}
        }
        let total = bufs.iter().map(|b| b.len()).sum::<usize>().min(MAX_ACCEPT);
        let mut joined = Vec::with_capacity(total);
        for b in bufs {
            let take = b.len().min(total - joined.len());
            joined.extend_from_slice(&b[..take]);
            if joined.len() == total {
                break;
            }
        }
        self.poll_write(cx, &joined)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_writable()?;
        ready!(this.poll_drain(cx, 0))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.write_failed.is_none() {
            ready!(this.poll_drain(cx, 0))?;
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
