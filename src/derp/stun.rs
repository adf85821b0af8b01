//! STUN binding responder for the embedded DERP region (RFC 5389 subset).
//!
//! Owns the UDP side of netcheck: Tailscale clients send Binding Requests to the
//! node's `STUNPort` to measure latency and learn their public `ip:port`
//! (`net/stun/stun.go`, `net/netcheck`, Tailscale 1.96). Requests are parsed strictly
//! (type, cookie, length, attribute framing) and, as Tailscale's own server does
//! (`stun.ParseBindingRequest`), must carry SOFTWARE `tailnode` and end in a valid
//! FINGERPRINT, which every Tailscale client sends. Anything else is ignored without
//! reply: answering any well-formed request would make the port a reflector for
//! spoofed-source traffic aimed at third parties. The answer is a Binding Success
//! carrying XOR-MAPPED-ADDRESS, sent from the same socket to the request's source.
//! Depends on tokio's `UdpSocket` only.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;

const HEADER_LEN: usize = 20;
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const BINDING_REQUEST: [u8; 2] = [0x00, 0x01];
const BINDING_SUCCESS: [u8; 2] = [0x01, 0x01];
const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
const ATTR_SOFTWARE: u16 = 0x8022;
const ATTR_FINGERPRINT: u16 = 0x8028;
/// The SOFTWARE value every Tailscale client sends (`stun.Request`).
const TAILSCALE_SOFTWARE: &[u8] = b"tailnode";
/// FINGERPRINT is the CRC-32 of the message before it, XORed with "STUN".
const FINGERPRINT_XOR: u32 = 0x5354_554E;
/// Largest datagram we read; valid requests are far smaller (Tailscale's are 40 bytes).
const MAX_DATAGRAM: usize = 2048;

/// A STUN transaction ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxId(pub [u8; 12]);

/// Parses a Binding Request from a Tailscale client; `None` for anything else: a
/// malformed message, or one without SOFTWARE `tailnode` or without a matching
/// FINGERPRINT as its last attribute.
pub fn parse_request(b: &[u8]) -> Option<TxId> {
    if b.len() < HEADER_LEN || b[0..2] != BINDING_REQUEST || b[4..8] != MAGIC_COOKIE {
        return None;
    }
    let body_len = usize::from(u16::from_be_bytes([b[2], b[3]]));
    // The length field must cover exactly the datagram, in whole 32-bit words.
    if body_len != b.len() - HEADER_LEN || body_len % 4 != 0 {
        return None;
    }
    let mut tx = [0u8; 12];
    tx.copy_from_slice(&b[8..20]);

    let mut tailscale = false;
    let mut fingerprinted = false;
    let mut at = HEADER_LEN;
    while at < b.len() {
        let head = b.get(at..at + 4)?;
        let attr_type = u16::from_be_bytes([head[0], head[1]]);
        let attr_len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let value_at = at + 4;
        let next = value_at + attr_len.next_multiple_of(4);
        if next > b.len() {
            return None;
        }
        if attr_type == ATTR_SOFTWARE && &b[value_at..value_at + attr_len] == TAILSCALE_SOFTWARE {
            tailscale = true;
        }
        if attr_type == ATTR_FINGERPRINT {
            if attr_len != 4 || next != b.len() {
                return None;
            }
            let got = u32::from_be_bytes([
                b[value_at],
                b[value_at + 1],
                b[value_at + 2],
                b[value_at + 3],
            ]);
            if got != crc32(&b[..at]) ^ FINGERPRINT_XOR {
                return None;
            }
            fingerprinted = true;
        }
        at = next;
    }
    (tailscale && fingerprinted).then_some(TxId(tx))
}

/// Builds a Binding Success response telling the client it was seen as `addr`.
/// IPv4-mapped IPv6 sources (dual-stack sockets) are reported as plain IPv4.
pub fn build_response(tx: TxId, addr: SocketAddr) -> Vec<u8> {
    let ip = match addr.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let (family, raw): (u8, Vec<u8>) = match ip {
        IpAddr::V4(v4) => (0x01, v4.octets().to_vec()),
        IpAddr::V6(v6) => (0x02, v6.octets().to_vec()),
    };
    let attr_len = 4 + raw.len();
    let mut out = Vec::with_capacity(HEADER_LEN + 4 + attr_len);
    out.extend_from_slice(&BINDING_SUCCESS);
    out.extend_from_slice(&((4 + attr_len) as u16).to_be_bytes());
    out.extend_from_slice(&MAGIC_COOKIE);
    out.extend_from_slice(&tx.0);
    out.extend_from_slice(&ATTR_XOR_MAPPED_ADDRESS.to_be_bytes());
    out.extend_from_slice(&(attr_len as u16).to_be_bytes());
    out.push(0);
    out.push(family);
    let port = addr.port() ^ u16::from_be_bytes([MAGIC_COOKIE[0], MAGIC_COOKIE[1]]);
    out.extend_from_slice(&port.to_be_bytes());
    // The address is XORed with the cookie, then (IPv6) with the transaction ID.
    let mask = MAGIC_COOKIE.iter().chain(tx.0.iter());
    out.extend(raw.iter().zip(mask).map(|(a, m)| a ^ m));
    out
}

/// Answers Binding Requests on `socket` forever. Per-datagram errors are logged and
/// skipped; the loop never ends on bad input.
pub async fn serve(socket: UdpSocket) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, src) = match socket.recv_from(&mut buf).await {
            Ok(v) => v,
            Err(e) => {
                // E.g. ICMP errors surfacing on some platforms; pause briefly so a
                // persistent error cannot spin the loop.
                tracing::debug!(error = %e, "STUN recv failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Some(tx) = parse_request(&buf[..n]) else {
            continue;
        };
        if let Err(e) = socket.send_to(&build_response(tx, src), src).await {
            tracing::debug!(error = %e, %src, "STUN reply failed");
        }
    }
}

/// CRC-32 (IEEE 802.3, reflected, as in zlib and Go's `crc32.ChecksumIEEE`).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests;
