//! The tailnet policy as part of state: the accepted policy text, its
//! compiled form for the current World, and the transitions that replace it
//! (file reload, admin API) or that it must follow (nodes joining, changing,
//! leaving, users renamed).
//!
//! A policy is only ever swapped in whole: it is parsed, validated, checked
//! against its own `tests` for the current topology and compiled *before*
//! anything is stored or published, so a rejected policy leaves the previous
//! one serving. No policy at all means Headscale's default: everyone may
//! reach everyone.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::change::Change;
use super::writer::Core;
use super::{Error, Result, StateHandle, World};
use crate::policy::{Claimant, Compiled, Policy, PolicyError, TopoNode, TopoUser, Topology};
use crate::types::{Node, User};

/// The policy currently in force; part of every World.
#[derive(Debug, Clone, Default)]
pub struct PolicyState {
    /// The accepted source text, as written (comments and all).
    pub text: Option<Arc<str>>,
    pub policy: Option<Policy>,
    /// `policy` compiled for the World this state belongs to.
    pub compiled: Option<Compiled>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Where the serving policy comes from (`policy.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyStore {
    /// A file the server watches; the admin API may not overwrite it.
    File,
    /// The `policies` table, written through the admin API.
    Database,
}

/// The topology the policy engine compiles against.
pub fn topology(w: &World) -> Topology {
    Topology {
        users: Arc::new(w.users.values().map(|u| topo_user(u)).collect()),
        nodes: w
            .nodes
            .values()
            .map(|n| Arc::new(topo_node(w, n)))
            .collect(),
    }
}

/// The topology of `users` and `nodes` not yet in any World: an import
/// checks its policy against what it is about to write. No router has been
/// elected yet, so the engine picks primaries itself.
pub fn topology_of(users: &[User], nodes: &[Node]) -> Topology {
    Topology {
        users: Arc::new(users.iter().map(topo_user).collect()),
        nodes: nodes.iter().map(|n| Arc::new(unelected_node(n))).collect(),
    }
}

/// What user selectors resolve through: logins and identity-provider
/// groups (`oidc:NAME` members).
fn logins(w: &World) -> Vec<(u64, &str, &[String])> {
    w.users
        .values()
        .map(|u| (u.id.0 as u64, u.login_name(), u.groups.as_slice()))
        .collect()
}

fn topo_user(u: &User) -> TopoUser {
    TopoUser {
        id: u.id.0 as u64,
        name: u.name.clone(),
        login: u.login_name().to_string(),
        groups: u.groups.clone(),
    }
}

/// The routes `n` advertises that the policy's `autoApprovers` approve in
/// `w` (none without a policy), read from `n` and its owner alone.
pub(super) fn auto_approved(w: &World, n: &Node) -> Vec<ipnet::IpNet> {
    let Some(policy) = &w.policy.policy else {
        return vec![];
    };
    let node = unelected_node(n);
    let owner = node.user.and(w.user(n.user_id)).map(|u| topo_user(u));
    policy.auto_approved_routes_of(owner, node)
}

/// `n` as the policy engine sees it in `w`; its primary routes are `w`'s
/// HA election (`state::primary`), never the engine's own.
fn topo_node(w: &World, n: &Node) -> TopoNode {
    TopoNode {
        primary_routes: Some(w.primaries.of(n.id)),
        ..unelected_node(n)
    }
}

/// `n` before any election: the engine picks primaries itself.
fn unelected_node(n: &Node) -> TopoNode {
    TopoNode {
        id: n.id.0 as u64,
        name: n.given_name.as_str().to_string(),
        hostname: n.hostname.clone(),
        // A tagged node is owned by its tags, not by whoever enrolled it.
        user: (!n.is_tagged()).then_some(n.user_id.0 as u64),
        tags: n.tags.clone(),
        ipv4: n.ipv4,
        ipv6: n.ipv6,
        routable_ips: n.routable_ips(),
        approved_routes: n.approved_routes.clone(),
        primary_routes: None,
    }
}

/// Parses and validates a policy; `strict` refuses clawscale extensions.
pub fn parse(text: &str, strict: bool) -> std::result::Result<Policy, PolicyError> {
    if strict {
        Policy::parse_strict(text)
    } else {
        Policy::parse(text)
    }
}

/// Parses, validates and runs the policy's own tests against `w`'s
/// topology; on success returns it compiled for `w`.
pub fn accept(text: &str, w: &World) -> std::result::Result<(Policy, Compiled), PolicyError> {
    accept_with(text, w, false)
}

/// As `accept`; `strict` refuses clawscale extensions (`policy.strict`).
pub fn accept_with(
    text: &str,
    w: &World,
    strict: bool,
) -> std::result::Result<(Policy, Compiled), PolicyError> {
    let policy = parse(text, strict)?;
    let topo = topology(w);
    policy.check(&topo)?;
    let compiled = policy.compile(&topo);
    Ok((policy, compiled))
}

/// A policy text's revision: the SHA-256 of the text as written, in hex.
/// Audit entries and forward-auth decisions name the policy by it, so a
/// decision can be traced to the exact text that made it.
pub fn revision(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl PolicyState {
    /// The revision of the policy in force (`None` without a policy).
    pub fn revision(&self) -> Option<String> {
        self.text.as_deref().map(revision)
    }

    /// May a node enrolled with a key of `user` (carrying `key_tags`) take
    /// `tags`? Without a policy, tags fixed on a key by an operator are
    /// trusted and nothing else is: there are no `tagOwners` to consult.
    pub fn check_tags(
        &self,
        user: &User,
        key_tags: &[String],
        tags: &[String],
    ) -> std::result::Result<(), String> {
        let Some(policy) = &self.policy else {
            return match tags.iter().find(|t| !key_tags.contains(t)) {
                Some(t) => Err(format!(
                    "requested tag {t:?} is not permitted: no policy defines tagOwners"
                )),
                None => Ok(()),
            };
        };
        let login = user.login_name();
        policy
            .check_tags(&Claimant::User { login }, tags)
            .map_err(|e| e.to_string())
    }
}

impl Core {
    /// Adds the routes `n` advertises that the policy's `autoApprovers`
    /// approve to its approved routes, so they are stored and shown like an
    /// operator's approval (Tailscale approves them as they are advertised).
    pub(super) fn auto_approve(&self, mut n: Node) -> Node {
        if n.routable_ips().is_empty() {
            return n;
        }
        let mut changed = false;
        for r in auto_approved(&self.world, &n) {
            if !n.approved_routes.contains(&r) {
                n.approved_routes.push(r);
                changed = true;
            }
        }
        if changed {
            n.approved_routes.sort();
            tracing::info!(node = %n.given_name, routes = ?n.approved_routes, "routes auto-approved by policy");
        }
        n
    }

    /// Keeps the compiled policy in step with a World about to be published
    /// (`next`, which `change` took from `old`, the World the policy was
    /// compiled for) and adds the nodes whose policy output may differ to
    /// `change`. Only changes to what the policy reads (addresses, owner,
    /// tags, routes, logins) cost a recompilation; the rest (endpoints,
    /// presence, most of Hostinfo) leave the compiled policy as it is.
    /// Called once per batch, so a burst of joins costs one update.
    pub(super) fn follow_policy(old: &World, next: &mut World, change: &mut Change) {
        let (Some(policy), Some(compiled)) = (&next.policy.policy, &next.policy.compiled) else {
            return;
        };
        if change.users && logins(old) != logins(next) {
            // User selectors resolve through logins: recompile whole.
            let compiled = policy.compile(&topology(next));
            change.policy.extend(next.nodes.keys().copied());
            next.policy = Arc::new(PolicyState {
                compiled: Some(compiled),
                ..(*next.policy).clone()
            });
            return;
        }
        // The named nodes, compared with what the policy was compiled for
        // (not `old`: a policy installed earlier in the batch was compiled
        // for the World at that point).
        let before = compiled.topology();
        let mut upserts = Vec::new();
        let mut removed = Vec::new();
        let named: std::collections::BTreeSet<_> = change
            .upserted
            .iter()
            .chain(change.removed.iter())
            .chain(change.routes.iter())
            .collect();
        for id in named {
            let was = before.node(id.0 as u64);
            match next.node(*id).map(|n| topo_node(next, n)) {
                Some(now) if was.is_none_or(|w| **w != now) => upserts.push(now),
                Some(_) => {}
                None if was.is_some() => removed.push(id.0 as u64),
                None => {}
            }
        }
        // A user renamed with the same login (one with an e-mail) changes
        // no selector, but the topology must still say what the World does.
        let renamed = change
            .users
            .then(|| {
                next.users
                    .values()
                    .map(|u| topo_user(u))
                    .collect::<Vec<_>>()
            })
            .filter(|users| *users != *before.users);
        if upserts.is_empty() && removed.is_empty() && renamed.is_none() {
            return;
        }
        let users = renamed.map_or_else(|| before.users.clone(), Arc::new);
        let changed: Vec<u64> = upserts
            .iter()
            .map(|n| n.id)
            .chain(removed.iter().copied())
            .collect();
        // Only the changed nodes are built; the others are shared with the
        // compiled topology, so a batch costs its changes, not every node.
        let topo = before.with_nodes(users, upserts, &removed);
        debug_assert_eq!(topo, topology(next), "a node change the batch did not name");
        let (compiled, affected) = compiled.update(topo, &changed);
        change.policy.extend(
            affected
                .into_iter()
                .map(|id| crate::types::NodeId(id as i64)),
        );
        next.policy = Arc::new(PolicyState {
            compiled: Some(compiled),
            ..(*next.policy).clone()
        });
    }

    /// Puts `text` in force: refuses it (leaving the current policy serving)
    /// unless it parses, validates and passes its own tests.
    async fn install_policy(&mut self, text: String, persist: bool) -> Result<()> {
        let (policy, compiled) = accept_with(&text, &self.world, self.opts.policy_strict)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let now = self.now();
        if persist {
            self.db.save_policy(&text, now).await?;
        }
        let mut w = self.draft();
        w.policy = Arc::new(PolicyState {
            text: Some(text.into()),
            policy: Some(policy),
            compiled: Some(compiled),
            updated_at: Some(now),
        });
        // Every session recomputes its own output and sends only a real
        // difference, so nodes the new policy leaves alone get nothing.
        let everyone = Change::policy(w.nodes.keys().copied());
        self.publish(w, everyone);
        Ok(())
    }
}

/// What a policy update expects the policy in force to be (API v2's
/// `If-Match`), checked by the writer so no other update slips in between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Any,
    /// No policy is set (Tailscale's `ts-default`).
    Default,
    /// The policy in force has this revision.
    Revision(String),
}

impl StateHandle {
    /// Installs a policy through the admin API: only in database mode, where
    /// it is stored; a file-backed policy is changed by editing the file.
    pub async fn set_policy(&self, text: String) -> Result<()> {
        self.set_policy_if(text, Expect::Any).await
    }

    /// [`StateHandle::set_policy`] only if the policy in force is as
    /// `expect` says; `Error::Stale` otherwise.
    pub async fn set_policy_if(&self, text: String, expect: Expect) -> Result<()> {
        self.run(move |core| {
            Box::pin(async move {
                let current = core.world.policy.revision();
                let holds = match &expect {
                    Expect::Any => true,
                    Expect::Default => current.is_none(),
                    Expect::Revision(r) => current.as_deref() == Some(r.as_str()),
                };
                if !holds {
                    return Err(Error::Stale(
                        "the policy changed since it was read (If-Match does not match its ETag)"
                            .into(),
                    ));
                }
                if core.opts.policy_store != PolicyStore::Database {
                    return Err(Error::FailedPrecondition(
                        "policy.mode is \"file\": edit the policy file instead (it is reloaded \
                         on change)"
                            .into(),
                    ));
                }
                core.install_policy(text, true).await
            })
        })
        .await
    }

    /// Installs the policy file's new text (file mode).
    pub async fn reload_policy_file(&self, text: String) -> Result<()> {
        self.run(move |core| Box::pin(async move { core.install_policy(text, false).await }))
            .await
    }

    /// Validates `text` against the current topology without installing it.
    pub fn check_policy(&self, text: &str) -> Result<()> {
        accept_with(text, &self.world(), self.policy_strict)
            .map(|_| ())
            .map_err(|e| Error::InvalidArgument(e.to_string()))
    }
}
