//! API v2 access tokens: stateless, signed, short-lived. A token names its
//! client, its expiry and its scopes, and carries an HMAC-SHA256 over them
//! under the server's token key, so checking one costs no database query:
//! the MAC (compared in constant time) proves the server issued it, the
//! expiry bounds its life to an hour (Tailscale's), and the client is
//! looked up in the bounded client cache so a deleted client's tokens stop
//! working at once.
//!
//! Text form: `cstoken-<client id>-<expiry, unix seconds, hex>-<scope bits,
//! hex>-<nonce, 16 hex>-<MAC, 64 hex>`.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::types::ScopeSet;

const PREFIX: &str = "cstoken-";

/// Longest text worth parsing (a real token is about 120 characters).
const MAX_LEN: usize = 200;

/// How long a token lives (Tailscale's access tokens: one hour).
pub const LIFETIME: chrono::Duration = chrono::Duration::hours(1);

/// The key tokens are signed with. The server derives it from its Noise
/// private key (`app`), so tokens survive restarts without another secret
/// on disk.
#[derive(Clone)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    pub fn new(bytes: [u8; 32]) -> TokenKey {
        TokenKey(bytes)
    }

    /// A key known only to this process (tests; tokens die with it).
    pub fn random() -> TokenKey {
        let mut b = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut b);
        TokenKey(b)
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length")
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(…)")
    }
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub client_id: String,
    pub expires: DateTime<Utc>,
    pub scopes: ScopeSet,
}

/// Signs a token for `client_id` with `scopes`, valid until `expires`.
pub fn issue(key: &TokenKey, client_id: &str, scopes: ScopeSet, expires: DateTime<Utc>) -> String {
    let mut nonce = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let body = format!(
        "{PREFIX}{client_id}-{:x}-{:x}-{}",
        expires.timestamp(),
        scopes.bits(),
        hex::encode(nonce)
    );
    let mut mac = key.mac();
    mac.update(body.as_bytes());
    format!("{body}-{}", hex::encode(mac.finalize().into_bytes()))
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not a token of ours, or not signed by our key.
    Invalid,
    Expired,
}

/// Whether `text` looks like an access token (as opposed to an API key).
pub fn is_token(text: &str) -> bool {
    text.starts_with(PREFIX)
}

/// Checks a presented token: its form, its MAC (constant time), then its
/// expiry against `now`.
pub fn verify(key: &TokenKey, text: &str, now: DateTime<Utc>) -> Result<Claims, Refused> {
    if text.len() > MAX_LEN {
        return Err(Refused::Invalid);
    }
    let rest = text.strip_prefix(PREFIX).ok_or(Refused::Invalid)?;
    let (body_rest, mac_hex) = rest.rsplit_once('-').ok_or(Refused::Invalid)?;
    let tag = hex::decode(mac_hex).map_err(|_| Refused::Invalid)?;
    let mut mac = key.mac();
    mac.update(PREFIX.as_bytes());
    mac.update(body_rest.as_bytes());
    mac.verify_slice(&tag).map_err(|_| Refused::Invalid)?;
    // Signed by us: the fields are ours, but parse them defensively.
    let mut parts = body_rest.split('-');
    let (Some(client), Some(exp), Some(bits), Some(_nonce), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(Refused::Invalid);
    };
    let exp = i64::from_str_radix(exp, 16).map_err(|_| Refused::Invalid)?;
    let expires = DateTime::from_timestamp(exp, 0).ok_or(Refused::Invalid)?;
    let scopes = u32::from_str_radix(bits, 16)
        .ok()
        .and_then(ScopeSet::from_bits)
        .ok_or(Refused::Invalid)?;
    if expires <= now {
        return Err(Refused::Expired);
    }
    Ok(Claims {
        client_id: client.to_string(),
        expires,
        scopes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::OAuthScope;

    #[test]
    fn tokens_verify_until_they_expire() {
        let key = TokenKey::random();
        let now = Utc::now();
        let scopes = ScopeSet::new([OAuthScope::AuthKeys, OAuthScope::DevicesCore]);
        let t = issue(&key, "0123456789ab", scopes, now + LIFETIME);
        assert!(is_token(&t));
        assert!(t.len() < MAX_LEN, "{}", t.len());
        let c = verify(&key, &t, now).expect("valid");
        assert_eq!(c.client_id, "0123456789ab");
        assert_eq!(c.scopes, scopes);
        assert_eq!(c.expires.timestamp(), (now + LIFETIME).timestamp());
        assert_eq!(
            verify(&key, &t, now + LIFETIME + chrono::Duration::seconds(1)),
            Err(Refused::Expired)
        );
        // Two tokens for the same claims differ (the nonce).
        assert_ne!(t, issue(&key, "0123456789ab", scopes, now + LIFETIME));
    }

    #[test]
    fn forged_and_altered_tokens_are_refused() {
        let key = TokenKey::random();
        let now = Utc::now();
        let scopes = ScopeSet::new([OAuthScope::DnsRead]);
        let t = issue(&key, "0123456789ab", scopes, now + LIFETIME);
        // Another server's key.
        assert_eq!(verify(&TokenKey::random(), &t, now), Err(Refused::Invalid));
        // Widened scopes or a later expiry break the MAC.
        let all = ScopeSet::new(OAuthScope::ALL);
        let parts: Vec<&str> = t.split('-').collect();
        let widened = t.replacen(
            &format!("-{}-", parts[3]),
            &format!("-{:x}-", all.bits()),
            1,
        );
        assert_ne!(widened, t);
        assert_eq!(verify(&key, &widened, now), Err(Refused::Invalid));
        let later = t.replacen(parts[2], &format!("{:x}", i64::MAX / 2), 1);
        assert_eq!(verify(&key, &later, now), Err(Refused::Invalid));
        for bad in [
            "",
            "cstoken-",
            "cstoken-x-y",
            "cskey-api-0123456789ab-00",
            &"cstoken-a".repeat(40),
        ] {
            assert_eq!(verify(&key, bad, now), Err(Refused::Invalid), "{bad:?}");
        }
    }
}
