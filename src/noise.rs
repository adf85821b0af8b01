//! TS2021 Noise transport: the encrypted pipe every control request travels in.
//!
//! Owns the `Noise_IK_25519_ChaChaPoly_BLAKE2s` handshake ([`handshake`]), the
//! transport record layer ([`codec`]), a tokio stream over it ([`stream`]), the
//! optional "early payload" ([`early`]), the server side of `POST /ts2021`
//! ([`upgrade`]), a client for our own tests and benches ([`client`]) and the
//! on-disk server key ([`key`]).
//!
//! Depends only on crypto crates, tokio, hyper/axum and serde; nothing else in
//! the crate. It holds no policy or state logic: callers get an authenticated
//! machine key and a byte stream, and decide what to do with them.
//!
//! Mirrors Tailscale's `control/controlbase` and `control/controlhttp` at
//! v1.96 (capability version 133), including its deviations from the Noise
//! spec: big-endian transport nonces, 4096-byte frames, and the client's
//! protocol version mixed into the prologue.

pub mod client;
pub mod codec;
pub mod early;
pub mod handshake;
pub mod key;
pub mod stream;
pub mod upgrade;

pub use client::connect;
pub use handshake::{Initiator, Responded, TransportKeys, respond};
pub use key::load_or_create;
pub use stream::NoiseStream;
pub use upgrade::{Accepted, Pending, accept};

use std::path::PathBuf;

/// Everything that can go wrong in the Noise layer, from a malformed
/// handshake to an unreadable key file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("handshake initiation is {0} bytes, want 101")]
    InitiationSize(usize),
    #[error("unexpected handshake message type {got}, want {want}")]
    MessageType { got: u8, want: u8 },
    #[error("handshake message declares length {got}, want {want}")]
    MessageLength { got: usize, want: usize },
    #[error("X25519 produced an all-zero shared secret (low-order public key)")]
    WeakKey,
    #[error("handshake authentication failed")]
    HandshakeAuth,
    #[error("server refused handshake: {0:?}")]
    ServerRefused(String),

    #[error("noise frame of {0} bytes exceeds the 4096-byte limit")]
    FrameTooLarge(usize),
    #[error("noise frame ciphertext of {0} bytes is shorter than the AEAD tag")]
    FrameTooShort(usize),
    #[error("unexpected noise frame type {0}, want 4")]
    FrameType(u8),
    #[error("noise record failed to decrypt")]
    RecordAuth,
    #[error("noise receiver is poisoned by an earlier bad frame")]
    Poisoned,
    #[error("noise nonce space exhausted")]
    NonceExhausted,
    #[error("plaintext of {0} bytes does not fit one noise record (max 4077)")]
    PlaintextTooLarge(usize),
    #[error("connection closed in the middle of a noise frame")]
    Truncated,

    #[error("missing or unsupported Upgrade header")]
    UpgradeProtocol,
    #[error("missing X-Tailscale-Handshake header")]
    MissingHandshake,
    #[error("invalid X-Tailscale-Handshake header")]
    HandshakeEncoding,
    #[error("upgrade requires HTTP/1.1")]
    NotHttp1,
    #[error("method not allowed on /ts2021")]
    Method,
    #[error("connection cannot be upgraded")]
    NotUpgradable,
    #[error("HTTP upgrade failed: {0}")]
    Upgrade(#[source] hyper::Error),
    #[error("invalid host for upgrade request")]
    Host,
    #[error("bad upgrade response: {0}")]
    UpgradeResponse(&'static str),
    #[error("upgrade refused with HTTP status {0}")]
    UpgradeStatus(u16),

    #[error("invalid early payload: {0}")]
    EarlyPayload(&'static str),

    #[error("key file {path}: {source}")]
    KeyIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "key file {path} has mode {mode:o}; it must not be readable by group or others (chmod 600)"
    )]
    KeyMode { path: PathBuf, mode: u32 },
    #[error("key file {path} is not in the form privkey:<64 hex digits>")]
    KeyFormat { path: PathBuf },

    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Whether the error was caused by what the peer sent (as opposed to a
    /// local failure), so that servers can answer 4xx rather than 5xx.
    pub fn is_peer_fault(&self) -> bool {
        !matches!(
            self,
            Error::Io(_) | Error::KeyIo { .. } | Error::KeyMode { .. } | Error::KeyFormat { .. }
        )
    }
}

/// Converts a record-layer error for the `AsyncRead`/`AsyncWrite` world.
impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io(io) => io,
            Error::Truncated => std::io::Error::new(std::io::ErrorKind::UnexpectedEof, e),
            other => std::io::Error::new(std::io::ErrorKind::InvalidData, other),
        }
    }
}
