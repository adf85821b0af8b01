//! Secrets handed to operators once and stored only as a hash: pre-auth
//! keys and API keys. Text form `<kind prefix><12 hex id>-<64 hex secret>`;
//! the id is stored in clear to find the row, the secret only as SHA-256,
//! and comparisons are constant-time.
//!
//! Keys imported from Headscale (`crate::import`) keep Headscale's text
//! forms and hashes, so they go on working unchanged: [`KeyHash::Bcrypt`]
//! for what Headscale stored as bcrypt, and the text forms each kind's
//! [`SecretKind::headscale_form`] accepts. New keys are always ours.

use std::fmt;
use std::marker::PhantomData;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What distinguishes one kind of secret from another.
pub trait SecretKind {
    /// Text prefix, e.g. `cskey-auth-`.
    const TEXT_PREFIX: &'static str;
    /// Type name used in `Debug` output.
    const NAME: &'static str;

    /// Splits a key in one of Headscale's text forms into its lookup
    /// prefix and secret part; `None` if `text` is no such key.
    fn headscale_form(_text: &str) -> Option<(String, String)> {
        None
    }
}

/// How a key's secret part is stored.
#[derive(Clone, PartialEq, Eq)]
pub enum KeyHash {
    /// SHA-256 of the secret part: every key clawscale issues.
    Sha256([u8; 32]),
    /// A bcrypt hash (`$2a$…`) of the secret part, as Headscale stores its
    /// API keys and (from 0.28) its pre-auth keys: imported keys only.
    Bcrypt(String),
}

impl KeyHash {
    /// The `hash_kind` column's value.
    pub fn kind(&self) -> &'static str {
        match self {
            KeyHash::Sha256(_) => "sha256",
            KeyHash::Bcrypt(_) => "bcrypt",
        }
    }

    /// The `hash` column's bytes.
    pub fn stored(&self) -> &[u8] {
        match self {
            KeyHash::Sha256(h) => h,
            KeyHash::Bcrypt(h) => h.as_bytes(),
        }
    }

    /// Reads back what [`kind`](Self::kind) and [`stored`](Self::stored)
    /// wrote.
    pub fn from_stored(kind: &str, bytes: Vec<u8>) -> Result<KeyHash, String> {
        match kind {
            "sha256" => bytes
                .try_into()
                .map(KeyHash::Sha256)
                .map_err(|_| "a sha256 key hash is not 32 bytes".to_string()),
            "bcrypt" => String::from_utf8(bytes)
                .ok()
                .filter(|h| is_bcrypt(h))
                .map(KeyHash::Bcrypt)
                .ok_or_else(|| "a bcrypt key hash is malformed".to_string()),
            other => Err(format!("unknown key hash kind {other:?}")),
        }
    }

    /// Whether `secret` (the secret part of a presented key) hashes to this:
    /// SHA-256 compared in constant time, bcrypt by the `bcrypt` crate
    /// (which compares in constant time too, and costs what its cost
    /// factor says: ~50–100 ms at Headscale's 10).
    pub fn verify(&self, secret: &str) -> bool {
        match self {
            KeyHash::Sha256(h) => {
                let got: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
                bool::from(h.ct_eq(&got))
            }
            KeyHash::Bcrypt(h) => bcrypt::verify(secret, h).unwrap_or(false),
        }
    }
}

impl From<[u8; 32]> for KeyHash {
    fn from(h: [u8; 32]) -> Self {
        KeyHash::Sha256(h)
    }
}

impl fmt::Debug for KeyHash {
    // Hashes of secrets stay out of logs too.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({}, …)", self.kind())
    }
}

/// `$2a$`/`$2b$`/`$2x$`/`$2y$`, a two-digit cost, `$`, 53 characters.
pub fn is_bcrypt(h: &str) -> bool {
    let b = h.as_bytes();
    b.len() == 60
        && b[0] == b'$'
        && b[1] == b'2'
        && matches!(b[2], b'a' | b'b' | b'x' | b'y')
        && b[3] == b'$'
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && b[6] == b'$'
}

/// Headscale's key alphabet (base64 URL-safe, no padding).
pub fn is_base64_url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Headscale ≥ 0.28's `<kind prefix><12 chars>-<64 chars>`, split by
/// position because the alphabet contains `-`.
pub fn headscale_prefixed(text: &str, kind_prefix: &str) -> Option<(String, String)> {
    let rest = text.strip_prefix(kind_prefix)?;
    if rest.len() != 12 + 1 + 64 || !rest.is_char_boundary(12) || !rest.is_char_boundary(13) {
        return None;
    }
    let (prefix, secret) = (&rest[..12], &rest[13..]);
    (rest.as_bytes()[12] == b'-' && is_base64_url(prefix) && is_base64_url(secret))
        .then(|| (prefix.to_string(), secret.to_string()))
}

pub struct Secret<K> {
    pub prefix: String,
    secret: String,
    kind: PhantomData<K>,
}

impl<K> Clone for Secret<K> {
    fn clone(&self) -> Self {
        Secret {
            prefix: self.prefix.clone(),
            secret: self.secret.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> PartialEq for Secret<K> {
    fn eq(&self, other: &Self) -> bool {
        self.prefix == other.prefix && self.secret == other.secret
    }
}

impl<K> Eq for Secret<K> {}

impl<K: SecretKind> fmt::Debug for Secret<K> {
    // Never print the secret half, even in debug logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({}{}-…)", K::NAME, K::TEXT_PREFIX, self.prefix)
    }
}

impl<K: SecretKind> Secret<K> {
    /// Generates a fresh secret from the OS random source.
    pub fn generate() -> Self {
        let mut id = [0u8; 6];
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut id);
        rand::rngs::OsRng.fill_bytes(&mut secret);
        Secret {
            prefix: hex::encode(id),
            secret: hex::encode(secret),
            kind: PhantomData,
        }
    }

    /// Parses our text form or one of Headscale's (for imported keys);
    /// `None` for anything malformed.
    pub fn parse_any(text: &str) -> Option<Self> {
        Self::parse(text).or_else(|| {
            let (prefix, secret) = K::headscale_form(text.trim())?;
            Some(Secret {
                prefix,
                secret,
                kind: PhantomData,
            })
        })
    }

    /// Parses the text form; `None` for anything malformed.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.trim().strip_prefix(K::TEXT_PREFIX)?;
        let (prefix, secret) = rest.split_once('-')?;
        let hexy = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !hexy(prefix, 12) || !hexy(secret, 64) {
            return None;
        }
        Some(Secret {
            prefix: prefix.to_ascii_lowercase(),
            secret: secret.to_ascii_lowercase(),
            kind: PhantomData,
        })
    }

    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.secret.as_bytes()).into()
    }

    /// Whether this secret hashes to `stored`, in constant time.
    pub fn matches(&self, stored: &[u8; 32]) -> bool {
        bool::from(stored.ct_eq(&self.hash()))
    }

    /// Whether this secret matches a stored hash of either kind.
    pub fn verifies(&self, stored: &KeyHash) -> bool {
        stored.verify(&self.secret)
    }

    /// The full text form: shown to the operator exactly once.
    pub fn reveal(&self) -> String {
        format!("{}{}-{}", K::TEXT_PREFIX, self.prefix, self.secret)
    }
}
