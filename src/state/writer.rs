//! The single writer: a task that owns the database handle and the current
//! World and runs mutations one at a time, in arrival order.
//!
//! Jobs are closures over [`Core`]; each one commits to the database first
//! and only then calls [`Core::publish`]. A job that fails before its commit
//! leaves both the database and the World untouched.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, watch};

use super::change::{Change, PatchMask};
use super::{Error, Options, Result, StateReader, World};
use crate::clock::Clock;
use crate::db::{Db, NewPreAuthKey};
use crate::mapper::sessions::Sessions;
use crate::types::user::validate_user_name;
use crate::types::{
    DiscoPublic, DnsLabel, Node, NodeId, PreAuthKey, PreAuthKeyId, PreAuthSecret, User, UserId,
    node::normalize_tags,
};

type Job = Box<dyn for<'a> FnOnce(&'a mut Core) -> BoxFuture<'a, ()> + Send>;

/// State owned by the writer task.
pub struct Core {
    pub(super) db: Db,
    pub(super) world: Arc<World>,
    publisher: watch::Sender<Arc<World>>,
    pub(super) sessions: Arc<Sessions>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) opts: Options,
    /// Lets jobs schedule follow-up jobs (ephemeral GC).
    jobs: mpsc::WeakSender<Job>,
}

/// Cheap, cloneable handle for issuing mutations and reading the World.
#[derive(Clone)]
pub struct StateHandle {
    jobs: mpsc::Sender<Job>,
    reader: StateReader,
    sessions: Arc<Sessions>,
    clock: Arc<dyn Clock>,
}

/// What a map request reports about its node.
#[derive(Debug, Clone, Default)]
pub struct MapUpdate {
    pub disco_key: Option<DiscoPublic>,
    pub endpoints: Option<Vec<String>>,
    pub hostinfo: Option<serde_json::Value>,
    pub cap_version: i32,
}

impl Core {
    pub(super) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Publishes `next` as the new World and routes `change` to sessions.
    pub(super) fn publish(&mut self, mut next: World, change: Change) {
        next.generation = self.world.generation + 1;
        let next = Arc::new(next);
        self.world = next.clone();
        self.publisher.send_replace(next);
        self.sessions.dispatch(&change);
    }

    /// A mutable copy of the current World to build the next one from.
    pub(super) fn draft(&self) -> World {
        (*self.world).clone()
    }

    /// A copy of node `id` to modify, or NotFound.
    pub(super) fn node_copy(&self, id: NodeId) -> Result<Node> {
        self.world
            .node(id)
            .map(|n| (**n).clone())
            .ok_or_else(|| Error::NotFound("node not found".into()))
    }

    /// Saves a modified node, then publishes it with `change`.
    pub(super) async fn commit_node(&mut self, n: Node, change: Change) -> Result<()> {
        self.db.save_node(&n).await?;
        let mut w = self.draft();
        w.put_node(Arc::new(n));
        self.publish(w, change);
        Ok(())
    }

    fn schedule(&self, after: Duration, job: Job) {
        let Some(jobs) = self.jobs.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = jobs.send(job).await;
        });
    }

    /// Deletes an ephemeral node once it has been offline for the configured
    /// inactivity timeout; re-arms itself if the node came back meanwhile.
    fn schedule_ephemeral_gc(&self, id: NodeId) {
        let after = self.opts.ephemeral_inactivity_timeout;
        self.schedule(
            after,
            Box::new(move |core| {
                Box::pin(async move {
                    if let Err(e) = core.gc_ephemeral(id).await {
                        tracing::warn!(node = %id, error = %e, "ephemeral node clean-up failed");
                    }
                })
            }),
        );
    }

    async fn gc_ephemeral(&mut self, id: NodeId) -> Result<()> {
        let Some(node) = self.world.node(id).cloned() else {
            return Ok(());
        };
        if !node.ephemeral || self.sessions.count(id) > 0 {
            return Ok(());
        }
        let timeout = chrono::Duration::from_std(self.opts.ephemeral_inactivity_timeout)
            .unwrap_or(chrono::Duration::MAX);
        let idle_since = node.last_seen.unwrap_or(node.created_at);
        if idle_since + timeout > self.now() {
            return Ok(()); // seen again since; a later disconnect re-arms
        }
        tracing::info!(node = %id, name = %node.given_name, "removing inactive ephemeral node");
        self.delete_node(id).await
    }

    pub(super) async fn delete_node(&mut self, id: NodeId) -> Result<()> {
        self.db.delete_node(id).await?;
        let mut w = self.draft();
        w.remove_node(id);
        self.publish(w, Change::remove(id));
        Ok(())
    }

    async fn set_presence(&mut self, id: NodeId, online: bool) -> Result<()> {
        let Some(node) = self.world.node(id).cloned() else {
            return Ok(());
        };
        if self.world.is_online(id) == online {
            return Ok(());
        }
        let now = self.now();
        let mut w = self.draft();
        let mut n = (*node).clone();
        n.last_seen = Some(now);
        if online {
            w.online.insert(id);
        } else {
            w.online.remove(&id);
            // last_seen is write-behind bookkeeping: losing it in a crash only
            // loses an "offline since" time, never a node.
            if let Err(e) = self.db.touch_last_seen(&[id], now).await {
                tracing::warn!(node = %id, error = %e, "could not record last-seen time");
            }
        }
        w.put_node(Arc::new(n));
        self.publish(
            w,
            Change::patch(
                id,
                PatchMask {
                    online: true,
                    ..Default::default()
                },
            ),
        );
        if !online && node.ephemeral {
            self.schedule_ephemeral_gc(id);
        }
        Ok(())
    }
}

/// Starts the writer over a database and returns its handle.
pub async fn start(
    db: Db,
    settings: super::Settings,
    sessions: Arc<Sessions>,
    clock: Arc<dyn Clock>,
    opts: Options,
) -> Result<StateHandle> {
    let users = db.list_users().await?;
    let nodes = db.list_nodes().await?;
    let world = Arc::new(World::new(settings, users, nodes));
    let (publisher, reader) = watch::channel(world.clone());
    let (tx, mut rx) = mpsc::channel::<Job>(1024);
    let mut core = Core {
        db,
        world,
        publisher,
        sessions: sessions.clone(),
        clock: clock.clone(),
        opts,
        jobs: tx.downgrade(),
    };
    // After a restart every node is offline: start the inactivity clock for
    // ephemeral nodes, which are removed unless they reconnect in time.
    let ephemeral: Vec<NodeId> = core
        .world
        .nodes
        .values()
        .filter(|n| n.ephemeral)
        .map(|n| n.id)
        .collect();
    for id in ephemeral {
        core.schedule_ephemeral_gc(id);
    }
    tokio::spawn(async move {
        while let Some(job) = rx.recv().await {
            job(&mut core).await;
        }
        tracing::debug!("state writer stopped");
    });
    Ok(StateHandle {
        jobs: tx,
        reader: StateReader(reader),
        sessions,
        clock,
    })
}

impl StateHandle {
    /// Runs `f` on the writer and returns its result.
    pub(super) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut Core) -> BoxFuture<'a, Result<T>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |core| {
            Box::pin(async move {
                let _ = tx.send(f(core).await);
            })
        });
        self.jobs.send(job).await.map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    pub fn world(&self) -> Arc<World> {
        self.reader.world()
    }

    pub fn reader(&self) -> StateReader {
        self.reader.clone()
    }

    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.sessions
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    // === users ===

    pub async fn create_user(&self, name: &str, display_name: &str, email: &str) -> Result<User> {
        validate_user_name(name).map_err(Error::InvalidArgument)?;
        let (name, display, email) = (
            name.to_string(),
            display_name.to_string(),
            email.to_string(),
        );
        self.run(move |core| {
            Box::pin(async move {
                let now = core.now();
                let user = core.db.create_user(&name, &display, &email, now).await?;
                let mut w = core.draft();
                w.put_user(user.clone());
                core.publish(w, Change::users());
                Ok(user)
            })
        })
        .await
    }

    pub async fn rename_user(&self, id: UserId, new_name: &str) -> Result<User> {
        validate_user_name(new_name).map_err(Error::InvalidArgument)?;
        let new_name = new_name.to_string();
        self.run(move |core| {
            Box::pin(async move {
                let mut user = (**core
                    .world
                    .user(id)
                    .ok_or_else(|| Error::NotFound("user not found".into()))?)
                .clone();
                core.db.rename_user(id, &new_name).await?;
                user.name = new_name;
                let mut w = core.draft();
                w.put_user(user.clone());
                core.publish(w, Change::users());
                Ok(user)
            })
        })
        .await
    }

    pub async fn delete_user(&self, id: UserId) -> Result<()> {
        self.run(move |core| {
            Box::pin(async move {
                core.db.delete_user(id).await?;
                let mut w = core.draft();
                w.remove_user(id);
                core.publish(w, Change::users());
                Ok(())
            })
        })
        .await
    }

    // === pre-auth keys ===

    /// Creates a key and returns it with its secret text, which is never
    /// stored and never shown again.
    pub async fn create_preauth_key(
        &self,
        user: UserId,
        reusable: bool,
        ephemeral: bool,
        expiration: Option<DateTime<Utc>>,
        tags: Vec<String>,
    ) -> Result<(PreAuthKey, String)> {
        let tags = normalize_tags(tags).map_err(Error::InvalidArgument)?;
        self.run(move |core| {
            Box::pin(async move {
                if core.world.user(user).is_none() {
                    return Err(Error::NotFound("user not found".into()));
                }
                let now = core.now();
                if expiration.is_some_and(|e| e <= now) {
                    return Err(Error::InvalidArgument("expiration is in the past".into()));
                }
                let secret = PreAuthSecret::generate();
                let key = core
                    .db
                    .create_preauth_key(
                        &NewPreAuthKey {
                            prefix: secret.prefix.clone(),
                            hash: secret.hash(),
                            user_id: user,
                            reusable,
                            ephemeral,
                            tags,
                            expiration,
                        },
                        now,
                    )
                    .await?;
                Ok((key, secret.reveal()))
            })
        })
        .await
    }

    pub async fn list_preauth_keys(&self, user: Option<UserId>) -> Result<Vec<PreAuthKey>> {
        self.run(move |core| Box::pin(async move { Ok(core.db.list_preauth_keys(user).await?) }))
            .await
    }

    pub async fn expire_preauth_key(&self, id: PreAuthKeyId) -> Result<()> {
        self.run(move |core| {
            Box::pin(async move {
                let now = core.now();
                Ok(core.db.expire_preauth_key(id, now).await?)
            })
        })
        .await
    }

    pub async fn delete_preauth_key(&self, id: PreAuthKeyId) -> Result<()> {
        self.run(move |core| Box::pin(async move { Ok(core.db.delete_preauth_key(id).await?) }))
            .await
    }

    // === nodes ===

    /// Applies what a map request reports (disco key, endpoints, hostinfo)
    /// and tells peers, as a patch where the change is light.
    pub async fn update_from_map(&self, id: NodeId, u: MapUpdate) -> Result<()> {
        self.run(move |core| {
            Box::pin(async move {
                let mut n = core.node_copy(id)?;
                let mut mask = PatchMask::default();
                let mut structural = false;
                if let Some(d) = u.disco_key.filter(|d| *d != n.disco_key) {
                    n.disco_key = d;
                    mask.disco = true;
                }
                if let Some(e) = u.endpoints.filter(|e| *e != n.endpoints) {
                    n.endpoints = e;
                    mask.endpoints = true;
                }
                if let Some(h) = u.hostinfo {
                    let derp = home_derp_of(&h);
                    if derp != 0 && derp != n.home_derp {
                        n.home_derp = derp;
                        mask.derp = true;
                    }
                    let h = merge_hostinfo(&n.hostinfo, h);
                    if h != n.hostinfo {
                        structural |= hostinfo_visible_change(&n.hostinfo, &h);
                        if let Some(name) = h.get("Hostname").and_then(|v| v.as_str()) {
                            n.hostname = name.to_string();
                        }
                        n.hostinfo = h;
                    }
                }
                if u.cap_version != 0 && u.cap_version != n.cap_version {
                    n.cap_version = u.cap_version;
                    structural = true;
                }
                if mask.is_empty() && !structural {
                    return Ok(());
                }
                let change = if structural {
                    Change::upsert(id)
                } else {
                    Change::patch(id, mask)
                };
                core.commit_node(n, change).await
            })
        })
        .await
    }

    /// Marks a node online (first stream) or offline (last stream gone).
    /// Presence is derived from the session registry's count, so an old
    /// stream closing after a reconnect cannot mark the node offline.
    pub async fn refresh_presence(&self, id: NodeId) -> Result<()> {
        self.run(move |core| {
            Box::pin(async move {
                let online = core.sessions.count(id) > 0;
                core.set_presence(id, online).await
            })
        })
        .await
    }

    pub async fn delete_node(&self, id: NodeId) -> Result<()> {
        self.run(move |core| Box::pin(async move { core.delete_node(id).await }))
            .await
    }

    /// Expires a node's key now: the node must log in again.
    pub async fn expire_node(&self, id: NodeId) -> Result<()> {
        self.run(move |core| {
            Box::pin(async move {
                let mut n = core.node_copy(id)?;
                n.expiry = Some(core.now());
                core.commit_node(n, Change::upsert(id)).await
            })
        })
        .await
    }

    pub async fn rename_node(&self, id: NodeId, new_name: &str) -> Result<()> {
        let label = DnsLabel::parse(new_name).map_err(Error::InvalidArgument)?;
        self.run(move |core| {
            Box::pin(async move {
                let mut n = core.node_copy(id)?;
                if core.world.name_taken(label.as_str(), Some(id)) {
                    return Err(Error::Conflict(format!(
                        "name {label} is already used by another node"
                    )));
                }
                n.given_name = label;
                core.commit_node(n, Change::upsert(id)).await
            })
        })
        .await
    }
}

/// `Hostinfo.NetInfo.PreferredDERP`, 0 when absent.
fn home_derp_of(hostinfo: &serde_json::Value) -> i32 {
    hostinfo
        .pointer("/NetInfo/PreferredDERP")
        .and_then(|v| v.as_i64())
        .and_then(|v| i32::try_from(v).ok())
        .unwrap_or(0)
}

/// A Hostinfo without `NetInfo` keeps the previous `NetInfo` (clients send it
/// only when it changed).
fn merge_hostinfo(old: &serde_json::Value, mut new: serde_json::Value) -> serde_json::Value {
    if let (Some(obj), Some(prev)) = (new.as_object_mut(), old.get("NetInfo"))
        && !obj.contains_key("NetInfo")
    {
        obj.insert("NetInfo".into(), prev.clone());
    }
    new
}

/// Whether peers need the whole node again: anything but NetInfo changed.
fn hostinfo_visible_change(old: &serde_json::Value, new: &serde_json::Value) -> bool {
    let strip = |v: &serde_json::Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("NetInfo");
        }
        v
    };
    strip(old) != strip(new)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn hostinfo_keeps_netinfo_and_detects_visible_changes() {
        let old = json!({"Hostname": "a", "NetInfo": {"PreferredDERP": 999}});
        let merged = merge_hostinfo(&old, json!({"Hostname": "a"}));
        assert_eq!(merged["NetInfo"]["PreferredDERP"], 999);
        assert!(!hostinfo_visible_change(&old, &merged));
        assert!(hostinfo_visible_change(&old, &json!({"Hostname": "b"})));
        assert_eq!(home_derp_of(&old), 999);
        assert_eq!(home_derp_of(&json!({})), 0);
    }
}
