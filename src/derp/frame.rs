//! DERP frame codec: `type:u8 | length:u32 BE | payload[length]`.
//!
//! Owns the frame types, their payload layouts and the size limits of DERP protocol
//! version 2 (`derp/derp.go` in Tailscale 1.96). Pure protocol: no state, no policy.
//! Depends only on `bytes` and tokio's `AsyncRead` (for [`read_frame`]).
//!
//! Reading is strict about the frames we act on and lenient about the rest: unknown
//! frame types are read and discarded, as both Tailscale's client and server do, so
//! that either side can add frames without breaking the other.

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Frame header: one type byte plus a big-endian u32 payload length.
pub const HEADER_LEN: usize = 5;
/// Length of a raw Curve25519 node or server key.
pub const KEY_LEN: usize = 32;
/// Length of a NaCl box nonce.
pub const NONCE_LEN: usize = 24;
/// Largest packet a client may send or receive (`derp.MaxPacketSize`).
pub const MAX_PACKET_SIZE: usize = 64 << 10;
/// Any frame longer than this is fatal (the 1.96 client's read limit).
pub const MAX_FRAME_LEN: usize = 1 << 20;
/// Tailscale's server refuses longer ClientInfo frames (untrusted JSON before auth).
pub const MAX_CLIENT_INFO_LEN: usize = 256 << 10;
/// The client reads the server greeting with a 1 KiB limit.
pub const MAX_SERVER_KEY_LEN: usize = 1 << 10;
/// Tailscale's server rejects pings with bodies above this size.
pub const MAX_PING_LEN: usize = 1000;
/// DERP protocol version we speak (v2: RecvPacket carries the source key).
pub const PROTOCOL_VERSION: u32 = 2;
/// ServerKey magic: "DERP🔑".
pub const MAGIC: [u8; 8] = [0x44, 0x45, 0x52, 0x50, 0xF0, 0x9F, 0x94, 0x91];
/// Disco message prefix: "TS💬" (`disco/disco.go`).
pub const DISCO_MAGIC: [u8; 6] = [0x54, 0x53, 0xF0, 0x9F, 0x92, 0xAC];

/// A raw 32-byte Curve25519 public key (node key or DERP server key).
pub type Key = [u8; KEY_LEN];

/// Errors reading or decoding frames.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame type {frame_type:#04x} has length {len}, limit {max}")]
    TooLarge {
        frame_type: u8,
        len: usize,
        max: usize,
    },
    #[error("malformed {0:?} frame")]
    Malformed(FrameType),
    #[error("server key frame without DERP magic")]
    BadMagic,
}

/// Known frame types (`derp.Frame*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    ServerKey = 0x01,
    ClientInfo = 0x02,
    ServerInfo = 0x03,
    SendPacket = 0x04,
    RecvPacket = 0x05,
    KeepAlive = 0x06,
    NotePreferred = 0x07,
    PeerGone = 0x08,
    PeerPresent = 0x09,
    ForwardPacket = 0x0a,
    WatchConns = 0x10,
    ClosePeer = 0x11,
    Ping = 0x12,
    Pong = 0x13,
    Health = 0x14,
    Restarting = 0x15,
}

impl FrameType {
    pub fn from_u8(b: u8) -> Option<Self> {
        use FrameType::*;
        Some(match b {
            0x01 => ServerKey,
            0x02 => ClientInfo,
            0x03 => ServerInfo,
            0x04 => SendPacket,
            0x05 => RecvPacket,
            0x06 => KeepAlive,
            0x07 => NotePreferred,
            0x08 => PeerGone,
            0x09 => PeerPresent,
            0x0a => ForwardPacket,
            0x10 => WatchConns,
            0x11 => ClosePeer,
            0x12 => Ping,
            0x13 => Pong,
            0x14 => Health,
            0x15 => Restarting,
            _ => return None,
        })
    }

    /// Frames that only regional mesh peers (holders of a mesh key) may use.
    pub fn is_mesh(self) -> bool {
        matches!(
            self,
            FrameType::PeerPresent
                | FrameType::ForwardPacket
                | FrameType::WatchConns
                | FrameType::ClosePeer
        )
    }
}

/// Largest acceptable payload for a frame of type `t`; longer frames are fatal.
pub fn max_payload_len(t: u8) -> usize {
    match FrameType::from_u8(t) {
        Some(FrameType::ServerKey) => MAX_SERVER_KEY_LEN,
        Some(FrameType::ClientInfo) => MAX_CLIENT_INFO_LEN,
        Some(FrameType::SendPacket | FrameType::RecvPacket) => KEY_LEN + MAX_PACKET_SIZE,
        Some(FrameType::ForwardPacket) => 2 * KEY_LEN + MAX_PACKET_SIZE,
        Some(FrameType::Ping | FrameType::Pong) => MAX_PING_LEN,
        _ => MAX_FRAME_LEN,
    }
}

/// Why a server has no path to a peer (`derp.PeerGoneReasonType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerGoneReason {
    /// The peer was connected here and left (0x00).
    Disconnected,
    /// The server does not know the peer (0x01).
    NotHere,
    Other(u8),
}

impl PeerGoneReason {
    pub fn to_u8(self) -> u8 {
        match self {
            PeerGoneReason::Disconnected => 0x00,
            PeerGoneReason::NotHere => 0x01,
            PeerGoneReason::Other(b) => b,
        }
    }

    pub fn from_u8(b: u8) -> Self {
        match b {
            0x00 => PeerGoneReason::Disconnected,
            0x01 => PeerGoneReason::NotHere,
            other => PeerGoneReason::Other(other),
        }
    }
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    ServerKey {
        key: Key,
    },
    /// `sealed` is nonce ‖ NaCl box of the ClientInfo JSON.
    ClientInfo {
        key: Key,
        sealed: Bytes,
    },
    /// `sealed` is nonce ‖ NaCl box of the ServerInfo JSON.
    ServerInfo {
        sealed: Bytes,
    },
    SendPacket {
        dst: Key,
        packet: Bytes,
    },
    RecvPacket {
        src: Key,
        packet: Bytes,
    },
    KeepAlive,
    NotePreferred {
        preferred: bool,
    },
    PeerGone {
        key: Key,
        reason: PeerGoneReason,
    },
    Ping([u8; 8]),
    Pong([u8; 8]),
    Health {
        problem: String,
    },
    Restarting {
        reconnect_in_ms: u32,
        try_for_ms: u32,
    },
    /// A mesh-only frame; its payload was discarded (we run no mesh).
    Mesh {
        frame_type: FrameType,
    },
    /// An unknown frame type; its payload was discarded.
    Unknown {
        frame_type: u8,
    },
}

/// Splits a 5-byte header into (type, payload length).
pub fn parse_header(h: &[u8; HEADER_LEN]) -> (u8, u32) {
    (h[0], u32::from_be_bytes([h[1], h[2], h[3], h[4]]))
}

/// Appends a frame with an arbitrary type and payload to `out`.
///
/// Payloads are always far below 4 GiB here (every producer is bounded by
/// [`MAX_FRAME_LEN`]); the length saturates rather than wrapping just in case.
pub fn encode_raw(frame_type: u8, payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.push(frame_type);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
}

fn encode_parts(frame_type: FrameType, parts: &[&[u8]], out: &mut Vec<u8>) {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let len = u32::try_from(total).unwrap_or(u32::MAX);
    out.push(frame_type as u8);
    out.extend_from_slice(&len.to_be_bytes());
    for p in parts {
        out.extend_from_slice(p);
    }
}

impl Frame {
    /// The type byte this frame is sent with.
    pub fn frame_type(&self) -> u8 {
        use FrameType as T;
        match self {
            Frame::ServerKey { .. } => T::ServerKey as u8,
            Frame::ClientInfo { .. } => T::ClientInfo as u8,
            Frame::ServerInfo { .. } => T::ServerInfo as u8,
            Frame::SendPacket { .. } => T::SendPacket as u8,
            Frame::RecvPacket { .. } => T::RecvPacket as u8,
            Frame::KeepAlive => T::KeepAlive as u8,
            Frame::NotePreferred { .. } => T::NotePreferred as u8,
            Frame::PeerGone { .. } => T::PeerGone as u8,
            Frame::Ping(_) => T::Ping as u8,
            Frame::Pong(_) => T::Pong as u8,
            Frame::Health { .. } => T::Health as u8,
            Frame::Restarting { .. } => T::Restarting as u8,
            Frame::Mesh { frame_type } => *frame_type as u8,
            Frame::Unknown { frame_type } => *frame_type,
        }
    }

    /// Appends the wire encoding of this frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        use FrameType as T;
        match self {
            Frame::ServerKey { key } => encode_parts(T::ServerKey, &[&MAGIC, key], out),
            Frame::ClientInfo { key, sealed } => encode_parts(T::ClientInfo, &[key, sealed], out),
            Frame::ServerInfo { sealed } => encode_parts(T::ServerInfo, &[sealed], out),
            Frame::SendPacket { dst, packet } => encode_parts(T::SendPacket, &[dst, packet], out),
            Frame::RecvPacket { src, packet } => encode_parts(T::RecvPacket, &[src, packet], out),
            Frame::KeepAlive => encode_parts(T::KeepAlive, &[], out),
            Frame::NotePreferred { preferred } => {
                encode_parts(T::NotePreferred, &[&[u8::from(*preferred)]], out)
            }
            Frame::PeerGone { key, reason } => {
                encode_parts(T::PeerGone, &[key, &[reason.to_u8()]], out)
            }
            Frame::Ping(data) => encode_parts(T::Ping, &[data], out),
            Frame::Pong(data) => encode_parts(T::Pong, &[data], out),
            Frame::Health { problem } => encode_parts(T::Health, &[problem.as_bytes()], out),
            Frame::Restarting {
                reconnect_in_ms,
                try_for_ms,
            } => encode_parts(
                T::Restarting,
                &[&reconnect_in_ms.to_be_bytes(), &try_for_ms.to_be_bytes()],
                out,
            ),
            Frame::Mesh { frame_type } => encode_parts(*frame_type, &[], out),
            Frame::Unknown { frame_type } => encode_raw(*frame_type, &[], out),
        }
    }

    /// Decodes a payload already bounded by [`max_payload_len`].
    pub fn decode(frame_type: u8, payload: Bytes) -> Result<Frame, Error> {
        let Some(t) = FrameType::from_u8(frame_type) else {
            return Ok(Frame::Unknown { frame_type });
        };
        let bad = || Error::Malformed(t);
        let key_at = |b: &[u8], at: usize| -> Result<Key, Error> {
            b.get(at..at + KEY_LEN)
                .and_then(|s| Key::try_from(s).ok())
                .ok_or_else(bad)
        };
        let eight = |b: &[u8]| -> Result<[u8; 8], Error> {
            b.get(..8)
                .and_then(|s| <[u8; 8]>::try_from(s).ok())
                .ok_or_else(bad)
        };
        Ok(match t {
            FrameType::ServerKey => {
                // Extra trailing bytes are reserved for future use and tolerated.
                if payload.len() < MAGIC.len() + KEY_LEN {
                    return Err(bad());
                }
                if payload[..MAGIC.len()] != MAGIC {
                    return Err(Error::BadMagic);
                }
                Frame::ServerKey {
                    key: key_at(&payload, MAGIC.len())?,
                }
            }
            FrameType::ClientInfo => {
                if payload.len() < KEY_LEN + NONCE_LEN {
                    return Err(bad());
                }
                Frame::ClientInfo {
                    key: key_at(&payload, 0)?,
                    sealed: payload.slice(KEY_LEN..),
                }
            }
            FrameType::ServerInfo => {
                if payload.len() < NONCE_LEN {
                    return Err(bad());
                }
                Frame::ServerInfo { sealed: payload }
            }
            FrameType::SendPacket => Frame::SendPacket {
                dst: key_at(&payload, 0)?,
                packet: payload.slice(KEY_LEN..),
            },
            FrameType::RecvPacket => Frame::RecvPacket {
                src: key_at(&payload, 0)?,
                packet: payload.slice(KEY_LEN..),
            },
            FrameType::KeepAlive => Frame::KeepAlive,
            FrameType::NotePreferred => match payload.as_ref() {
                [b] => Frame::NotePreferred { preferred: *b != 0 },
                _ => return Err(bad()),
            },
            FrameType::PeerGone => Frame::PeerGone {
                key: key_at(&payload, 0)?,
                // Old servers sent only the key; that meant "disconnected".
                reason: PeerGoneReason::from_u8(payload.get(KEY_LEN).copied().unwrap_or(0)),
            },
            FrameType::Ping => Frame::Ping(eight(&payload)?),
            FrameType::Pong => Frame::Pong(eight(&payload)?),
            FrameType::Health => Frame::Health {
                problem: String::from_utf8_lossy(&payload).into_owned(),
            },
            FrameType::Restarting => {
                let b = eight(&payload)?;
                Frame::Restarting {
                    reconnect_in_ms: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                    try_for_ms: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
                }
            }
            FrameType::PeerPresent
            | FrameType::ForwardPacket
            | FrameType::WatchConns
            | FrameType::ClosePeer => Frame::Mesh { frame_type: t },
        })
    }
}

/// Reports whether `packet` looks like a disco message (`disco.LooksLikeDiscoWrapper`):
/// magic, then a 32-byte disco key and a 24-byte nonce at least.
pub fn looks_like_disco(packet: &[u8]) -> bool {
    packet.len() >= DISCO_MAGIC.len() + KEY_LEN + NONCE_LEN && packet.starts_with(&DISCO_MAGIC)
}

/// Reads one frame. Oversized frames are an error before any payload is read;
/// unknown and mesh-only frames are skipped without buffering their payload.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Frame, Error> {
    let mut header = [0u8; HEADER_LEN];
    r.read_exact(&mut header).await?;
    let (frame_type, len) = parse_header(&header);
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    let max = max_payload_len(frame_type);
    if len > max {
        return Err(Error::TooLarge {
            frame_type,
            len,
            max,
        });
    }
    let known = FrameType::from_u8(frame_type);
    if known.is_none_or(FrameType::is_mesh) {
        let want = len as u64;
        let skipped = tokio::io::copy(&mut (&mut *r).take(want), &mut tokio::io::sink()).await?;
        if skipped != want {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        return Ok(match known {
            Some(frame_type) => Frame::Mesh { frame_type },
            None => Frame::Unknown { frame_type },
        });
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Frame::decode(frame_type, Bytes::from(payload))
}

#[cfg(test)]
mod tests;
