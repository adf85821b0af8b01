//! Pre-auth keys. The secret is shown once at creation and stored only as a
//! SHA-256 hash: keys carry 256 bits of randomness, so a fast hash is as good
//! as a slow one here (Headscale's bcrypt cost ~75 ms per check and dominated
//! its CPU), and lookups go by a public id prefix so the hash comparison is a
//! single constant-time check.
//!
//! Text form: `cskey-auth-<id:12 hex>-<secret:64 hex>`.

use super::secret::{Secret, SecretKind};
use super::{PreAuthKeyId, UserId};
use chrono::{DateTime, Utc};

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
    /// Free text (API v2's `description`).
    pub description: String,
    /// API v2's `preauthorized`: kept and shown; every node is authorized
    /// until device approval exists.
    pub preauthorized: bool,
}

impl PreAuthKey {
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expiration.is_some_and(|e| e <= now)
    }

    /// Constant-time comparison of a presented secret with the stored hash.
    pub fn matches(&self, secret: &PreAuthSecret) -> bool {
        secret.matches(&self.hash)
    }
}

/// A parsed, presented key: public prefix plus secret part.
/// Marks PreAuthSecret texts (`cskey-auth-…`).
#[derive(Debug)]
pub enum PreAuthKind {}

impl SecretKind for PreAuthKind {
    const TEXT_PREFIX: &'static str = TEXT_PREFIX;
    const NAME: &'static str = "PreAuthSecret";
}

pub type PreAuthSecret = Secret<PreAuthKind>;

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
            description: String::new(),
            preauthorized: false,
        };
        assert!(key.matches(&parsed));
        let other = PreAuthSecret::generate();
        assert!(!key.matches(&other));
    }

    #[test]
    fn debug_never_shows_secret() {
        let s = PreAuthSecret::generate();
        let dbg = format!("{s:?}");
        let secret_half = s.reveal().rsplit('-').next().unwrap().to_string();
        assert!(!dbg.contains(&secret_half), "{dbg}");
        assert!(dbg.contains(&s.prefix), "{dbg}");
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
