//! Secrets handed to operators once and stored only as a hash: pre-auth
//! keys and API keys. Text form `<kind prefix><12 hex id>-<64 hex secret>`;
//! the id is stored in clear to find the row, the secret only as SHA-256,
//! and comparisons are constant-time.

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

    /// The full text form: shown to the operator exactly once.
    pub fn reveal(&self) -> String {
        format!("{}{}-{}", K::TEXT_PREFIX, self.prefix, self.secret)
    }
}
