//! Logins in progress: what the callback needs to finish one, keyed by the
//! `state` sent to the identity provider. Each entry is taken once, so a
//! replayed or forged `state` finds nothing; entries expire with the
//! pending registration they serve, and their number is bounded.
//!
//! A single server keeps them in memory. With replicas the browser comes
//! back through the load balancer, maybe to another replica, so they live
//! in the database instead (`oidc_flows`), taken once across replicas.
//! There a row is found by the SHA-256 of the `state` and its content is
//! sealed (ChaCha20-Poly1305) with a key derived from the `state`: the
//! auth id in it is a bearer value, and the table alone must finish no
//! login. Each key seals one message, so the AEAD nonce is constant.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce as AeadNonce};
use openidconnect::{Nonce, PkceCodeVerifier};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::admin::AuthId;
use crate::admin::registrations::{MAX_PENDING, TTL};
use crate::state::{self, StateHandle};

/// How long a login may take at the identity provider.
pub const FLOW_TTL: Duration = TTL;

/// Separates the sealing key from the row's lookup hash, both made from
/// the `state`.
const KEY_CONTEXT: &[u8] = b"clawscale oidc flow key v1\0";

pub struct Flow {
    pub auth_id: AuthId,
    /// Whether the login passes a held SSH check rather than registering
    /// a machine.
    pub check: bool,
    pub nonce: Nonce,
    pub pkce: Option<PkceCodeVerifier>,
    since: Instant,
}

impl Flow {
    pub fn new(auth_id: AuthId, check: bool, nonce: Nonce, pkce: Option<PkceCodeVerifier>) -> Flow {
        Flow {
            auth_id,
            check,
            nonce,
            pkce,
            since: Instant::now(),
        }
    }
}

/// A flow as sealed into the database.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    auth_id: String,
    check: bool,
    nonce: String,
    pkce: Option<String>,
}

fn lookup_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

fn cipher(state: &str) -> ChaCha20Poly1305 {
    let key = Sha256::new()
        .chain_update(KEY_CONTEXT)
        .chain_update(state.as_bytes())
        .finalize();
    ChaCha20Poly1305::new(Key::from_slice(&key))
}

fn seal(state: &str, flow: &Flow) -> state::Result<Vec<u8>> {
    let stored = Stored {
        auth_id: flow.auth_id.as_str().to_string(),
        check: flow.check,
        nonce: flow.nonce.secret().clone(),
        pkce: flow.pkce.as_ref().map(|v| v.secret().clone()),
    };
    let plain = serde_json::to_vec(&stored)
        .map_err(|e| state::Error::Internal(format!("encoding a login: {e}")))?;
    cipher(state)
        .encrypt(&AeadNonce::default(), plain.as_slice())
        .map_err(|_| state::Error::Internal("sealing a login failed".into()))
}

/// The flow sealed for `state`; an error when it does not open, which
/// only a row written for another `state` (or altered) can cause.
fn open(state: &str, sealed: &[u8]) -> state::Result<Flow> {
    let bad = |why: String| state::Error::Internal(format!("stored login unreadable: {why}"));
    let plain = cipher(state)
        .decrypt(&AeadNonce::default(), sealed)
        .map_err(|_| bad("it does not open with its state".into()))?;
    let s: Stored = serde_json::from_slice(&plain).map_err(|e| bad(e.to_string()))?;
    Ok(Flow::new(
        AuthId::parse(&s.auth_id).map_err(bad)?,
        s.check,
        Nonce::new(s.nonce),
        s.pkce.map(PkceCodeVerifier::new),
    ))
}

pub struct Flows {
    local: Mutex<HashMap<String, Flow>>,
    /// Set with replicas: then flows are kept in the database only.
    shared: Option<StateHandle>,
}

impl Flows {
    pub fn new(state: &StateHandle) -> Flows {
        Flows {
            local: Mutex::default(),
            shared: state.is_replicated().then(|| state.clone()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Flow>> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a flow; `false` when too many are in progress.
    pub async fn insert(&self, state: &str, flow: Flow) -> state::Result<bool> {
        if let Some(shared) = &self.shared {
            let sealed = seal(state, &flow)?;
            return shared
                .share_oidc_flow(&lookup_hash(state), &sealed, FLOW_TTL, MAX_PENDING)
                .await;
        }
        let mut map = self.lock();
        map.retain(|_, f| f.since.elapsed() < FLOW_TTL);
        if map.len() >= MAX_PENDING {
            return Ok(false);
        }
        map.insert(state.to_string(), flow);
        Ok(true)
    }

    /// Removes and returns the live flow for `state`.
    pub async fn take(&self, state: &str) -> state::Result<Option<Flow>> {
        if let Some(shared) = &self.shared {
            return match shared.take_shared_oidc_flow(&lookup_hash(state)).await? {
                Some(sealed) => open(state, &sealed).map(Some),
                None => Ok(None),
            };
        }
        Ok(self
            .lock()
            .remove(state)
            .filter(|f| f.since.elapsed() < FLOW_TTL))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_flow_is_taken_once() {
        let fx = crate::admin::testing::fixture().await;
        let flows = Flows::new(&fx.state);
        let f = Flow::new(AuthId::generate(), false, Nonce::new_random(), None);
        assert!(flows.insert("s1", f).await.unwrap());
        assert!(flows.take("forged").await.unwrap().is_none());
        assert!(flows.take("s1").await.unwrap().is_some());
        assert!(flows.take("s1").await.unwrap().is_none(), "replayed state");
    }

    #[test]
    fn a_sealed_flow_opens_only_with_its_state_and_shows_nothing_without_it() {
        let id = AuthId::generate();
        let nonce = Nonce::new_random();
        let pkce = PkceCodeVerifier::new("verifier-0123456789".into());
        let flow = Flow::new(id.clone(), true, nonce.clone(), Some(pkce));
        let sealed = seal("the-state", &flow).unwrap();
        for secret in [id.as_str(), nonce.secret().as_str(), "verifier-0123456789"] {
            let text = String::from_utf8_lossy(&sealed);
            assert!(!text.contains(secret), "{secret} stored in the clear");
        }
        let back = open("the-state", &sealed).unwrap();
        assert_eq!(back.auth_id, id);
        assert!(back.check);
        assert_eq!(back.nonce.secret(), nonce.secret());
        assert_eq!(back.pkce.unwrap().secret(), "verifier-0123456789");
        assert!(open("another-state", &sealed).is_err());
        let mut altered = sealed.clone();
        altered[0] ^= 1;
        assert!(open("the-state", &altered).is_err());
        assert_ne!(lookup_hash("the-state"), lookup_hash("another-state"));
        assert!(!lookup_hash("the-state").contains("the-state"));
    }
}
