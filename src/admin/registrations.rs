//! Pending interactive registrations and the operations that decide them
//! (`/auth/register|approve|reject`, `node/register`, `debug/node`).
//!
//! The store is filled by the login flow (a client that registers without a
//! key gets an auth URL naming an [`AuthId`] and waits on the receiver
//! [`Registrations::insert`] returns); an operator's decision completes the
//! wait with a [`Verdict`]. Entries live at most their TTL
//! (`tuning.register_cache_expiration`, [`TTL`] by default), are used at
//! most once (a decision removes them), and at most [`MAX_PENDING`] are
//! kept, so unauthenticated clients cannot grow the store without bound.
//! With replicas the store is also kept in the database, so that any
//! replica may decide a request (`shared`).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use rand::RngCore;
use tokio::sync::oneshot;

use super::{Admin, Caller, Done, Error, Mutation, NodeInfo, Resource, Result, snapshot};
use crate::state::{PendingOwner, RegisterInput, StateHandle};

mod shared;
use crate::types::{DnsLabel, MachinePublic, Node, NodeId, NodePublic, UserId};
pub(in crate::admin) use shared::Expired;
pub use shared::WaitingClient;
/// How a request is named in the database, for tests that act on it as
/// another replica would.
#[cfg(test)]
pub(crate) use shared::hash as request_hash;

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

/// The decision on a pending request.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Approved by an operator; for a registration, the node it created.
    Approved(Option<Arc<Node>>),
    /// Approved by a person who proved at the identity provider to be this
    /// user (an SSH check; the waiter holds it against the source node).
    Vouched(UserId),
    Rejected(String),
}

pub(super) struct Pending {
    /// What the client asked to register (`None`: a request that only
    /// needs a verdict).
    registration: Option<RegisterInput>,
    pub(super) verdict: oneshot::Sender<Verdict>,
    since: Instant,
    /// The receiving end when nobody waits on the request (a made-up
    /// machine): held here so the entry stays pending until decided.
    _unwatched: Option<oneshot::Receiver<Verdict>>,
}

/// The pending-registration store; cheap to clone.
#[derive(Clone)]
pub struct Registrations {
    pending: Arc<Mutex<HashMap<AuthId, Pending>>>,
    /// How long an entry lives, in milliseconds (set once at start-up).
    ttl_ms: Arc<AtomicU64>,
    /// With replicas: the state whose database shares requests (`shared`).
    shared: Arc<OnceLock<StateHandle>>,
}

impl Default for Registrations {
    fn default() -> Self {
        Registrations {
            pending: Arc::default(),
            ttl_ms: Arc::new(AtomicU64::new(TTL.as_millis() as u64)),
            shared: Arc::default(),
        }
    }
}

impl Registrations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AuthId, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long a pending registration waits for its decision.
    pub fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms.load(Ordering::Relaxed))
    }

    /// Sets the TTL (`tuning.register_cache_expiration`).
    pub fn set_ttl(&self, ttl: Duration) {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.ttl_ms.store(ms.max(1), Ordering::Relaxed);
    }

    /// Records a pending request under `id`; the receiver completes with the
    /// operator's verdict (or is dropped when the request expires).
    pub fn insert(
        &self,
        id: AuthId,
        registration: Option<RegisterInput>,
    ) -> std::result::Result<oneshot::Receiver<Verdict>, Error> {
        self.insert_since(id, registration, Instant::now())
    }

    /// As `insert`, for a request that started at `since` (one taken over
    /// from another replica keeps its expiry).
    fn insert_since(
        &self,
        id: AuthId,
        registration: Option<RegisterInput>,
        since: Instant,
    ) -> std::result::Result<oneshot::Receiver<Verdict>, Error> {
        let ttl = self.ttl();
        let mut map = self.lock();
        map.retain(|_, p| p.since.elapsed() < ttl && !p.verdict.is_closed());
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
                since,
                _unwatched: None,
            },
        );
        Ok(rx)
    }

    /// Records a pending request nobody waits on (Headscale's debug node):
    /// it stays pending until decided or expired.
    pub fn insert_unwatched(
        &self,
        id: AuthId,
        registration: Option<RegisterInput>,
    ) -> std::result::Result<(), Error> {
        let rx = self.insert(id.clone(), registration)?;
        if let Some(p) = self.lock().get_mut(&id) {
            p._unwatched = Some(rx);
        }
        Ok(())
    }

    pub fn contains(&self, id: &AuthId) -> bool {
        let ttl = self.ttl();
        self.lock()
            .get(id)
            .is_some_and(|p| p.since.elapsed() < ttl && !p.verdict.is_closed())
    }

    /// What the pending registration `id` would register (for the login
    /// page), if it is still pending.
    pub fn peek(&self, id: &AuthId) -> Option<Option<RegisterInput>> {
        let ttl = self.ttl();
        self.lock()
            .get(id)
            .filter(|p| p.since.elapsed() < ttl && !p.verdict.is_closed())
            .map(|p| p.registration.clone())
    }

    /// Removes `id` (its waiter gave up or timed out).
    pub fn forget(&self, id: &AuthId) {
        self.lock().remove(id);
    }

    /// Decides `id` directly (tests of the waiting side).
    #[cfg(test)]
    pub fn decide_for_test(&self, id: &AuthId, verdict: Verdict) {
        if let Ok(p) = self.take(id) {
            let _ = p.verdict.send(verdict);
        }
    }

    pub(super) fn take(&self, id: &AuthId) -> Result<Pending> {
        let ttl = self.ttl();
        let mut map = self.lock();
        match map.remove(id) {
            Some(p) if p.since.elapsed() < ttl => Ok(p),
            _ => Err(Error::NotFound(format!(
                "no pending auth session for auth id {id}"
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
            self.complete(id, PendingOwner::User(owner)).await
        })
        .await
    }

    /// Takes the pending registration `id` (it is single-use), enrols its
    /// machine for `owner` and releases the waiting client.
    async fn complete(&self, id: &AuthId, owner: PendingOwner) -> Result<Done<NodeInfo>> {
        let regs = self.registrations();
        let mut claimed = regs.claim(id).await?;
        let Some(input) = claimed.registration.take() else {
            let refusal = Verdict::Rejected("auth session is not a node registration".into());
            claimed.settle(regs, refusal).await;
            return Err(Error::InvalidArgument(format!(
                "auth session {id} is not a node registration"
            )));
        };
        match self.state().register_pending(input, owner).await {
            Ok(node) => {
                claimed
                    .settle(regs, Verdict::Approved(Some(node.clone())))
                    .await;
                let done = self.node_done(node.id).await?;
                Ok(done.object(format!("node:{}", node.id)))
            }
            Err(e) => {
                claimed.settle(regs, Verdict::Rejected(e.to_string())).await;
                Err(e.into())
            }
        }
    }

    /// Approves the pending request `id`. A registration is completed for
    /// the machine's existing node (a re-login keeps its owner); a new
    /// machine needs [`Admin::register_pending`] and a user.
    pub async fn approve_auth(&self, caller: &Caller, id: &AuthId) -> Result<()> {
        let m = Mutation::new(Resource::Registrations, "auth.approve").on(object(id));
        self.mutate(caller, m, async {
            let machine = self
                .registrations()
                .peek_any(id)
                .await?
                .ok_or_else(|| {
                    Error::NotFound(format!("no pending auth session for auth id {id}"))
                })?
                .map(|r| r.machine_key);
            if let Some(machine) = machine {
                if self.state().world().node_by_machine_key(&machine).is_none() {
                    return Err(Error::FailedPrecondition(
                        "this machine has no node yet: register it for a user with \
                         `clawscale auth register --auth-id ID --user USER`"
                            .into(),
                    ));
                }
                let done = self.complete(id, PendingOwner::Existing).await?;
                let object = done.object.clone();
                let mut d = Done::new(());
                d.object = object;
                d.after = done.after;
                return Ok(d);
            }
            let regs = self.registrations();
            regs.claim(id)
                .await?
                .settle(regs, Verdict::Approved(None))
                .await;
            Ok(Done::new(()))
        })
        .await
    }

    /// Rejects the pending request `id`.
    pub async fn reject_auth(&self, caller: &Caller, id: &AuthId) -> Result<()> {
        let m = Mutation::new(Resource::Registrations, "auth.reject").on(object(id));
        self.mutate(caller, m, async {
            let regs = self.registrations();
            let refusal = Verdict::Rejected("auth request rejected".into());
            regs.claim(id).await?.settle(regs, refusal).await;
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
            self.registrations()
                .insert_unwatched(id.clone(), Some(input))?;
            self.registrations().share(id, None).await?;
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
                hostinfo: hostinfo.into(),
                expiry: None,
                ephemeral: false,
                auth_key_id: None,
                cap_version: 0,
                created_at: now,
                last_seen: None,
                authorized: true,
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

    #[test]
    fn an_unwatched_request_stays_pending_until_decided() {
        let r = Registrations::default();
        let id = AuthId::generate();
        r.insert_unwatched(id.clone(), None).unwrap();
        assert!(r.contains(&id));
        assert_eq!(r.peek(&id).map(|x| x.is_none()), Some(true));
        let watched = AuthId::generate();
        drop(r.insert(watched.clone(), None).unwrap());
        assert!(!r.contains(&watched), "a request whose waiter left is gone");
        assert!(r.take(&id).is_ok());
        assert!(!r.contains(&id));
    }
}
