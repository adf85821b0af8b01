//! Node operations. Reads come from one World snapshot; the pre-auth key a
//! node enrolled with is read from the database (keys are not in the
//! World), one query per request.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use super::{Admin, Caller, Done, Error, Mutation, Resource, Result, snapshot};
use crate::state::World;
use crate::types::{Node, NodeId, PreAuthKey, PreAuthKeyId, User, UserId};

/// A node as the admin API shows it, from one World snapshot.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub node: Arc<Node>,
    /// The user the node belongs to (for a tagged node: who enrolled it).
    pub owner: Option<Arc<User>>,
    pub online: bool,
    /// The key it enrolled with, if it still exists.
    pub auth_key: Option<PreAuthKey>,
    /// Cert domains it published ACME challenges for, with the time of the
    /// last one (since this server started; see `state::certs`).
    pub certificates: Vec<(String, DateTime<Utc>)>,
}

/// How a list filters by user: a name, or a numeric id when no user has
/// that name.
pub type UserRef = str;

/// What `expire_node` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeExpiry {
    /// Now: the node must log in again.
    Now,
    /// At this time (in the past: as `Now`).
    At(DateTime<Utc>),
    /// Never.
    Never,
}

fn object(id: NodeId) -> String {
    format!("node:{id}")
}

fn info(n: &Arc<Node>, world: &World, keys: &HashMap<PreAuthKeyId, PreAuthKey>) -> NodeInfo {
    NodeInfo {
        owner: world.user(n.user_id).cloned(),
        online: world.is_online(n.id),
        auth_key: n.auth_key_id.and_then(|id| keys.get(&id).cloned()),
        certificates: world
            .acme_challenges
            .get(&n.id)
            .map(|seen| seen.iter().map(|(d, at)| (d.clone(), *at)).collect())
            .unwrap_or_default(),
        node: n.clone(),
    }
}

impl Admin {
    async fn key_index(&self) -> Result<HashMap<PreAuthKeyId, PreAuthKey>> {
        let keys = self.state().list_preauth_keys(None).await?;
        Ok(keys.into_iter().map(|k| (k.id, k)).collect())
    }

    /// The node as shown now.
    async fn node_info(&self, id: NodeId) -> Result<NodeInfo> {
        let keys = self.key_index().await?;
        let world = self.state().world();
        let n = world
            .node(id)
            .ok_or_else(|| Error::NotFound("node not found".into()))?;
        Ok(info(n, &world, &keys))
    }

    fn node_snapshot(&self, id: NodeId) -> Option<serde_json::Value> {
        self.state().world().node(id).map(|n| snapshot::node(n))
    }

    /// Nodes in id order, of one user if `user` is given.
    pub async fn list_nodes(
        &self,
        caller: &Caller,
        user: Option<&UserRef>,
    ) -> Result<Vec<NodeInfo>> {
        self.read(caller, Resource::Nodes)?;
        let keys = self.key_index().await?;
        let world = self.state().world();
        let owner = match user.filter(|u| !u.is_empty()) {
            None => None,
            Some(u) => Some(
                world
                    .user_by_name(u)
                    .map(|x| x.id)
                    .or_else(|| {
                        u.parse::<i64>()
                            .ok()
                            .map(UserId)
                            .filter(|id| world.user(*id).is_some())
                    })
                    .ok_or_else(|| Error::NotFound(format!("user {u:?} not found")))?,
            ),
        };
        Ok(world
            .nodes
            .values()
            .filter(|n| owner.is_none_or(|id| n.user_id == id))
            .map(|n| info(n, &world, &keys))
            .collect())
    }

    pub async fn get_node(&self, caller: &Caller, id: NodeId) -> Result<NodeInfo> {
        self.read(caller, Resource::Nodes)?;
        self.node_info(id).await
    }

    /// A node, for its routes (advertised and approved): a read of
    /// [`Resource::Routes`], which API v2's `devices:routes:read` gives.
    pub fn node_routes(&self, caller: &Caller, id: NodeId) -> Result<Arc<Node>> {
        self.read(caller, Resource::Routes)?;
        self.state()
            .world()
            .node(id)
            .cloned()
            .ok_or_else(|| Error::NotFound("node not found".into()))
    }

    pub async fn delete_node(&self, caller: &Caller, id: NodeId) -> Result<()> {
        let m = Mutation::new(Resource::Nodes, "node.delete")
            .on(object(id))
            .before(self.node_snapshot(id));
        self.mutate(caller, m, async {
            self.state().delete_node(id).await?;
            Ok(Done::new(()))
        })
        .await
    }

    /// Expires a node's key now, at a given time, or never.
    pub async fn expire_node(
        &self,
        caller: &Caller,
        id: NodeId,
        when: NodeExpiry,
    ) -> Result<NodeInfo> {
        let m = Mutation::new(Resource::Nodes, "node.expire")
            .on(object(id))
            .before(self.node_snapshot(id));
        self.mutate(caller, m, async {
            match when {
                NodeExpiry::Now => self.state().expire_node(id).await?,
                NodeExpiry::At(t) => self
                    .state()
                    .set_node_expiry(id, Some(t))
                    .await
                    .map(|_| ())?,
                NodeExpiry::Never => self.state().set_node_expiry(id, None).await.map(|_| ())?,
            }
            self.node_done(id).await
        })
        .await
    }

    /// The result of a node mutation: the node as shown now.
    pub(super) async fn node_done(&self, id: NodeId) -> Result<Done<NodeInfo>> {
        let i = self.node_info(id).await?;
        let after = snapshot::node(&i.node);
        Ok(Done::new(i).after(after))
    }

    pub async fn rename_node(&self, caller: &Caller, id: NodeId, name: &str) -> Result<NodeInfo> {
        let m = Mutation::new(Resource::Nodes, "node.rename")
            .on(object(id))
            .before(self.node_snapshot(id));
        self.mutate(caller, m, async {
            self.state().rename_node(id, name).await?;
            self.node_done(id).await
        })
        .await
    }

    /// Replaces a node's tags. A node cannot be given an empty set: tagged
    /// nodes are owned by their tags (Headscale ≥ 0.28 refuses it too). An
    /// OAuth client may only give its own tags.
    pub async fn set_tags(
        &self,
        caller: &Caller,
        id: NodeId,
        tags: Vec<String>,
    ) -> Result<NodeInfo> {
        let m = Mutation::new(Resource::Nodes, "node.set_tags")
            .on(object(id))
            .before(self.node_snapshot(id));
        self.mutate(caller, m, async {
            super::preauth_keys::check_tag_bound(caller, &tags, "tags")?;
            if tags.is_empty() {
                return Err(Error::InvalidArgument(
                    "cannot remove all tags from a node: tagged nodes must keep at least one tag"
                        .into(),
                ));
            }
            if self.state().world().node(id).is_none() {
                return Err(Error::NotFound("node not found".into()));
            }
            self.state().set_tags(id, tags).await?;
            self.node_done(id).await
        })
        .await
    }

    /// Replaces the routes approved for a node. An exit route of one family
    /// approves both, or clients would not offer the node as an exit node
    /// (as Headscale does).
    pub async fn set_approved_routes(
        &self,
        caller: &Caller,
        id: NodeId,
        routes: Vec<IpNet>,
    ) -> Result<NodeInfo> {
        let m = Mutation::new(Resource::Routes, "node.approve_routes")
            .on(object(id))
            .before(self.node_snapshot(id));
        self.mutate(caller, m, async {
            let v4_exit: IpNet = "0.0.0.0/0".parse().expect("literal");
            let v6_exit: IpNet = "::/0".parse().expect("literal");
            let mut all = Vec::with_capacity(routes.len() + 1);
            for r in routes {
                if r == v4_exit || r == v6_exit {
                    all.extend([v4_exit, v6_exit]);
                } else {
                    all.push(r);
                }
            }
            self.state().set_approved_routes(id, all).await?;
            self.node_done(id).await
        })
        .await
    }

    /// Approves a node (device approval, `node.require_approval`) or takes
    /// its approval away: an unapproved node sees no peers and no peer sees
    /// it; its client shows that it needs approval.
    pub async fn set_authorized(
        &self,
        caller: &Caller,
        id: NodeId,
        authorized: bool,
    ) -> Result<NodeInfo> {
        let action = if authorized {
            "node.approve"
        } else {
            "node.unapprove"
        };
        let m = Mutation::new(Resource::Nodes, action)
            .on(object(id))
            .before(self.node_snapshot(id));
        self.mutate(caller, m, async {
            self.state().set_node_authorized(id, authorized).await?;
            self.node_done(id).await
        })
        .await
    }

    /// Gives nodes the addresses of configured families they lack; refuses
    /// unless `confirmed` (it changes addresses of live nodes).
    pub async fn backfill_ips(&self, caller: &Caller, confirmed: bool) -> Result<Vec<String>> {
        let m = Mutation::new(Resource::Nodes, "node.backfill_ips");
        self.mutate(caller, m, async {
            if !confirmed {
                return Err(Error::InvalidArgument(
                    "not confirmed, aborting (pass confirmed=true)".into(),
                ));
            }
            let changes = self.state().backfill_ips().await?;
            let after = serde_json::json!({ "changes": changes });
            Ok(Done::new(changes).after(after))
        })
        .await
    }
}
