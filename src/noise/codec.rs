//! TS2021 transport records, sans-IO.
//!
//! Owns the record framing (`0x04 | u16 BE length | ciphertext`), the
//! per-direction nonce counters and the 4096-byte frame limit. Works on byte
//! buffers only; [`super::stream`] does the I/O.
//!
//! Depends on chacha20poly1305 and bytes.
//!
//! Mirrors `control/controlbase/conn.go` (Tailscale v1.96), which deviates
//! from the Noise spec: the 12-byte nonce is `0x00000000 || BE64(counter)`
//! (the spec says little-endian; the two agree only at counter 0), AD is
//! empty, frames are at most 4096 bytes on the wire, and a failed decryption
//! kills the receive side for good.

use bytes::{Buf, BufMut, BytesMut};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};

use super::Error;

pub const MSG_RECORD: u8 = 4;
pub const HEADER_LEN: usize = 3;
pub const TAG_LEN: usize = 16;
/// Largest frame on the wire, header included (`maxMessageSize`).
pub const MAX_FRAME_LEN: usize = 4096;
pub const MAX_CIPHERTEXT_LEN: usize = MAX_FRAME_LEN - HEADER_LEN;
/// Largest plaintext one record can carry; bigger writes are chunked.
pub const MAX_PLAINTEXT_LEN: usize = MAX_CIPHERTEXT_LEN - TAG_LEN;

/// The transport nonce for `counter`: four zero bytes, then the counter
/// big-endian.
pub fn nonce(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    n
}

/// Validates a record header and returns the whole frame's length.
pub fn frame_len(header: [u8; HEADER_LEN]) -> Result<usize, Error> {
    if header[0] != MSG_RECORD {
        return Err(Error::FrameType(header[0]));
    }
    let ct_len = usize::from(u16::from_be_bytes([header[1], header[2]]));
    if ct_len > MAX_CIPHERTEXT_LEN {
        return Err(Error::FrameTooLarge(HEADER_LEN + ct_len));
    }
    if ct_len < TAG_LEN {
        return Err(Error::FrameTooShort(ct_len));
    }
    Ok(HEADER_LEN + ct_len)
}

/// What is left in a receive buffer at end of stream must be nothing: a
/// partial frame means the peer went away mid-record.
pub fn check_eof(remaining: &[u8]) -> Result<(), Error> {
    if remaining.is_empty() {
        Ok(())
    } else {
        Err(Error::Truncated)
    }
}

/// The sending half: encrypts plaintext into records.
pub struct Sealer {
    cipher: ChaCha20Poly1305,
    counter: u64,
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Self {
        Sealer {
            cipher: ChaCha20Poly1305::new(key.into()),
            counter: 0,
        }
    }

    /// Number of records sealed so far (the next nonce counter).
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// Appends one record carrying `plaintext` (at most 4077 bytes; empty is
    /// allowed) to `out`.
    pub fn seal(&mut self, plaintext: &[u8], out: &mut BytesMut) -> Result<(), Error> {
        if plaintext.len() > MAX_PLAINTEXT_LEN {
            return Err(Error::PlaintextTooLarge(plaintext.len()));
        }
        // u64::MAX is never used as a nonce; the connection must end first.
        if self.counter == u64::MAX {
            return Err(Error::NonceExhausted);
        }
        let start = out.len();
        out.reserve(HEADER_LEN + plaintext.len() + TAG_LEN);
        out.put_u8(MSG_RECORD);
        out.put_u16((plaintext.len() + TAG_LEN) as u16);
        out.extend_from_slice(plaintext);
        let body = &mut out[start + HEADER_LEN..];
        let tag = self
            .cipher
            .encrypt_in_place_detached(&Nonce::from(nonce(self.counter)), &[], body)
            .map_err(|_| Error::PlaintextTooLarge(plaintext.len()))?;
        out.extend_from_slice(&tag);
        self.counter += 1;
        Ok(())
    }

    /// Appends as many records as `data` needs, 4077 plaintext bytes each.
    /// Empty `data` produces nothing.
    pub fn seal_chunked(&mut self, data: &[u8], out: &mut BytesMut) -> Result<(), Error> {
        for chunk in data.chunks(MAX_PLAINTEXT_LEN) {
            self.seal(chunk, out)?;
        }
        Ok(())
    }
}

/// The receiving half: decrypts records taken off the front of a buffer.
pub struct Opener {
    /// `None` once any bad frame was seen: the peer and we are out of step,
    /// so nothing after it may be trusted (`conn.go` nils its cipher too).
    cipher: Option<ChaCha20Poly1305>,
    counter: u64,
}

impl Opener {
    pub fn new(key: &[u8; 32]) -> Self {
        Opener {
            cipher: Some(ChaCha20Poly1305::new(key.into())),
            counter: 0,
        }
    }

    pub fn is_poisoned(&self) -> bool {
        self.cipher.is_none()
    }

    /// Takes one whole record off the front of `buf` and returns its
    /// plaintext (possibly empty), or `Ok(None)` when `buf` does not yet
    /// hold a whole record. A bad header is reported as soon as the three
    /// header bytes are there. Every error poisons the opener.
    pub fn open(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, Error> {
        let result = self.open_inner(buf);
        if result.is_err() {
            self.cipher = None;
        }
        result
    }

    fn open_inner(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, Error> {
        let Some(cipher) = &self.cipher else {
            return Err(Error::Poisoned);
        };
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let total = frame_len([buf[0], buf[1], buf[2]])?;
        if buf.len() < total {
            return Ok(None);
        }
        if self.counter == u64::MAX {
            return Err(Error::NonceExhausted);
        }
        let mut frame = buf.split_to(total);
        frame.advance(HEADER_LEN);
        let tag_at = frame.len() - TAG_LEN;
        let tag = Tag::clone_from_slice(&frame[tag_at..]);
        frame.truncate(tag_at);
        cipher
            .decrypt_in_place_detached(&Nonce::from(nonce(self.counter)), &[], &mut frame, &tag)
            .map_err(|_| Error::RecordAuth)?;
        self.counter += 1;
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests;
