//! The TS2021 "early payload" (`tailcfg.EarlyNoise`).
//!
//! Owns its byte layout: magic `FF FF FF 'T' 'S'`, a big-endian u32 JSON
//! length, then `{"nodeKeyChallenge":"chalpub:<64 hex>"}`. The server sends
//! it as the first plaintext inside Noise, before any HTTP/2 byte; a client
//! peeks at the first 9 plaintext bytes and, when they are not the magic,
//! hands them on to HTTP/2 untouched (a server's first HTTP/2 frame is
//! SETTINGS, whose 9-byte header can never start with `FF FF FF`).
//!
//! Depends on serde/serde_json, x25519-dalek and [`super::stream`].
//!
//! Mirrors `control/ts2021/conn.go` and `tailcfg.EarlyNoise` (Tailscale
//! v1.96). The 1.96 client parses the challenge but nothing consumes it yet;
//! Headscale always sends one, and so do we.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};
use x25519_dalek::{PublicKey, StaticSecret};

use super::Error;
use super::stream::NoiseStream;

pub const MAGIC: [u8; 5] = *b"\xff\xff\xffTS";
/// Magic plus length: the same size as an HTTP/2 frame header.
pub const HEADER_LEN: usize = 9;
/// The client's cap on the JSON (`ts2021/conn.go`).
pub const MAX_JSON_LEN: usize = 10 << 20;
const CHALLENGE_PREFIX: &str = "chalpub:";

/// The JSON body of the early payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarlyNoise {
    /// `chalpub:` + 64 hex digits: a per-connection Curve25519 public key.
    #[serde(rename = "nodeKeyChallenge")]
    pub node_key_challenge: String,
}

/// A complete early payload with a fresh random challenge key. Its private
/// half is dropped: no 1.96 code path answers the challenge.
pub fn fresh() -> Vec<u8> {
    encode(PublicKey::from(&StaticSecret::random()).as_bytes())
}

/// The early payload carrying `challenge` as its `chalpub:` key.
pub fn encode(challenge: &[u8; 32]) -> Vec<u8> {
    let body = EarlyNoise {
        node_key_challenge: format!("{CHALLENGE_PREFIX}{}", hex::encode(challenge)),
    };
    let json = serde_json::to_vec(&body).expect("a struct of one String always serializes");
    let mut out = Vec::with_capacity(HEADER_LEN + json.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    out
}

/// `Some(json_len)` when `header` starts an early payload, `None` when it
/// is something else (HTTP/2), an error when the length is absurd.
pub fn parse_header(header: &[u8; HEADER_LEN]) -> Result<Option<usize>, Error> {
    if header[..MAGIC.len()] != MAGIC {
        return Ok(None);
    }
    let len = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
    let len = usize::try_from(len).map_err(|_| Error::EarlyPayload("length too large"))?;
    if len > MAX_JSON_LEN {
        return Err(Error::EarlyPayload("length too large"));
    }
    Ok(Some(len))
}

/// Parses the JSON body and checks the challenge key's text form.
pub fn decode(json: &[u8]) -> Result<EarlyNoise, Error> {
    let early: EarlyNoise =
        serde_json::from_slice(json).map_err(|_| Error::EarlyPayload("bad JSON"))?;
    let hex_part = early
        .node_key_challenge
        .strip_prefix(CHALLENGE_PREFIX)
        .ok_or(Error::EarlyPayload("challenge lacks chalpub: prefix"))?;
    if hex_part.len() != 64 || hex::decode(hex_part).is_err() {
        return Err(Error::EarlyPayload("challenge is not 64 hex digits"));
    }
    Ok(early)
}

/// Client side: consumes the early payload if the stream starts with one,
/// otherwise leaves the stream exactly as it was.
pub async fn read<T: AsyncRead + Unpin>(
    stream: &mut NoiseStream<T>,
) -> Result<Option<EarlyNoise>, Error> {
    let mut header = [0u8; HEADER_LEN];
    stream.read_exact(&mut header).await?;
    let Some(len) = parse_header(&header)? else {
        stream.unread(&header);
        return Ok(None);
    };
    let mut json = vec![0u8; len];
    stream.read_exact(&mut json).await?;
    decode(&json).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::handshake::TransportKeys;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn layout_matches_the_wire_format() {
        let p = encode(&[0xab; 32]);
        let json = format!(r#"{{"nodeKeyChallenge":"chalpub:{}"}}"#, "ab".repeat(32));
        assert_eq!(&p[..5], b"\xff\xff\xffTS");
        assert_eq!(&p[5..9], &(json.len() as u32).to_be_bytes());
        assert_eq!(&p[9..], json.as_bytes());
        let header: [u8; 9] = p[..9].try_into().unwrap();
        assert_eq!(parse_header(&header).unwrap(), Some(json.len()));
        assert_eq!(
            decode(&p[9..]).unwrap().node_key_challenge,
            format!("chalpub:{}", "ab".repeat(32))
        );
    }

    #[test]
    fn fresh_payloads_differ_and_decode() {
        let (a, b) = (fresh(), fresh());
        assert_ne!(a, b);
        decode(&a[9..]).unwrap();
    }

    #[test]
    fn http2_settings_header_is_not_mistaken_for_the_magic() {
        // Length 0x000012, type 4 (SETTINGS), flags 0, stream 0.
        let settings = [0, 0, 0x12, 4, 0, 0, 0, 0, 0];
        assert_eq!(parse_header(&settings).unwrap(), None);
    }

    #[test]
    fn oversize_and_malformed_payloads_are_rejected() {
        let mut h = [0xff, 0xff, 0xff, b'T', b'S', 0, 0, 0, 0];
        h[5..].copy_from_slice(&((10u32 << 20) + 1).to_be_bytes());
        assert!(parse_header(&h).is_err());
        h[5..].copy_from_slice(&(10u32 << 20).to_be_bytes());
        assert_eq!(parse_header(&h).unwrap(), Some(10 << 20));
        for bad in [
            &b"not json"[..],
            br#"{"nodeKeyChallenge":"nodekey:00"}"#,
            br#"{"nodeKeyChallenge":"chalpub:zz"}"#,
            br#"{}"#,
        ] {
            assert!(decode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    async fn stream_with(plaintext: &[u8]) -> NoiseStream<std::io::Cursor<Vec<u8>>> {
        let keys = TransportKeys {
            send: [1; 32],
            recv: [1; 32],
        };
        let mut w = NoiseStream::new(Vec::new(), &keys);
        w.write_all(plaintext).await.unwrap();
        w.flush().await.unwrap();
        NoiseStream::new(std::io::Cursor::new(w.get_ref().clone()), &keys)
    }

    #[tokio::test]
    async fn read_strips_the_payload_and_leaves_what_follows() {
        let mut bytes = encode(&[7; 32]);
        bytes.extend_from_slice(b"PRI * HTTP/2.0");
        let mut s = stream_with(&bytes).await;
        let early = read(&mut s).await.unwrap().unwrap();
        assert!(early.node_key_challenge.ends_with(&"07".repeat(32)));
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"PRI * HTTP/2.0");
    }

    #[tokio::test]
    async fn read_without_payload_gives_back_the_peeked_bytes() {
        let mut s = stream_with(b"\x00\x00\x12\x04\x00\x00\x00\x00\x00settings").await;
        assert_eq!(read(&mut s).await.unwrap(), None);
        let mut all = Vec::new();
        s.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"\x00\x00\x12\x04\x00\x00\x00\x00\x00settings");
    }
}
