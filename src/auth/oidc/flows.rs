//! Logins in progress: what the callback needs to finish one, keyed by the
//! `state` sent to the identity provider. Each entry is taken once, so a
//! replayed or forged `state` finds nothing; entries expire with the
//! pending registration they serve, and their number is bounded.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openidconnect::{Nonce, PkceCodeVerifier};

use crate::admin::AuthId;
use crate::admin::registrations::{MAX_PENDING, TTL};

/// How long a login may take at the identity provider.
pub const FLOW_TTL: Duration = TTL;

pub struct Flow {
    pub auth_id: AuthId,
    pub nonce: Nonce,
    pub pkce: Option<PkceCodeVerifier>,
    since: Instant,
}

impl Flow {
    pub fn new(auth_id: AuthId, nonce: Nonce, pkce: Option<PkceCodeVerifier>) -> Flow {
        Flow {
            auth_id,
            nonce,
            pkce,
            since: Instant::now(),
        }
    }
}

#[derive(Default)]
pub struct Flows {
    by_state: Mutex<HashMap<String, Flow>>,
}

impl Flows {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Flow>> {
        self.by_state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a flow; `false` when too many are in progress.
    pub fn insert(&self, state: String, flow: Flow) -> bool {
        let mut map = self.lock();
        map.retain(|_, f| f.since.elapsed() < FLOW_TTL);
        if map.len() >= MAX_PENDING {
            return false;
        }
        map.insert(state, flow);
        true
    }

    /// Removes and returns the live flow for `state`.
    pub fn take(&self, state: &str) -> Option<Flow> {
        self.lock()
            .remove(state)
            .filter(|f| f.since.elapsed() < FLOW_TTL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_is_taken_once() {
        let flows = Flows::default();
        let f = Flow::new(AuthId::generate(), Nonce::new_random(), None);
        assert!(flows.insert("s1".into(), f));
        assert!(flows.take("forged").is_none());
        assert!(flows.take("s1").is_some());
        assert!(flows.take("s1").is_none(), "replayed state");
    }
}
