//! Pre-auth keys. The secret is shown once at creation and stored only as a
//! SHA-256 hash: keys carry 256 bits of randomness, so a fast hash is as good
//! as a slow one here (Headscale's bcrypt cost ~75 ms per check and dominated
//! its CPU), and lookups go by a public id prefix so the hash comparison is a
//! single constant-time check.
//!
//! Text form: `cskey-auth-<id:12 hex>-<secret:64 hex>`.

use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{PreAuthKeyId, UserId};

const TEXT_PREFIX: &str = "cskey-auth-";

#[derive(Debug, Clone, PartialEq)]
pub struct PreAuthKey {
    pub id: PreAuthKeyId,
    /// Public lookup id (12 hex digits), also shown in listings.
    pub prefix: String,
    pub hash: [u8; 32],
    pub user_id: UserId,
    pub reusable: bool,
    pub ephemeral: bool,
    pub used: bool,
    pub tags: Vec<String>,
    pub expiration: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl PreAuthKey {
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expiration.is_some_and(|e| e <= now)
    }

    /// Constant-time comparison of a presented secret with the stored hash.
    pub fn matches(&self, secret: &PreAuthSecret) -> bool {
        bool::from(self.hash.ct_eq(&secret.hash()))
    }
}

/// A parsed, presented key: public prefix plus secret part.
#[derive(Clone, PartialEq, Eq)]
pub struct PreAuthSecret {
    pub prefix: String,
    secret: String,
}

impl std::fmt::Debug for PreAuthSecret {
    // Never print the secret half, even in debug logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PreAuthSecret({TEXT_PREFIX}{}-…)", self.prefix)
    }
}

impl PreAuthSecret {
    /// Generates a fresh key.
    pub fn generate() -> Self {
        let mut id = [0u8; 6];
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut id);
        rand::rngs::OsRng.fill_bytes(&mut secret);
        PreAuthSecret {
            prefix: hex::encode(id),
            secret: hex::encode(secret),
        }
    }

    /// Parses the text form; `None` for anything malformed.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.trim().strip_prefix(TEXT_PREFIX)?;
        let (prefix, secret) = rest.split_once('-')?;
        let hexy = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !hexy(prefix, 12) || !hexy(secret, 64) {
            return None;
        }
        Some(PreAuthSecret {
            prefix: prefix.to_ascii_lowercase(),
            secret: secret.to_ascii_lowercase(),
        })
    }

    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.secret.as_bytes()).into()
    }

    /// The full text form: shown to the operator exactly once.
    pub fn reveal(&self) -> String {
        format!("{TEXT_PREFIX}{}-{}", self.prefix, self.secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_parse_match() {
        let s = PreAuthSecret::generate();
        let text = s.reveal();
        assert!(text.starts_with("cskey-auth-"));
        let parsed = PreAuthSecret::parse(&text).unwrap();
        assert_eq!(parsed, s);
        let key = PreAuthKey {
            id: PreAuthKeyId(1),
            prefix: s.prefix.clone(),
            hash: s.hash(),
            user_id: UserId(1),
            reusable: false,
            ephemeral: false,
            used: false,
            tags: vec![],
            expiration: None,
            created_at: Utc::now(),
        };
        assert!(key.matches(&parsed));
        let other = PreAuthSecret::generate();
        assert!(!key.matches(&other));
    }

    #[test]
    fn debug_never_shows_secret() {
        let s = PreAuthSecret::generate();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains(&s.secret));
    }

    #[test]
    fn parse_rejects_malformed() {
        assert!(PreAuthSecret::parse("").is_none());
        assert!(PreAuthSecret::parse("cskey-auth-zz").is_none());
        assert!(
            PreAuthSecret::parse(&format!("cskey-auth-{}-{}", "a".repeat(12), "b".repeat(63)))
                .is_none()
        );
        assert!(
            PreAuthSecret::parse(&format!("hskey-auth-{}-{}", "a".repeat(12), "b".repeat(64)))
                .is_none()
        );
    }
}
