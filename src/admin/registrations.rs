//! Pending interactive registrations and the operations that decide them
//! (`/auth/register|approve|reject`, `node/register`, `debug/node`).
//!
//! The store is filled by the login flow (a client that registers without a
//! key gets an auth URL naming an [`AuthId`] and waits on the receiver
//! [`Registrations::insert`] returns); an operator's decision completes the
//! wait with a [`Verdict`]. Entries live at most [`TTL`] and at most
//! [`MAX_PENDING`] are kept, so unauthenticated clients cannot grow it
//! without bound.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use rand::RngCore;
use tokio::sync::oneshot;

use super::{Admin, Caller, Done, Error, Mutation, NodeInfo, Resource, Result, snapshot};
use crate::state::RegisterInput;
use crate::types::{DnsLabel, MachinePublic, Node, NodeId, NodePublic};

/// How long a registration waits for an operator (Headscale's default
/// `tuning.register_cache_expiration`).
pub const TTL: Duration = Duration::from_secs(15 * 60);
/// Most pending registrations kept at once.
pub const MAX_PENDING: usize = 10_000;

const PREFIX: &str = "cskey-authreq-";
const RANDOM_HEX: usize = 24;

/// A pending registration's id: `cskey-authreq-` + 24 hex digits (the
/// shape of Headscale's `hskey-authreq-…`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuthId(String);

impl AuthId {
    pub fn generate() -> AuthId {
        let mut b = [0u8; RANDOM_HEX / 2];
        rand::rngs::OsRng.fill_bytes(&mut b);
        AuthId(format!("{PREFIX}{}", hex::encode(b)))
    }

    /// Parses an id; the error says what is wrong with it.
    pub fn parse(text: &str) -> std::result::Result<AuthId, String> {
        let Some(rest) = text.strip_prefix(PREFIX) else {
            return Err(format!("invalid auth id: expected prefix {PREFIX:?}"));
        };
        if rest.len() != RANDOM_HEX || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "invalid auth id: expected {PREFIX:?} and {RANDOM_HEX} hex digits"
            ));
        }
        Ok(AuthId(text.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AuthId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An operator's decision on a pending request.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Approved; for a registration, the node it created.
    Approved(Option<Arc<Node>>),
    Rejected(String),
}

pub(super) struct Pending {
    /// What the client asked to register (`None`: a request that only
    /// needs a verdict).
    registration: Option<RegisterInput>,
    pub(super) verdict: oneshot::Sender<Verdict>,
    since: Instant,
}

/// The pending-registration store; cheap to clone.
#[derive(Clone, Default)]
pub struct Registrations {
    pending: Arc<Mutex<HashMap<AuthId, Pending>>>,
}

impl Registrations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AuthId, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a pending request under `id`; the receiver completes with the
    /// operator's verdict (or is dropped when the request expires).
    pub fn insert(
        &self,
        id: AuthId,
        registration: Option<RegisterInput>,
    ) -> std::result::Result<oneshot::Receiver<Verdict>, Error> {
        let mut map = self.lock();
        map.retain(|_, p| p.since.elapsed() < TTL && !p.verdict.is_closed());
        if map.len() >= MAX_PENDING {
            return Err(Error::Unavailable(
                "too many pending registrations; try again later".into(),
            ));
        }
        let (tx, rx) = oneshot::channel();
        map.insert(
            id,
            Pending {
                registration,
                verdict: tx,
                since: Instant::now(),
            },
        );
        Ok(rx)
    }

    pub fn contains(&self, id: &AuthId) -> bool {
        self.lock().get(id).is_some_and(|p| p.since.elapsed() < TTL)
    }

    pub(super) fn take(&self, id: &AuthId) -> Result<Pending> {
        let mut map = self.lock();
        match map.remove(id) {
            Some(p) if p.since.elapsed() < TTL => Ok(p),
            _ => Err(Error::NotFound(format!(
                "no pending auth session for auth id {id}"
            ))),
        }
    }

    pub(super) fn registration(&self, id: &AuthId) -> Result<RegisterInput> {
        let map = self.lock();
        match map.get(id) {
            Some(p) if p.since.elapsed() < TTL => p.registration.clone().ok_or_else(|| {
                Error::InvalidArgument(format!("auth session {id} is not a node registration"))
            }),
            _ => Err(Error::NotFound(format!(
                "no pending registration for auth id {id}"
            ))),
        }
    }
}

fn object(id: &AuthId) -> String {
    format!("registration:{id}")
}

impl Admin {
    /// Registers the machine waiting under `id` as a node of the user named
    /// `user` and releases the waiting client.
    pub async fn register_pending(
        &self,
        caller: &Caller,
        id: &AuthId,
        user: &str,
    ) -> Result<NodeInfo> {
        let m = Mutation::new(Resource::Registrations, "node.register").on(object(id));
        self.mutate(caller, m, async {
            let owner = self
                .state()
                .world()
                .user_by_name(user)
                .map(|u| u.id)
                .ok_or_else(|| Error::NotFound(format!("user {user:?} not found")))?;
            let input = self.registrations().registration(id)?;
            let node = self.state().register_pending(input, owner).await?;
            if let Ok(p) = self.registrations().take(id) {
                let _ = p.verdict.send(Verdict::Approved(Some(node.clone())));
            }
            let done = self.node_done(node.id).await?;
            Ok(done.object(format!("node:{}", node.id)))
        })
        .await
    }

    /// Approves the pending request `id`.
    pub async fn approve_auth(&self, caller: &Caller, id: &AuthId) -> Result<()> {
        let m = Mutation::new(Resource::Registrations, "auth.approve").on(object(id));
        self.mutate(caller, m, async {
            let p = self.registrations().take(id)?;
            let _ = p.verdict.send(Verdict::Approved(None));
            Ok(Done::new(()))
        })
        .await
    }

    /// Rejects the pending request `id`.
    pub async fn reject_auth(&self, caller: &Caller, id: &AuthId) -> Result<()> {
        let m = Mutation::new(Resource::Registrations, "auth.reject").on(object(id));
        self.mutate(caller, m, async {
            let p = self.registrations().take(id)?;
            let _ = p
                .verdict
                .send(Verdict::Rejected("auth request rejected".into()));
            Ok(Done::new(()))
        })
        .await
    }

    /// Creates a pending registration for a made-up machine named `name`
    /// (advertising `routes`) owned by `user`, as Headscale's
    /// DebugCreateNode does; `register_pending` then makes it a node.
    /// Returns the would-be node (not stored yet).
    pub async fn debug_create_node(
        &self,
        caller: &Caller,
        user: &str,
        id: &AuthId,
        name: &str,
        routes: Vec<IpNet>,
    ) -> Result<NodeInfo> {
        let m = Mutation::new(Resource::Registrations, "node.debug_create").on(object(id));
        self.mutate(caller, m, async {
            let owner = self
                .state()
                .world()
                .user_by_name(user)
                .cloned()
                .ok_or_else(|| Error::NotFound(format!("user {user:?} not found")))?;
            let mut key = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut key);
            let machine_key = MachinePublic(key);
            rand::rngs::OsRng.fill_bytes(&mut key);
            let node_key = NodePublic(key);
            let routes: Vec<String> = routes.iter().map(ToString::to_string).collect();
            let hostinfo = serde_json::json!({
                "Hostname": name, "OS": "TestOS", "RoutableIPs": routes,
            });
            let input = RegisterInput {
                machine_key,
                node_key,
                old_node_key: None,
                auth_key: None,
                expiry: None,
                hostinfo: hostinfo.clone(),
                ephemeral: false,
                version: 0,
            };
            // Nobody waits on a made-up machine.
            drop(self.registrations().insert(id.clone(), Some(input))?);
            let now = self.now();
            let node = Node {
                id: NodeId(0),
                machine_key,
                node_key,
                disco_key: Default::default(),
                hostname: name.to_string(),
                given_name: DnsLabel::from_hostname(name),
                user_id: owner.id,
                tags: vec![],
                ipv4: None,
                ipv6: None,
                approved_routes: vec![],
                endpoints: vec![],
                home_derp: 0,
                hostinfo,
                expiry: None,
                ephemeral: false,
                auth_key_id: None,
                cap_version: 0,
                created_at: now,
                last_seen: None,
            };
            let after = snapshot::node(&node);
            Ok(Done::new(NodeInfo {
                node: Arc::new(node),
                owner: Some(owner),
                online: false,
                auth_key: None,
                certificates: vec![],
            })
            .after(after))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_ids_round_trip_and_reject_garbage() {
        let id = AuthId::generate();
        assert_eq!(id.as_str().len(), 38);
        assert_eq!(AuthId::parse(id.as_str()), Ok(id.clone()));
        for bad in [
            "",
            "not-a-valid-auth-id",
            "cskey-authreq-",
            "cskey-authreq-0123456789abcdef0123456",
            "cskey-authreq-0123456789abcdef012345678",
            "cskey-authreq-0123456789abcdef0123456z",
            "hskey-authreq-0123456789abcdef01234567",
        ] {
            assert!(AuthId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
