//! Sans-IO `Noise_IK_25519_ChaChaPoly_BLAKE2s` handshake as TS2021 uses it.
//!
//! Owns the two handshake messages (101-byte initiation, 51-byte response),
//! the error message, and the symmetric state that turns them into a pair of
//! transport keys. No I/O: callers hand in bytes and get bytes back.
//!
//! Depends only on x25519-dalek, blake2, hmac and chacha20poly1305.
//!
//! Mirrors `control/controlbase/{handshake,messages}.go` (Tailscale v1.96):
//! the prologue is `"Tailscale Control Protocol v"` plus the decimal version
//! from the initiation header, both handshake payloads are empty, and
//! `Split()` yields (client→server, server→client) keys.

use blake2::{Blake2s256, Digest};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};
use hmac::{Mac, SimpleHmac};
use x25519_dalek::{PublicKey, StaticSecret};

use super::Error;

/// Noise protocol name; its BLAKE2s hash seeds both `h` and `ck`.
pub const PROTOCOL_NAME: &str = "Noise_IK_25519_ChaChaPoly_BLAKE2s";
/// Prologue prefix; the client's decimal protocol version follows it.
pub const PROLOGUE_PREFIX: &str = "Tailscale Control Protocol v";

pub const MSG_INITIATION: u8 = 1;
pub const MSG_RESPONSE: u8 = 2;
pub const MSG_ERROR: u8 = 3;

/// 2-byte version + 3-byte header + 32 ephemeral + 48 sealed static + 16 tag.
pub const INITIATION_LEN: usize = 101;
/// 3-byte header + 32 ephemeral + 16 tag.
pub const RESPONSE_LEN: usize = 51;
/// `type | u16 BE length`, shared by every message but the initiation.
pub const HEADER_LEN: usize = 3;

const TAG_LEN: usize = 16;
const INITIATION_PAYLOAD_LEN: usize = INITIATION_LEN - 5;
const RESPONSE_PAYLOAD_LEN: usize = RESPONSE_LEN - HEADER_LEN;

/// The two directional ChaCha20-Poly1305 keys, from the holder's point of view.
#[derive(Clone, PartialEq, Eq)]
pub struct TransportKeys {
    pub send: [u8; 32],
    pub recv: [u8; 32],
}

impl std::fmt::Debug for TransportKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TransportKeys(..)")
    }
}

/// What the responder learned from a valid initiation, plus its reply.
#[derive(Debug, Clone)]
pub struct Responded {
    /// The client's authenticated machine (static) public key.
    pub client_machine_key: [u8; 32],
    /// Protocol version from the initiation header (the client's capver).
    pub version: u16,
    pub keys: TransportKeys,
    /// Final handshake hash; binds later messages to this connection.
    pub handshake_hash: [u8; 32],
    /// The 51-byte response to write raw on the socket.
    pub response: [u8; RESPONSE_LEN],
}

/// What the initiator ends up with once the response checks out.
#[derive(Debug, Clone)]
pub struct Established {
    pub keys: TransportKeys,
    pub handshake_hash: [u8; 32],
}

/// Server side: checks a client initiation against our static key and
/// produces the response. Any malformed or forged input is an error.
pub fn respond(server: &StaticSecret, initiation: &[u8]) -> Result<Responded, Error> {
    respond_with_ephemeral(server, initiation, StaticSecret::random())
}

fn respond_with_ephemeral(
    server: &StaticSecret,
    init: &[u8],
    ephemeral: StaticSecret,
) -> Result<Responded, Error> {
    if init.len() != INITIATION_LEN {
        return Err(Error::InitiationSize(init.len()));
    }
    let version = u16::from_be_bytes([init[0], init[1]]);
    if init[2] != MSG_INITIATION {
        return Err(Error::MessageType {
            got: init[2],
            want: MSG_INITIATION,
        });
    }
    let declared = usize::from(u16::from_be_bytes([init[3], init[4]]));
    if declared != INITIATION_PAYLOAD_LEN {
        return Err(Error::MessageLength {
            got: declared,
            want: INITIATION_PAYLOAD_LEN,
        });
    }
    let client_ephemeral = array32(&init[5..37]);
    let sealed_static = &init[37..85];
    let tag = &init[85..101];

    let mut s = SymmetricState::new(version, PublicKey::from(server).as_bytes());
    // -> e, es, s, ss
    s.mix_hash(&client_ephemeral);
    let k = s.mix_dh(server, &client_ephemeral)?;
    let mut machine = [0u8; 32];
    s.decrypt_and_hash(&k, sealed_static, &mut machine)?;
    let k = s.mix_dh(server, &machine)?;
    s.decrypt_and_hash(&k, tag, &mut [])?;

    // <- e, ee, se
    let mut response = [0u8; RESPONSE_LEN];
    response[0] = MSG_RESPONSE;
    response[1..3].copy_from_slice(&(RESPONSE_PAYLOAD_LEN as u16).to_be_bytes());
    let e_pub = PublicKey::from(&ephemeral);
    response[3..35].copy_from_slice(e_pub.as_bytes());
    s.mix_hash(e_pub.as_bytes());
    s.mix_dh(&ephemeral, &client_ephemeral)?;
    let k = s.mix_dh(&ephemeral, &machine)?;
    s.encrypt_and_hash(&k, &[], &mut response[35..51]);

    let (c2s, s2c) = s.split();
    Ok(Responded {
        client_machine_key: machine,
        version,
        keys: TransportKeys {
            send: s2c,
            recv: c2s,
        },
        handshake_hash: s.h,
        response,
    })
}

/// Client side of the handshake, between sending the initiation and
/// receiving the response.
pub struct Initiator {
    s: SymmetricState,
    machine: StaticSecret,
    ephemeral: StaticSecret,
}

impl Initiator {
    /// Starts a handshake towards `server_pub` with our `machine` key and
    /// returns the 101-byte initiation to send.
    pub fn new(
        machine: &StaticSecret,
        server_pub: &[u8; 32],
        version: u16,
    ) -> Result<(Self, [u8; INITIATION_LEN]), Error> {
        Self::with_ephemeral(machine, server_pub, version, StaticSecret::random())
    }

    fn with_ephemeral(
        machine: &StaticSecret,
        server_pub: &[u8; 32],
        version: u16,
        ephemeral: StaticSecret,
    ) -> Result<(Self, [u8; INITIATION_LEN]), Error> {
        let mut init = [0u8; INITIATION_LEN];
        init[0..2].copy_from_slice(&version.to_be_bytes());
        init[2] = MSG_INITIATION;
        init[3..5].copy_from_slice(&(INITIATION_PAYLOAD_LEN as u16).to_be_bytes());

        let mut s = SymmetricState::new(version, server_pub);
        let e_pub = PublicKey::from(&ephemeral);
        init[5..37].copy_from_slice(e_pub.as_bytes());
        s.mix_hash(e_pub.as_bytes());
        let k = s.mix_dh(&ephemeral, server_pub)?;
        s.encrypt_and_hash(&k, PublicKey::from(machine).as_bytes(), &mut init[37..85]);
        let k = s.mix_dh(machine, server_pub)?;
        s.encrypt_and_hash(&k, &[], &mut init[85..101]);

        let me = Initiator {
            s,
            machine: machine.clone(),
            ephemeral,
        };
        Ok((me, init))
    }

    /// Consumes the server's 51-byte response and derives the transport keys.
    pub fn finish(mut self, response: &[u8]) -> Result<Established, Error> {
        if response.len() != RESPONSE_LEN {
            return Err(Error::MessageLength {
                got: response.len(),
                want: RESPONSE_LEN,
            });
        }
        if response[0] != MSG_RESPONSE {
            return Err(Error::MessageType {
                got: response[0],
                want: MSG_RESPONSE,
            });
        }
        let declared = usize::from(u16::from_be_bytes([response[1], response[2]]));
        if declared != RESPONSE_PAYLOAD_LEN {
            return Err(Error::MessageLength {
                got: declared,
                want: RESPONSE_PAYLOAD_LEN,
            });
        }
        let server_ephemeral = array32(&response[3..35]);
        let s = &mut self.s;
        s.mix_hash(&server_ephemeral);
        s.mix_dh(&self.ephemeral, &server_ephemeral)?;
        let k = s.mix_dh(&self.machine, &server_ephemeral)?;
        s.decrypt_and_hash(&k, &response[35..51], &mut [])?;
        let (c2s, s2c) = s.split();
        Ok(Established {
            keys: TransportKeys {
                send: c2s,
                recv: s2c,
            },
            handshake_hash: s.h,
        })
    }
}

/// Builds an error message (type 3) to send instead of a response. The text
/// travels unauthenticated; keep it short and free of attacker input.
pub fn error_message(text: &str) -> Vec<u8> {
    let mut end = text.len().min(usize::from(u16::MAX));
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let body = &text.as_bytes()[..end];
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.push(MSG_ERROR);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// The prologue for `version`, e.g. `Tailscale Control Protocol v133`.
pub fn prologue(version: u16) -> String {
    format!("{PROLOGUE_PREFIX}{version}")
}

fn array32(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(bytes);
    out
}

/// Noise `SymmetricState` (`h`, `ck`); the cipher key lives only as long as
/// one encrypt/decrypt, always with nonce 0, because each handshake key is
/// used exactly once.
struct SymmetricState {
    h: [u8; 32],
    ck: [u8; 32],
}

impl SymmetricState {
    /// Initialize, mix the prologue, then the `<- s` pre-message.
    fn new(version: u16, server_pub: &[u8; 32]) -> Self {
        let h: [u8; 32] = Blake2s256::digest(PROTOCOL_NAME.as_bytes()).into();
        let mut s = SymmetricState { h, ck: h };
        s.mix_hash(prologue(version).as_bytes());
        s.mix_hash(server_pub);
        s
    }

    fn mix_hash(&mut self, data: &[u8]) {
        let mut d = Blake2s256::new();
        d.update(self.h);
        d.update(data);
        self.h = d.finalize().into();
    }

    /// `MixKey(DH(private, public))`, returning the fresh cipher key.
    fn mix_dh(&mut self, private: &StaticSecret, public: &[u8; 32]) -> Result<[u8; 32], Error> {
        let shared = private.diffie_hellman(&PublicKey::from(*public));
        // Go's curve25519.X25519 refuses an all-zero result; so do we, which
        // also keeps low-order points from zeroing out a DH contribution.
        if !shared.was_contributory() {
            return Err(Error::WeakKey);
        }
        let (ck, k) = hkdf2(&self.ck, shared.as_bytes());
        self.ck = ck;
        Ok(k)
    }

    /// Encrypts `plaintext` into `out` (`plaintext.len() + 16` bytes) with
    /// AD = h, then mixes the ciphertext into h.
    fn encrypt_and_hash(&mut self, key: &[u8; 32], plaintext: &[u8], out: &mut [u8]) {
        let n = plaintext.len();
        debug_assert_eq!(out.len(), n + TAG_LEN);
        out[..n].copy_from_slice(plaintext);
        let cipher = ChaCha20Poly1305::new(key.into());
        let tag = cipher
            .encrypt_in_place_detached(&Nonce::default(), &self.h, &mut out[..n])
            .expect("handshake plaintexts are tiny; ChaCha20-Poly1305 cannot fail on them");
        out[n..].copy_from_slice(&tag);
        self.mix_hash(out);
    }

    /// Decrypts `ciphertext` into `out` (`ciphertext.len() - 16` bytes) with
    /// AD = h, then mixes the ciphertext into h.
    fn decrypt_and_hash(
        &mut self,
        key: &[u8; 32],
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<(), Error> {
        let n = out.len();
        if ciphertext.len() != n + TAG_LEN {
            return Err(Error::HandshakeAuth);
        }
        out.copy_from_slice(&ciphertext[..n]);
        let cipher = ChaCha20Poly1305::new(key.into());
        cipher
            .decrypt_in_place_detached(&Nonce::default(), &self.h, out, ciphertext[n..].into())
            .map_err(|_| Error::HandshakeAuth)?;
        self.mix_hash(ciphertext);
        Ok(())
    }

    /// `Split()`: (client→server, server→client).
    fn split(&self) -> ([u8; 32], [u8; 32]) {
        hkdf2(&self.ck, &[])
    }
}

/// Noise `HKDF(ck, ikm)` with HMAC-BLAKE2s and two outputs: the same as RFC
/// 5869 with salt = ck and empty info, which is what Go's `hkdf.New` does.
fn hkdf2(ck: &[u8; 32], ikm: &[u8]) -> ([u8; 32], [u8; 32]) {
    let prk = hmac_blake2s(ck, &[ikm]);
    let out1 = hmac_blake2s(&prk, &[&[0x01]]);
    let out2 = hmac_blake2s(&prk, &[&out1, &[0x02]]);
    (out1, out2)
}

fn hmac_blake2s(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // BLAKE2s has no core-wrapper HMAC impl in RustCrypto, hence SimpleHmac.
    let mut mac = <SimpleHmac<Blake2s256> as Mac>::new_from_slice(key)
        .expect("HMAC accepts keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests;
