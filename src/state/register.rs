//! Node registration (`/machine/register`) as a state transition.
//!
//! Order of checks, mirroring what tailscaled sends (control.md §3.2):
//! 1. `Expiry` in the past ⇒ logout (ephemeral nodes are deleted).
//! 2. A known machine presenting its current, unexpired node key ⇒
//!    refresh, no key consumed — also when it repeats its auth key
//!    (container restarts re-run `tailscale up --authkey`).
//! 3. An auth key ⇒ validate and consume it *in the same database
//!    transaction* that writes (or, for a known machine with a new node
//!    key, re-logs in) the node.
//! 4. Otherwise ⇒ [`RegisterOutcome::NeedsLogin`]: the control handler
//!    starts an interactive login (`auth`), which an operator completes
//!    through [`StateHandle::register_pending`]. A new node key for a known
//!    machine (`tailscale up --force-reauth`, or the client's regeneration
//!    after its key expired) is such a login too: rotating without
//!    authentication would renew an expired key for free.
//!
//! Every login sets the node's key expiry from `node.expiry` (never for
//! tagged nodes) and, with `node.require_approval`, leaves a new node
//! unauthorized unless its key was preauthorized.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::change::Change;
use super::events::{Event, EventActor, EventKind};
use super::writer::Core;
use super::{Error, Result, StateHandle};
use crate::db::KeyUse;
use crate::types::node::normalize_tags;
use crate::types::{
    DnsLabel, MachinePublic, Node, NodeId, NodePublic, PreAuthKey, PreAuthSecret, User, UserId,
};

/// A registration request after wire decoding, with the Noise-authenticated
/// machine key.
#[derive(Debug, Clone)]
pub struct RegisterInput {
    pub machine_key: MachinePublic,
    pub node_key: NodePublic,
    pub old_node_key: Option<NodePublic>,
    pub auth_key: Option<String>,
    pub expiry: Option<DateTime<Utc>>,
    pub hostinfo: serde_json::Value,
    pub ephemeral: bool,
    pub version: i32,
}

#[derive(Debug, Clone)]
pub enum RegisterOutcome {
    /// Logged in; the node may start its map poll.
    Authorized { node: Arc<Node>, user: Arc<User> },
    /// Logout done (or nothing to log out).
    LoggedOut,
    /// Refused, with a message for the user.
    Refused(String),
    /// The machine must log in interactively; the text says why, for when
    /// no interactive login is offered.
    NeedsLogin(String),
}

/// Who a node is enrolled for, and with which key (none for an interactive
/// registration an operator approved).
struct Enrolment<'k> {
    user: UserId,
    tags: Vec<String>,
    ephemeral: bool,
    key: Option<&'k PreAuthKey>,
    /// The login's own key expiry (an OIDC token's), instead of
    /// `node.expiry`; never for a tagged node.
    expiry: Option<DateTime<Utc>>,
}

/// How an operator completes a pending interactive registration.
#[derive(Debug, Clone)]
pub enum PendingOwner {
    /// As a node of this user (`auth register --user`).
    User(UserId),
    /// As the machine's existing node, keeping its owner and tags
    /// (`auth approve` of a re-login).
    Existing,
}

impl StateHandle {
    pub async fn register(&self, input: RegisterInput) -> Result<RegisterOutcome> {
        self.run(move |core| Box::pin(async move { core.register(input).await }))
            .await
    }

    /// Enrols a pending interactive registration's machine for `owner`.
    pub async fn register_pending(
        &self,
        input: RegisterInput,
        owner: PendingOwner,
    ) -> Result<Arc<Node>> {
        self.run(move |core| {
            Box::pin(async move { core.register_pending(input, owner, None).await })
        })
        .await
    }
}

impl Core {
    async fn register(&mut self, req: RegisterInput) -> Result<RegisterOutcome> {
        let now = self.now();
        let existing = self.world.node_by_machine_key(&req.machine_key).cloned();

        // A node key may only ever belong to one machine.
        if let Some(other) = self.world.node_by_node_key(&req.node_key)
            && other.machine_key != req.machine_key
        {
            return Ok(RegisterOutcome::Refused(
                "node key is registered to a different machine".into(),
            ));
        }

        if req.expiry.is_some_and(|e| e <= now) {
            return self.logout(existing, &req, now).await;
        }

        if let Some(node) = &existing {
            let current = node.node_key == req.node_key;
            if current && !node.is_expired(now) {
                return self.authorized(node.id);
            }
            // A new node key (`OldNodeKey` = the current one) is a re-login:
            // it needs an auth key or an interactive login, below.
        }

        let Some(text) = req.auth_key.clone() else {
            let msg = match &existing {
                Some(n) if n.is_expired(now) => {
                    "node key expired or logged out; log in again with \
                     `tailscale up --authkey <key>`"
                }
                _ => {
                    "this control server (clawscale) needs a pre-auth key: \
                     `tailscale up --login-server <url> --authkey <key>`"
                }
            };
            return Ok(RegisterOutcome::NeedsLogin(msg.into()));
        };
        let key = match self.validate_key(&text, now).await? {
            Ok(k) => k,
            Err(msg) => return Ok(RegisterOutcome::Refused(msg)),
        };
        self.register_with_key(existing, key, req, now).await
    }

    /// Checks a presented key; `Ok(Err(msg))` is a refusal for the user.
    async fn validate_key(
        &self,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<PreAuthKey, String>> {
        const INVALID: &str = "invalid pre-auth key";
        let Some(secret) = PreAuthSecret::parse_any(text) else {
            return Ok(Err(INVALID.into()));
        };
        let Some(key) = self.db.find_preauth_key(&secret.prefix).await? else {
            return Ok(Err(INVALID.into()));
        };
        if !key.matches(&secret) {
            return Ok(Err(INVALID.into()));
        }
        if key.is_expired(now) {
            return Ok(Err("pre-auth key expired".into()));
        }
        if key.used && !key.reusable {
            return Ok(Err("pre-auth key already used".into()));
        }
        if self.world.user(key.user_id).is_none() {
            return Ok(Err(INVALID.into()));
        }
        Ok(Ok(key))
    }

    async fn register_with_key(
        &mut self,
        existing: Option<Arc<Node>>,
        key: PreAuthKey,
        req: RegisterInput,
        now: DateTime<Utc>,
    ) -> Result<RegisterOutcome> {
        let tags = match self.claimed_tags(&key, &req.hostinfo) {
            Ok(t) => t,
            Err(msg) => return Ok(RegisterOutcome::Refused(msg)),
        };
        let owner = Enrolment {
            user: key.user_id,
            tags,
            ephemeral: key.ephemeral || req.ephemeral,
            key: Some(&key),
            expiry: None,
        };
        let before = existing.clone();
        let node = match self.enroll(existing, owner, &req, now).await? {
            Ok(n) => n,
            Err(refusal) => return Ok(refusal),
        };
        self.emit(Event {
            kind: if before.is_none() {
                EventKind::Registered
            } else {
                EventKind::LoggedIn
            },
            actor: EventActor::Node,
            before,
            after: Some(node.clone()),
        });
        self.authorized(node.id)
    }

    /// Creates (or, for a known machine, logs in again) the node `req`
    /// describes for `owner`, in one database transaction that also consumes
    /// the owner's key if there is one. `Ok(Err(_))` is a refusal for the
    /// client.
    async fn enroll(
        &mut self,
        existing: Option<Arc<Node>>,
        owner: Enrolment<'_>,
        req: &RegisterInput,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<Arc<Node>, RegisterOutcome>> {
        let hostname = req
            .hostinfo
            .get("Hostname")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        let Enrolment {
            user,
            tags,
            ephemeral,
            key,
            expiry,
        } = owner;
        let expiry = expiry
            .filter(|_| tags.is_empty())
            .or_else(|| self.login_expiry(&tags, now));
        let (node, new) = match existing {
            // Same machine logging in again (after logout or expiry): it keeps
            // its id, name and addresses.
            Some(old) => {
                let mut n = (*old).clone();
                n.node_key = req.node_key;
                n.expiry = expiry;
                n.user_id = user;
                n.tags = tags;
                n.ephemeral = ephemeral;
                n.auth_key_id = key.map(|k| k.id);
                n.hostinfo = req.hostinfo.clone().into();
                n.hostname = hostname;
                n.cap_version = req.version;
                (n, false)
            }
            None => {
                let label = DnsLabel::from_hostname(&hostname);
                let given_name = label.unique(|n| self.world.name_taken(n, None));
                let ipv4 = self
                    .opts
                    .ipam
                    .next_v4(self.world.ip_floor.v4, |ip| self.world.ip_taken(ip))
                    .map_err(|e| Error::FailedPrecondition(e.to_string()))?;
                let ipv6 = self
                    .opts
                    .ipam
                    .next_v6(self.world.ip_floor.v6, |ip| self.world.ip_taken(ip))
                    .map_err(|e| Error::FailedPrecondition(e.to_string()))?;
                let n = Node {
                    id: NodeId(0),
                    machine_key: req.machine_key,
                    node_key: req.node_key,
                    disco_key: Default::default(),
                    hostname,
                    given_name,
                    user_id: user,
                    tags,
                    ipv4,
                    ipv6,
                    endpoints: vec![],
                    home_derp: 0,
                    hostinfo: req.hostinfo.clone().into(),
                    expiry,
                    ephemeral,
                    auth_key_id: key.map(|k| k.id),
                    cap_version: req.version,
                    created_at: now,
                    last_seen: None,
                    approved_routes: vec![],
                    authorized: !self.opts.login.require_approval
                        || key.is_some_and(|k| k.preauthorized),
                };
                (n, true)
            }
        };
        let node = self.auto_approve(node);
        let key_use = key.map(|k| KeyUse {
            id: k.id,
            reusable: k.reusable,
        });
        let id = match self.db.register_node(key_use, &node, new).await {
            Ok(id) => id,
            Err(e @ crate::db::Error::KeyAlreadyUsed) => {
                return Ok(Err(RegisterOutcome::Refused(e.to_string())));
            }
            Err(e) => return Err(e.into()),
        };
        let node = Node { id, ..node };
        tracing::info!(
            node = %id,
            name = %node.given_name,
            user = %node.user_id,
            ephemeral = node.ephemeral,
            new,
            "node registered"
        );
        let node = Arc::new(node);
        let mut w = self.draft();
        w.put_node(node.clone());
        if new && self.opts.ipam.strategy == super::ipam::Strategy::Sequential {
            // The sequential walk handed out the lowest free addresses.
            w.ip_floor.taken_lowest(node.ipv4, node.ipv6);
        }
        self.publish(w, Change::upsert(id));
        Ok(Ok(node))
    }

    /// The key expiry a login gives a node with `tags`: `node.expiry` from
    /// now for a user's node, none for a tagged one.
    fn login_expiry(&self, tags: &[String], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !tags.is_empty() {
            return None;
        }
        self.opts
            .login
            .node_expiry
            .and_then(|d| now.checked_add_signed(d))
    }

    /// Enrols the machine of a pending interactive registration (an
    /// operator approved it: `admin::registrations`). Recorded by the
    /// operator's audit entry, so no event.
    /// `expiry`: the login's own key expiry (see [`Enrolment`]).
    pub(super) async fn register_pending(
        &mut self,
        req: RegisterInput,
        owner: PendingOwner,
        expiry: Option<DateTime<Utc>>,
    ) -> Result<Arc<Node>> {
        let now = self.now();
        if let Some(other) = self.world.node_by_node_key(&req.node_key)
            && other.machine_key != req.machine_key
        {
            return Err(Error::Conflict(
                "node key is registered to a different machine".into(),
            ));
        }
        let existing = self.world.node_by_machine_key(&req.machine_key).cloned();
        let (user, tags) = match (owner, &existing) {
            (PendingOwner::User(u), _) => (u, vec![]),
            (PendingOwner::Existing, Some(n)) => (n.user_id, n.tags.clone()),
            (PendingOwner::Existing, None) => {
                return Err(Error::FailedPrecondition(
                    "this machine has no node yet: register it for a user with \
                     `clawscale auth register --auth-id ID --user USER`"
                        .into(),
                ));
            }
        };
        if self.world.user(user).is_none() {
            return Err(Error::NotFound("user not found".into()));
        }
        let owner = Enrolment {
            user,
            tags,
            ephemeral: req.ephemeral,
            key: None,
            expiry,
        };
        match self.enroll(existing, owner, &req, now).await? {
            Ok(node) => Ok(node),
            Err(RegisterOutcome::Refused(msg)) => Err(Error::FailedPrecondition(msg)),
            Err(_) => Err(Error::Internal(
                "registration neither done nor refused".into(),
            )),
        }
    }

    /// The tags a registration asks for: the key's own plus any the client
    /// requests (`tailscale up --advertise-tags`, Hostinfo.RequestTags). The
    /// key's owner must own every one under the policy's `tagOwners`;
    /// otherwise the registration is refused with a message the client shows.
    fn claimed_tags(
        &self,
        key: &PreAuthKey,
        hostinfo: &serde_json::Value,
    ) -> std::result::Result<Vec<String>, String> {
        let requested: Vec<&str> = hostinfo
            .get("RequestTags")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|t| t.as_str()).collect())
            .unwrap_or_default();
        let tags = normalize_tags(key.tags.iter().map(String::as_str).chain(requested))?;
        if tags.is_empty() {
            return Ok(tags);
        }
        let user = self
            .world
            .user(key.user_id)
            .ok_or_else(|| "invalid pre-auth key".to_string())?;
        self.world
            .policy
            .check_tags(user, &key.tags, &tags)
            .map_err(|e| format!("requested tags are not permitted: {e}"))?;
        Ok(tags)
    }

    async fn logout(
        &mut self,
        existing: Option<Arc<Node>>,
        req: &RegisterInput,
        now: DateTime<Utc>,
    ) -> Result<RegisterOutcome> {
        let Some(node) = existing.filter(|n| n.node_key == req.node_key) else {
            return Ok(RegisterOutcome::LoggedOut);
        };
        if node.ephemeral {
            tracing::info!(node = %node.id, "ephemeral node logged out; removing it");
            self.delete_node(node.id).await?;
            self.emit(Event {
                kind: EventKind::Deleted,
                actor: EventActor::Node,
                before: Some(node),
                after: None,
            });
            return Ok(RegisterOutcome::LoggedOut);
        }
        let mut n = (*node).clone();
        n.expiry = Some(now);
        let id = n.id;
        self.commit_node(n, Change::upsert(id)).await?;
        self.emit(Event {
            kind: EventKind::LoggedOut,
            actor: EventActor::Node,
            before: Some(node),
            after: self.world.node(id).cloned(),
        });
        tracing::info!(node = %id, "node logged out");
        Ok(RegisterOutcome::LoggedOut)
    }

    fn authorized(&self, id: NodeId) -> Result<RegisterOutcome> {
        let node = self
            .world
            .node(id)
            .cloned()
            .ok_or_else(|| Error::Internal("registered node vanished".into()))?;
        let user = self
            .world
            .user(node.user_id)
            .cloned()
            .ok_or_else(|| Error::Internal("node owner vanished".into()))?;
        Ok(RegisterOutcome::Authorized { node, user })
    }
}
