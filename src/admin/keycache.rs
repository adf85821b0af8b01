//! API key checks for every HTTP and gRPC transport (the admin API, whois),
//! without a database query per request: keys are read from the database (through the state writer) into
//! an in-memory snapshot. A snapshot younger than a second is used as is; a
//! snapshot one to two seconds old is still used while a background task
//! reads a new one, so requests never wait for the database in steady use;
//! an older one (after an idle spell), or one that lacks the presented key
//! and is over a second old, is replaced before answering. A created key is
//! thus accepted within a second, an expired or deleted key refused within
//! two, and a flood of bogus keys costs at most one query per second.
//! Expiring or deleting a key through the admin operations drops the
//! snapshot ([`KeyCache::invalidate`]), so such a key is refused at once.
//!
//! The secret is compared in constant time (`ApiKey::matches`) and never
//! logged; only the public prefix may appear in logs.
//!
//! Keys imported from Headscale are bcrypt hashes (`KeyHash::Bcrypt`), which
//! cost ~75 ms of CPU per check at Headscale's cost factor: a secret that
//! passed bcrypt once is remembered as its SHA-256 (per key, so at most one
//! entry per imported key) and later requests with it cost what our own
//! keys cost. Wrong secrets against an imported key pay bcrypt every time,
//! as they do in Headscale.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::state::StateHandle;
use crate::types::{ApiKey, ApiSecret, KeyHash, Scope};

/// How stale the snapshot may get.
const TTL: Duration = Duration::from_secs(1);

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("API key required (Authorization: Bearer <key>)")]
    Missing,
    #[error("invalid API key")]
    Invalid,
    #[error("API key expired")]
    Expired,
    #[error("API key scope does not allow this")]
    Scope,
    #[error("API keys cannot be checked right now")]
    Unavailable,
}

#[derive(Default)]
struct Snapshot {
    at: Option<Instant>,
    keys: Arc<HashMap<String, ApiKey>>,
}

type Keys = Arc<HashMap<String, ApiKey>>;

/// The snapshot and its single-flight reload, shared with the background
/// refresh task.
struct Shared {
    state: StateHandle,
    snap: RwLock<Snapshot>,
    reload: tokio::sync::Mutex<()>,
    /// A background reload is under way.
    refreshing: AtomicBool,
    /// Database reads so far (for tests and bounds).
    reads: std::sync::atomic::AtomicU64,
    /// Imported (bcrypt) keys' secrets that passed bcrypt: prefix →
    /// (bcrypt hash, SHA-256 of the secret).
    bcrypt_ok: std::sync::Mutex<HashMap<String, (String, [u8; 32])>>,
}

impl Shared {
    /// The snapshot and its age (`None` before the first read).
    fn current(&self) -> Option<(Keys, Duration)> {
        let s = self.snap.read().unwrap_or_else(|e| e.into_inner());
        s.at.map(|t| (s.keys.clone(), t.elapsed()))
    }

    /// Reads the keys unless someone else did while we waited for the lock
    /// (a snapshot younger than `fresher_than` is taken as is).
    async fn reload(&self, fresher_than: Duration) -> Result<Keys, AuthError> {
        let _one = self.reload.lock().await;
        if let Some((k, age)) = self.current()
            && age < fresher_than
        {
            return Ok(k);
        }
        self.reads.fetch_add(1, Ordering::Relaxed);
        let list = self.state.list_api_keys().await.map_err(|e| {
            tracing::warn!(error = %e, "whois: cannot read API keys");
            AuthError::Unavailable
        })?;
        let keys: Keys = Arc::new(list.into_iter().map(|k| (k.prefix.clone(), k)).collect());
        let mut s = self.snap.write().unwrap_or_else(|e| e.into_inner());
        *s = Snapshot {
            at: Some(Instant::now()),
            keys: keys.clone(),
        };
        Ok(keys)
    }
}

#[derive(Clone)]
pub struct KeyCache {
    shared: Arc<Shared>,
}

impl KeyCache {
    pub fn new(state: StateHandle) -> Self {
        KeyCache {
            shared: Arc::new(Shared {
                state,
                snap: RwLock::new(Snapshot::default()),
                reload: tokio::sync::Mutex::new(()),
                refreshing: AtomicBool::new(false),
                reads: Default::default(),
                bcrypt_ok: Default::default(),
            }),
        }
    }

    /// Starts one background reload unless one is running.
    fn refresh_in_background(&self) {
        if self.shared.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = self.shared.clone();
        tokio::spawn(async move {
            // A failure is logged by `reload`; the next request retries.
            let _ = shared.reload(TTL).await;
            shared.refreshing.store(false, Ordering::Release);
        });
    }

    /// The keys to check `prefix` against.
    async fn keys(&self, prefix: &str) -> Result<Keys, AuthError> {
        match self.shared.current() {
            Some((k, age)) if age < TTL => Ok(k),
            Some((k, age)) if age < 2 * TTL && k.contains_key(prefix) => {
                self.refresh_in_background();
                Ok(k)
            }
            _ => self.shared.reload(TTL).await,
        }
    }

    /// Checks the request's bearer key for `need`.
    pub async fn check(&self, headers: &HeaderMap, need: Scope) -> Result<(), AuthError> {
        let secret = bearer(headers)?;
        let keys = self.keys(&secret.prefix).await?;
        verify_with(&keys, &secret, need, self.shared.state.now(), |k| {
            self.matches(k, &secret)
        })
    }

    /// `key.matches(secret)`, remembering bcrypt successes (module doc).
    fn matches(&self, key: &ApiKey, secret: &ApiSecret) -> bool {
        let KeyHash::Bcrypt(bcrypt) = &key.hash else {
            return key.matches(secret);
        };
        let digest: [u8; 32] = Sha256::digest(secret.reveal().as_bytes()).into();
        let remembered = |cache: &HashMap<String, (String, [u8; 32])>| {
            cache
                .get(&key.prefix)
                .is_some_and(|(h, d)| h == bcrypt && bool::from(d.ct_eq(&digest)))
        };
        let cache = &self.shared.bcrypt_ok;
        if remembered(&cache.lock().unwrap_or_else(|e| e.into_inner())) {
            return true;
        }
        if !key.matches(secret) {
            return false;
        }
        cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.prefix.clone(), (bcrypt.clone(), digest));
        true
    }

    /// Authenticates a presented key (its text, without `Bearer `): returns
    /// the valid, unexpired key, whatever its scope.
    pub async fn authenticate(&self, token: &str) -> Result<ApiKey, AuthError> {
        let secret = ApiSecret::parse_any(token).ok_or(AuthError::Invalid)?;
        let keys = self.keys(&secret.prefix).await?;
        let key = keys.get(&secret.prefix).ok_or(AuthError::Invalid)?;
        if !self.matches(key, &secret) {
            return Err(AuthError::Invalid);
        }
        if key.is_expired(self.shared.state.now()) {
            return Err(AuthError::Expired);
        }
        Ok(key.clone())
    }

    /// How many times the keys were read from the database.
    pub fn database_reads(&self) -> u64 {
        self.shared.reads.load(Ordering::Relaxed)
    }

    /// Forgets the snapshot: the next check reads the keys again.
    pub fn invalidate(&self) {
        let mut s = self.shared.snap.write().unwrap_or_else(|e| e.into_inner());
        *s = Snapshot::default();
    }
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer_token(value: &str) -> Result<&str, AuthError> {
    let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::Invalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Invalid);
    }
    Ok(token.trim())
}

/// The presented key, parsed.
pub fn bearer(headers: &HeaderMap) -> Result<ApiSecret, AuthError> {
    let v = headers
        .get(AUTHORIZATION)
        .ok_or(AuthError::Missing)?
        .to_str()
        .map_err(|_| AuthError::Invalid)?;
    ApiSecret::parse_any(bearer_token(v)?).ok_or(AuthError::Invalid)
}

/// The pure check against a key table.
pub fn verify(
    keys: &HashMap<String, ApiKey>,
    secret: &ApiSecret,
    need: Scope,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), AuthError> {
    verify_with(keys, secret, need, now, |k| k.matches(secret))
}

/// As [`verify`], with the secret check supplied.
fn verify_with(
    keys: &HashMap<String, ApiKey>,
    secret: &ApiSecret,
    need: Scope,
    now: chrono::DateTime<chrono::Utc>,
    matches: impl FnOnce(&ApiKey) -> bool,
) -> Result<(), AuthError> {
    let key = keys.get(&secret.prefix).ok_or(AuthError::Invalid)?;
    if !matches(key) {
        return Err(AuthError::Invalid);
    }
    if key.is_expired(now) {
        return Err(AuthError::Expired);
    }
    if !key.scope.allows(need) {
        return Err(AuthError::Scope);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use chrono::Utc;

    use super::*;

    fn table(scope: Scope, expired: bool) -> (HashMap<String, ApiKey>, ApiSecret) {
        let s = ApiSecret::generate();
        let now = Utc::now();
        let k = ApiKey {
            id: 1,
            prefix: s.prefix.clone(),
            hash: s.hash().into(),
            scope,
            expiration: expired.then(|| now - chrono::Duration::seconds(1)),
            last_seen: None,
            created_at: now,
        };
        (HashMap::from([(s.prefix.clone(), k)]), s)
    }

    #[test]
    fn verify_checks_secret_expiry_and_scope() {
        let now = Utc::now();
        let (keys, s) = table(Scope::Whois, false);
        assert_eq!(verify(&keys, &s, Scope::Whois, now), Ok(()));
        assert_eq!(verify(&keys, &s, Scope::Admin, now), Err(AuthError::Scope));
        // Same prefix, other secret.
        let forged = ApiSecret::parse(&format!("cskey-api-{}-{}", s.prefix, "0".repeat(64)))
            .expect("well-formed");
        assert_eq!(
            verify(&keys, &forged, Scope::Whois, now),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            verify(&keys, &ApiSecret::generate(), Scope::Whois, now),
            Err(AuthError::Invalid)
        );
        let (keys, s) = table(Scope::Admin, false);
        assert_eq!(verify(&keys, &s, Scope::Whois, now), Ok(()));
        let (keys, s) = table(Scope::Admin, true);
        assert_eq!(
            verify(&keys, &s, Scope::Whois, now),
            Err(AuthError::Expired)
        );
    }

    #[test]
    fn bearer_parsing() {
        let s = ApiSecret::generate();
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), Err(AuthError::Missing));
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {}", s.reveal())).unwrap(),
        );
        assert_eq!(bearer(&h), Ok(s.clone()));
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("bearer  {}", s.reveal())).unwrap(),
        );
        assert_eq!(bearer(&h).map(|x| x.prefix), Ok(s.prefix.clone()));
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {}", s.reveal())).unwrap(),
        );
        assert_eq!(bearer(&h), Err(AuthError::Invalid));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer nope"));
        assert_eq!(bearer(&h), Err(AuthError::Invalid));
    }
}
