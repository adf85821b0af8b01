//! API keys for clawscale's HTTP APIs (`/api/v1/whois`, `/api/v1/authorize`
//! and the whois TCP listener), managed like Headscale's API keys
//! (CreateApiKey/ListApiKeys/ExpireApiKey/DeleteApiKey).
//!
//! As with pre-auth keys (`types::preauth_key`), the secret is shown once and
//! stored only as its SHA-256 hash: it carries 256 bits of randomness, so a
//! fast hash loses nothing, and a lookup goes by the public prefix so the
//! secret check is a single constant-time comparison.
//!
//! Text form: `cskey-api-<prefix:12 hex>-<secret:64 hex>`, sent as
//! `Authorization: Bearer <key>`.
//!
//! Scopes are clawscale's own (Headscale keys are all-powerful): `whois`
//! may read identities (whois, authorize); `admin:read` may read everything
//! the admin API shows (users, nodes, keys' public parts, policy, audit) and
//! change nothing; `admin` may do everything and includes both. Keys created
//! without a scope are `admin`, which is what a Headscale client creating a
//! key expects.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::secret::{KeyHash, Secret, SecretKind, headscale_prefixed, is_base64_url};

const TEXT_PREFIX: &str = "cskey-api-";

/// What a key may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Read identities: whois and authorize.
    Whois,
    /// Read the admin API, change nothing.
    AdminRead,
    /// Everything (includes `Whois` and `AdminRead`).
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Whois => "whois",
            Scope::AdminRead => "admin:read",
            Scope::Admin => "admin",
        }
    }

    /// Whether a key of this scope may do what `needed` requires.
    pub fn allows(self, needed: Scope) -> bool {
        self == Scope::Admin || self == needed
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "whois" => Ok(Scope::Whois),
            "admin:read" => Ok(Scope::AdminRead),
            "admin" => Ok(Scope::Admin),
            other => Err(format!(
                "unknown API key scope {other:?} (expected \"whois\", \"admin:read\" or \"admin\")"
            )),
        }
    }
}

/// A stored API key (never the secret).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: i64,
    /// Public lookup id (12 hex digits), also shown in listings.
    pub prefix: String,
    pub hash: KeyHash,
    pub scope: Scope,
    pub expiration: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl ApiKey {
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expiration.is_some_and(|e| e <= now)
    }

    /// Constant-time comparison of a presented secret with the stored hash.
    pub fn matches(&self, secret: &ApiSecret) -> bool {
        secret.verifies(&self.hash)
    }
}

/// A presented or freshly generated key: public prefix plus secret part.
/// Marks ApiSecret texts (`cskey-api-…`).
#[derive(Debug)]
pub enum ApiKind {}

impl SecretKind for ApiKind {
    const TEXT_PREFIX: &'static str = TEXT_PREFIX;
    const NAME: &'static str = "ApiSecret";

    /// Headscale ≥ 0.28's `hskey-api-<12>-<64>` and the `<7>.<32>` of
    /// earlier releases (both bcrypt of the part after the prefix).
    fn headscale_form(text: &str) -> Option<(String, String)> {
        if let Some(split) = headscale_prefixed(text, "hskey-api-") {
            return Some(split);
        }
        let (prefix, secret) = text.split_once('.')?;
        (prefix.len() == 7 && secret.len() == 32 && is_base64_url(prefix) && is_base64_url(secret))
            .then(|| (prefix.to_string(), secret.to_string()))
    }
}

pub type ApiSecret = Secret<ApiKind>;

/// Listing form of a key: the prefix only.
pub fn masked(prefix: &str) -> String {
    format!("{TEXT_PREFIX}{prefix}-***")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &ApiSecret, scope: Scope) -> ApiKey {
        ApiKey {
            id: 1,
            prefix: s.prefix.clone(),
            hash: s.hash().into(),
            scope,
            expiration: None,
            last_seen: None,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn generate_parse_match() {
        let s = ApiSecret::generate();
        let text = s.reveal();
        assert!(text.starts_with("cskey-api-"));
        let parsed = ApiSecret::parse(&text).expect("own text form parses");
        assert_eq!(parsed, s);
        let k = key(&s, Scope::Whois);
        assert!(k.matches(&parsed));
        assert!(!k.matches(&ApiSecret::generate()));
        // The stored hash is SHA-256 of the secret half, not of the text.
        use sha2::{Digest, Sha256};
        assert_ne!(
            k.hash,
            KeyHash::Sha256(Sha256::digest(text.as_bytes()).into())
        );
    }

    #[test]
    fn parse_rejects_garbage_and_other_key_kinds() {
        for bad in [
            "",
            "cskey-api-",
            "cskey-api-0123456789ab",
            "cskey-api-0123456789ab-zz",
            "cskey-auth-0123456789ab-0000000000000000000000000000000000000000000000000000000000000000",
            "cskey-api-0123456789a-0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert!(ApiSecret::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let s = ApiSecret::generate();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains(&s.reveal()[30..]), "{dbg}");
        assert!(dbg.contains(&s.prefix));
    }

    #[test]
    fn scopes() {
        assert!(Scope::Admin.allows(Scope::Whois));
        assert!(Scope::Admin.allows(Scope::Admin));
        assert!(Scope::Whois.allows(Scope::Whois));
        assert!(!Scope::Whois.allows(Scope::Admin));
        assert!(!Scope::Whois.allows(Scope::AdminRead));
        assert!(Scope::Admin.allows(Scope::AdminRead));
        assert!(Scope::AdminRead.allows(Scope::AdminRead));
        assert!(!Scope::AdminRead.allows(Scope::Admin));
        assert!(!Scope::AdminRead.allows(Scope::Whois));
        assert_eq!("admin:read".parse::<Scope>(), Ok(Scope::AdminRead));
        assert_eq!(Scope::AdminRead.to_string(), "admin:read");
        assert_eq!("WHOIS".parse::<Scope>(), Ok(Scope::Whois));
        assert_eq!("admin".parse::<Scope>(), Ok(Scope::Admin));
        assert!("root".parse::<Scope>().is_err());
        assert_eq!(Scope::Whois.to_string(), "whois");
    }

    #[test]
    fn expiry() {
        let mut k = key(&ApiSecret::generate(), Scope::Admin);
        let now = Utc::now();
        assert!(!k.is_expired(now));
        k.expiration = Some(now);
        assert!(k.is_expired(now));
        k.expiration = Some(now + chrono::Duration::seconds(5));
        assert!(!k.is_expired(now));
    }
}
