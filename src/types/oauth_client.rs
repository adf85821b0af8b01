//! OAuth clients of API v2 (Tailscale's API): a client id, a secret shown
//! once and stored only as its SHA-256 hash, the scopes its access tokens
//! may carry and the tags the keys and devices it manages may carry.
//!
//! Secret text form: `tskey-client-<client id:12 hex>-<secret:64 hex>`, as
//! Tailscale's (`tskey-client-…`), so `tailscale up --auth-key
//! tskey-client-…` recognises it; the client id is part of the secret, so a
//! token request is decided by the secret alone (Tailscale ignores
//! `client_id` too, see `feature/oauthkey`).
//!
//! Scopes are Tailscale's names for the API parts clawscale serves
//! (<https://tailscale.com/kb/1623/trust-credentials>): `all`, `auth_keys`,
//! `devices:core`, `devices:routes`, `dns`, `policy_file`, each also with a
//! `:read` form that only reads.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::secret::{Secret, SecretKind};

/// One scope an OAuth client (and its tokens) may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OAuthScope {
    All,
    AllRead,
    AuthKeys,
    AuthKeysRead,
    DevicesCore,
    DevicesCoreRead,
    DevicesRoutes,
    DevicesRoutesRead,
    Dns,
    DnsRead,
    PolicyFile,
    PolicyFileRead,
}

impl OAuthScope {
    pub const ALL: [OAuthScope; 12] = [
        OAuthScope::All,
        OAuthScope::AllRead,
        OAuthScope::AuthKeys,
        OAuthScope::AuthKeysRead,
        OAuthScope::DevicesCore,
        OAuthScope::DevicesCoreRead,
        OAuthScope::DevicesRoutes,
        OAuthScope::DevicesRoutesRead,
        OAuthScope::Dns,
        OAuthScope::DnsRead,
        OAuthScope::PolicyFile,
        OAuthScope::PolicyFileRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OAuthScope::All => "all",
            OAuthScope::AllRead => "all:read",
            OAuthScope::AuthKeys => "auth_keys",
            OAuthScope::AuthKeysRead => "auth_keys:read",
            OAuthScope::DevicesCore => "devices:core",
            OAuthScope::DevicesCoreRead => "devices:core:read",
            OAuthScope::DevicesRoutes => "devices:routes",
            OAuthScope::DevicesRoutesRead => "devices:routes:read",
            OAuthScope::Dns => "dns",
            OAuthScope::DnsRead => "dns:read",
            OAuthScope::PolicyFile => "policy_file",
            OAuthScope::PolicyFileRead => "policy_file:read",
        }
    }

    /// Whether Tailscale requires a client with this scope to have tags
    /// (what it creates is owned by tags, never by a person).
    pub fn needs_tags(self) -> bool {
        matches!(
            self,
            OAuthScope::All | OAuthScope::AuthKeys | OAuthScope::DevicesCore
        )
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for OAuthScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OAuthScope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        OAuthScope::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = OAuthScope::ALL.iter().map(|x| x.as_str()).collect();
                format!("unknown scope {s:?} (known: {})", known.join(", "))
            })
    }
}

/// A set of scopes, as a bit set (cheap to copy and to carry in a token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ScopeSet(u32);

impl ScopeSet {
    pub fn new(scopes: impl IntoIterator<Item = OAuthScope>) -> ScopeSet {
        ScopeSet(scopes.into_iter().fold(0, |b, s| b | s.bit()))
    }

    /// The set encoded by [`ScopeSet::bits`]; unknown bits are refused.
    pub fn from_bits(bits: u32) -> Option<ScopeSet> {
        let known = ScopeSet::new(OAuthScope::ALL).0;
        (bits & !known == 0).then_some(ScopeSet(bits))
    }

    pub fn bits(self) -> u32 {
        self.0
    }

    pub fn contains(self, s: OAuthScope) -> bool {
        self.0 & s.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn is_subset(self, of: ScopeSet) -> bool {
        self.0 & !of.0 == 0
    }

    pub fn intersect(self, other: ScopeSet) -> ScopeSet {
        ScopeSet(self.0 & other.0)
    }

    pub fn iter(self) -> impl Iterator<Item = OAuthScope> {
        OAuthScope::ALL
            .into_iter()
            .filter(move |s| self.contains(*s))
    }

    /// Parses a list of names (each may hold several, split on spaces or
    /// commas: the token endpoint's `scope` is space-separated, the CLI's
    /// `--scopes` comma-separated).
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<ScopeSet, String> {
        let mut set = ScopeSet::default();
        for n in names {
            for part in n.split([' ', ',']).filter(|p| !p.is_empty()) {
                set = ScopeSet(set.0 | part.parse::<OAuthScope>()?.bit());
            }
        }
        Ok(set)
    }

    /// Space-separated names (OAuth's `scope` form).
    pub fn to_text(self) -> String {
        self.iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A stored OAuth client (never the secret).
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthClient {
    pub id: i64,
    /// The public client id (12 hex digits), part of the secret text.
    pub client_id: String,
    pub hash: [u8; 32],
    pub scopes: ScopeSet,
    /// Sorted `tag:` names.
    pub tags: Vec<String>,
    pub description: String,
    pub created_at: DateTime<Utc>,
}

impl OAuthClient {
    /// Constant-time comparison of a presented secret with the stored hash.
    pub fn matches(&self, secret: &OAuthSecret) -> bool {
        secret.matches(&self.hash)
    }
}

/// Marks OAuth client secrets (`tskey-client-…`).
#[derive(Debug)]
pub enum OAuthKind {}

impl SecretKind for OAuthKind {
    const TEXT_PREFIX: &'static str = "tskey-client-";
    const NAME: &'static str = "OAuthSecret";
}

pub type OAuthSecret = Secret<OAuthKind>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_names_round_trip() {
        for s in OAuthScope::ALL {
            assert_eq!(s.as_str().parse::<OAuthScope>(), Ok(s));
        }
        assert!("devices".parse::<OAuthScope>().is_err());
        assert!(
            "admin"
                .parse::<OAuthScope>()
                .unwrap_err()
                .contains("devices:core")
        );
    }

    #[test]
    fn scope_sets() {
        let s = ScopeSet::parse(["auth_keys,devices:core", "policy_file dns:read"]).unwrap();
        assert!(s.contains(OAuthScope::AuthKeys));
        assert!(s.contains(OAuthScope::DnsRead));
        assert!(!s.contains(OAuthScope::Dns));
        assert_eq!(s.to_text(), "auth_keys devices:core dns:read policy_file");
        assert_eq!(ScopeSet::from_bits(s.bits()), Some(s));
        assert_eq!(ScopeSet::from_bits(1 << 31), None);
        let small = ScopeSet::new([OAuthScope::AuthKeys]);
        assert!(small.is_subset(s));
        assert!(!s.is_subset(small));
        assert_eq!(s.intersect(small), small);
        assert!(ScopeSet::parse(["bogus"]).is_err());
        assert!(ScopeSet::parse([""]).unwrap().is_empty());
    }

    #[test]
    fn secrets_have_the_tailscale_form() {
        let s = OAuthSecret::generate();
        let text = s.reveal();
        assert!(text.starts_with("tskey-client-"), "{text}");
        assert_eq!(OAuthSecret::parse(&text), Some(s.clone()));
        assert!(!format!("{s:?}").contains(&text[26..]));
        assert!(OAuthSecret::parse("tskey-client-xxx").is_none());
    }
}
