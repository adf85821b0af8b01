//! The OAuth clients every token request and every API v2 request with an
//! access token is checked against, without a database query per request:
//! a snapshot of the table younger than a second is used as is, an older
//! one is replaced (one reload at a time; whoever waited finds it fresh).
//! A flood of bad client secrets or of tokens of unknown clients therefore
//! costs at most one query a second. Creating or deleting a client drops
//! the snapshot, so a deleted client's tokens are refused at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::admin::keycache::AuthError;
use crate::state::StateHandle;
use crate::types::OAuthClient;

const TTL: Duration = Duration::from_secs(1);

type Clients = Arc<HashMap<String, OAuthClient>>;

#[derive(Default)]
struct Snapshot {
    at: Option<Instant>,
    clients: Clients,
}

#[derive(Clone)]
pub struct ClientCache(Arc<Shared>);

struct Shared {
    state: StateHandle,
    snap: RwLock<Snapshot>,
    reload: tokio::sync::Mutex<()>,
    reads: AtomicU64,
}

impl ClientCache {
    pub fn new(state: StateHandle) -> ClientCache {
        ClientCache(Arc::new(Shared {
            state,
            snap: RwLock::default(),
            reload: tokio::sync::Mutex::new(()),
            reads: AtomicU64::new(0),
        }))
    }

    fn fresh(&self) -> Option<Clients> {
        let s = self.0.snap.read().unwrap_or_else(|e| e.into_inner());
        s.at.filter(|t| t.elapsed() < TTL)
            .map(|_| s.clients.clone())
    }

    /// The client with `client_id`, if it exists.
    pub async fn get(&self, client_id: &str) -> Result<Option<OAuthClient>, AuthError> {
        let clients = match self.fresh() {
            Some(c) => c,
            None => {
                let _one = self.0.reload.lock().await;
                match self.fresh() {
                    Some(c) => c,
                    None => self.load().await?,
                }
            }
        };
        Ok(clients.get(client_id).cloned())
    }

    async fn load(&self) -> Result<Clients, AuthError> {
        self.0.reads.fetch_add(1, Ordering::Relaxed);
        let list = self.0.state.list_oauth_clients().await.map_err(|e| {
            tracing::warn!(error = %e, "API v2: cannot read OAuth clients");
            AuthError::Unavailable
        })?;
        let clients: Clients =
            Arc::new(list.into_iter().map(|c| (c.client_id.clone(), c)).collect());
        let mut s = self.0.snap.write().unwrap_or_else(|e| e.into_inner());
        *s = Snapshot {
            at: Some(Instant::now()),
            clients: clients.clone(),
        };
        Ok(clients)
    }

    /// How many times the clients were read from the database.
    pub fn database_reads(&self) -> u64 {
        self.0.reads.load(Ordering::Relaxed)
    }

    /// Forgets the snapshot: the next check reads the clients again.
    pub fn invalidate(&self) {
        let mut s = self.0.snap.write().unwrap_or_else(|e| e.into_inner());
        *s = Snapshot::default();
    }
}
