//! Pre-auth keys. The secret is shown once at creation and stored only as a
//! SHA-256 hash: keys carry 256 bits of randomness, so a fast hash is as good
//! as a slow one here (Headscale's bcrypt cost ~75 ms per check and dominated
//! its CPU), and lookups go by a public id prefix so the hash comparison is a
//! single constant-time check.
//!
//! Text form: `cskey-auth-<id:12 hex>-<secret:64 hex>`.

use super::secret::{KeyHash, Secret, SecretKind, headscale_prefixed};
use super::{PreAuthKeyId, UserId};
use chrono::{DateTime, Utc};

const TEXT_PREFIX: &str = "cskey-auth-";

#[derive(Debug, Clone, PartialEq)]
pub struct PreAuthKey {
    pub id: PreAuthKeyId,
    /// Public lookup id (12 hex digits), also shown in listings.
    pub prefix: String,
    pub hash: KeyHash,
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
        secret.verifies(&self.hash)
    }
}

/// A parsed, presented key: public prefix plus secret part.
/// Marks PreAuthSecret texts (`cskey-auth-…`).
#[derive(Debug)]
pub enum PreAuthKind {}

impl SecretKind for PreAuthKind {
    const TEXT_PREFIX: &'static str = TEXT_PREFIX;
    const NAME: &'static str = "PreAuthSecret";

    /// Headscale ≥ 0.28's `hskey-auth-<12>-<64>` (bcrypt of the last part),
    /// and the 48 hex digits Headscale < 0.28 issued and stored in clear:
    /// imported as prefix = the first 12 digits, secret = the other 36
    /// (stored as SHA-256 like ours).
    fn headscale_form(text: &str) -> Option<(String, String)> {
        if let Some(split) = headscale_prefixed(text, "hskey-auth-") {
            return Some(split);
        }
        split_legacy_headscale(text)
    }
}

/// A Headscale < 0.28 pre-auth key (48 hex digits) as prefix and secret.
pub fn split_legacy_headscale(text: &str) -> Option<(String, String)> {
    (text.len() == 48 && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| (text[..12].to_string(), text[12..].to_string()))
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
            hash: s.hash().into(),
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
