//! STAND-IN, to be replaced by the interactive registration flow (issue 13
//! item 1, owned by the `login` work): just enough of it for OIDC to be
//! proven with real clients. A client registering without a key gets an
//! AuthURL pointing straight at the OIDC login (`/oidc/start/{auth_id}`);
//! its follow-up request waits for that login's verdict, after which the
//! ordinary registration path finds the enrolled node. Only wired when
//! `oidc` is configured.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::admin::registrations::{TTL, Verdict};
use crate::admin::{AuthId, Registrations};
use crate::state::RegisterInput;

#[derive(Clone)]
pub struct OidcLogins {
    registrations: Registrations,
    server_url: String,
    waiting: Arc<Mutex<HashMap<String, oneshot::Receiver<Verdict>>>>,
}

impl OidcLogins {
    pub fn new(registrations: Registrations, server_url: &str) -> OidcLogins {
        OidcLogins {
            registrations,
            server_url: server_url.trim_end_matches('/').to_string(),
            waiting: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Receiver<Verdict>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `input` as pending; the URL the person must open.
    pub fn begin(&self, input: RegisterInput) -> Option<String> {
        let id = AuthId::generate();
        let rx = self.registrations.insert(id.clone(), Some(input)).ok()?;
        let mut waiting = self.lock();
        // Entries whose registration expired (sender gone) go.
        waiting.retain(|_, rx| !matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Closed)));
        waiting.insert(id.to_string(), rx);
        Some(format!(
            "{}{}",
            self.server_url,
            crate::auth::oidc::start_path(&id)
        ))
    }

    /// Waits (at most the registration's lifetime) for the login behind
    /// the AuthURL `followup`.
    pub async fn wait(&self, followup: &str) {
        let id = followup.rsplit('/').next().unwrap_or_default();
        let rx = self.lock().remove(id);
        if let Some(rx) = rx {
            let _ = tokio::time::timeout(TTL, rx).await;
        }
    }
}
