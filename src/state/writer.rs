//! The single writer: a task that owns the database handle and the current
//! World and runs mutations one at a time, in arrival order.
//!
//! Jobs are closures over [`Core`]; each one writes to the database first
//! and only then calls [`Core::publish`]. A job returns its error before
//! publishing, and a job that fails leaves both the database and the World
//! as they were before it (its savepoint is rolled back and its World
//! dropped).
//!
//! Jobs run in batches ([`super::batch`]): when the writer wakes it runs
//! every job already queued (up to [`MAX_BATCH`]) inside ONE database
//! transaction, each building on the World the previous one left, commits,
//! then hands readers one World and sessions one merged [`Change`] for the
//! lot. Callers hear back only after that commit and publication, so a
//! write that returned is durable and visible to readers. Under a burst of
//! registrations or presence changes the fsync, the policy follow-up and
//! the per-session fan-out are paid once per batch, not once per job.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::batch::BatchStats;
use super::change::{Change, PatchMask};
use super::events::{Event, EventActor, EventKind};
use super::policy::{PolicyState, PolicyStore};
use super::{Error, Options, Result, StateReader, World};
use crate::clock::Clock;
use crate::db::Db;
use crate::mapper::sessions::Sessions;
use crate::types::{DiscoPublic, Node, NodeId};

pub(super) type Job = Box<dyn for<'a> FnOnce(&'a mut Core) -> BoxFuture<'a, Done> + Send>;

/// A job's outcome: whether it succeeded (its writes are kept) and what to
/// tell its caller once the batch is committed and published.
pub(super) struct Done {
    pub(super) ok: bool,
    pub(super) reply: Reply,
}

/// Delivers a job's result; given an error, the batch failed as a whole
/// and the caller hears that instead of the job's own result.
pub(super) type Reply = Box<dyn FnOnce(Option<Error>) + Send>;

/// The most jobs one batch covers: bounds how long the first job's caller
/// waits behind the others.
pub(super) const MAX_BATCH: usize = 256;

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
    /// Where control-protocol events go (`events`); none until set.
    pub(super) events: Option<super::events::EventSink>,
    /// The last write probe: when, and its error if it failed.
    last_probe: Option<(Instant, Option<String>)>,
    /// The DNS settings changed over API v2 (as stored).
    pub(super) dns_overrides: super::dns::DnsOverrides,
    /// The World readers have (sent at the end of the last batch).
    pub(super) published: Arc<World>,
    /// The World the compiled policy was last made to agree with in this
    /// batch, when a job replaced the policy; `published` otherwise.
    pub(super) policy_base: Option<Arc<World>>,
    /// What this batch's finished jobs changed since `published`; `None`:
    /// nothing to publish.
    pub(super) unpublished: Option<Change>,
    /// What the running job changed; folded into `unpublished` if it
    /// succeeds, dropped with its World if it fails.
    pub(super) job_change: Option<Change>,
    /// Following other replicas on the same PostgreSQL database
    /// (`replication`); `None` on SQLite.
    pub(super) replication: Option<super::replication::Replication>,
    /// Counted per batch, read by `/metrics` through the handles.
    pub(super) batches: Arc<BatchStats>,
}

/// How long a write probe's answer is reused. Health checks can come often
/// (load balancers, anyone on the control port) and each probe is a synced
/// commit on the writer, so they are bounded to one a second.
const PROBE_REUSE: Duration = Duration::from_secs(1);

/// Cheap, cloneable handle for issuing mutations and reading the World.
#[derive(Clone)]
pub struct StateHandle {
    jobs: mpsc::Sender<Job>,
    reader: StateReader,
    sessions: Arc<Sessions>,
    clock: Arc<dyn Clock>,
    /// `policy.strict`: policies with clawscale extensions are refused.
    pub(super) policy_strict: bool,
    /// The database, when replicas share it: state kept outside the World
    /// that every replica must read (`certs`, `auth_requests`).
    pub(super) shared: Option<Db>,
    batches: Arc<BatchStats>,
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

    /// Makes `next` the writer's World and queues `change` for sessions;
    /// both reach them when the batch ends ([`Core::flush`]). The route
    /// election follows each job (it reads presence and routes only); the
    /// compiled policy follows the batch's node changes there, once per batch.
    pub(super) fn publish(&mut self, mut next: World, mut change: Change) {
        self.follow_routes(&mut next, &mut change);
        next.generation = self.world.generation + 1;
        let replaced = !Arc::ptr_eq(&next.policy, &self.world.policy);
        self.world = Arc::new(next);
        if replaced {
            // Compiled by the job for this very World.
            self.policy_base = Some(self.world.clone());
        }
        self.job_change.get_or_insert_default().merge(change);
    }

    /// Brings the compiled policy in step with the batch's World, sends
    /// that World to readers, then the merged change to sessions (which
    /// read that World when they wake).
    pub(super) fn flush(&mut self) {
        let base = self.policy_base.take();
        let Some(mut change) = self.unpublished.take() else {
            return;
        };
        let base = base.unwrap_or_else(|| self.published.clone());
        let mut next = (*self.world).clone();
        Self::follow_policy(&base, &mut next, &mut change);
        self.world = Arc::new(next);
        self.published = self.world.clone();
        self.publisher.send_replace(self.world.clone());
        self.sessions.dispatch_between(&change, &base, &self.world);
    }

    /// A mutable copy of the current World to build the next one from:
    /// O(1), the copy shares every collection until it is written to.
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

    /// Whether the database commits a write now (see [`StateHandle::health`]).
    async fn probe(&mut self) -> Result<()> {
        self.replication_health()?;
        let reuse = self
            .last_probe
            .as_ref()
            .filter(|(at, _)| at.elapsed() < PROBE_REUSE);
        let failure = match reuse {
            Some((_, failure)) => failure.clone(),
            None => {
                let failure = self.db.probe_write(self.now()).await.err();
                let failure = failure.map(|e| e.to_string());
                self.last_probe = Some((Instant::now(), failure.clone()));
                failure
            }
        };
        failure.map_or(Ok(()), |e| Err(Error::Unavailable(e)))
    }

    /// A failed batch may have held the last probe's write: probe afresh.
    pub(super) fn forget_probe(&mut self) {
        self.last_probe = None;
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
                    Done {
                        ok: true,
                        reply: Box::new(|_| ()),
                    }
                })
            }),
        );
    }

    async fn gc_ephemeral(&mut self, id: NodeId) -> Result<()> {
        let Some(node) = self.world.node(id).cloned() else {
            return Ok(());
        };
        // `is_online` also covers a stream on another replica.
        if !node.ephemeral || self.sessions.count(id) > 0 || self.world.is_online(id) {
            return Ok(());
        }
        let timeout = chrono::Duration::from_std(self.opts.ephemeral_inactivity_timeout)
            .unwrap_or(chrono::Duration::MAX);
        let idle_since = node.last_seen.unwrap_or(node.created_at);
        if idle_since + timeout > self.now() {
            return Ok(()); // seen again since; a later disconnect re-arms
        }
        tracing::info!(node = %id, name = %node.given_name, "removing inactive ephemeral node");
        self.delete_node(id).await?;
        self.emit(Event {
            kind: EventKind::Deleted,
            actor: EventActor::System,
            before: Some(node),
            after: None,
        });
        Ok(())
    }

    pub(super) async fn delete_node(&mut self, id: NodeId) -> Result<()> {
        self.db.delete_node(id).await?;
        let mut w = self.draft();
        w.remove_node(id);
        self.publish(w, Change::remove(id));
        Ok(())
    }

    pub(super) async fn set_presence(&mut self, id: NodeId, online: bool) -> Result<()> {
        let Some(node) = self.world.node(id).cloned() else {
            return Ok(());
        };
        let online = self.share_presence(id, online).await;
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
    let replication = super::replication::Replication::open(&db, &opts.replica).await?;
    let shared = replication.is_some().then(|| db.clone());
    let users = db.list_users().await?;
    let nodes = db.list_nodes().await?;
    let dns_overrides = db.dns_overrides().await?;
    let settings = if dns_overrides.is_empty() {
        settings
    } else {
        super::dns::apply(&settings, &opts.dns, &dns_overrides)
    };
    let mut world = World::new(settings, users, nodes);
    if let Some(p) = initial_policy(&db, &opts, &world).await? {
        world.policy = Arc::new(p);
        // autoApprovers may approve routes: the served sets depend on it.
        world.reelect(clock.now());
    }
    let world = Arc::new(world);
    let policy_strict = opts.policy_strict;
    let (publisher, reader) = watch::channel(world.clone());
    let (tx, mut rx) = mpsc::channel::<Job>(1024);
    let batches = Arc::<BatchStats>::default();
    let mut core = Core {
        db,
        world: world.clone(),
        publisher,
        sessions: sessions.clone(),
        clock: clock.clone(),
        opts,
        jobs: tx.downgrade(),
        events: None,
        last_probe: None,
        dns_overrides,
        published: world.clone(),
        policy_base: None,
        unpublished: None,
        job_change: None,
        replication,
        batches: batches.clone(),
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
    let follower = core.follower();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            core.run_batch(first, &mut rx).await;
        }
        tracing::debug!("state writer stopped");
    });
    let handle = StateHandle {
        jobs: tx,
        reader: StateReader(reader),
        sessions,
        clock,
        policy_strict,
        shared,
        batches,
    };
    tokio::spawn(super::expiry::watch(handle.downgrade()));
    if let Some(f) = follower {
        f.spawn(handle.downgrade());
    }
    Ok(handle)
}

/// The policy to serve from boot: the file's text (given in `opts`, which
/// must pass in full, tests included: an operator is starting the server on
/// it) or the newest stored one (accepted when it was saved, so its tests are
/// not re-run against a topology that may have moved since).
async fn initial_policy(db: &Db, opts: &Options, world: &World) -> Result<Option<PolicyState>> {
    let (text, run_tests) = match opts.policy_store {
        PolicyStore::File => match &opts.policy_text {
            Some(t) => (t.clone(), true),
            None => return Ok(None),
        },
        PolicyStore::Database => match db.current_policy().await? {
            Some(t) => (t, false),
            None => return Ok(None),
        },
    };
    let invalid = |e: crate::policy::PolicyError| Error::InvalidArgument(format!("policy: {e}"));
    let (policy, compiled) = if run_tests {
        super::policy::accept_with(&text, world, opts.policy_strict).map_err(invalid)?
    } else {
        let p = super::policy::parse(&text, opts.policy_strict).map_err(invalid)?;
        let c = p.compile(&super::policy::topology(world));
        (p, c)
    };
    Ok(Some(PolicyState {
        text: Some(text.into()),
        policy: Some(policy),
        compiled: Some(compiled),
        updated_at: None,
    }))
}

/// A [`StateHandle`] that does not keep the writer running (for the
/// writer's own background tasks).
#[derive(Clone)]
pub(super) struct WeakState {
    jobs: mpsc::WeakSender<Job>,
    reader: StateReader,
    sessions: Arc<Sessions>,
    clock: Arc<dyn Clock>,
    policy_strict: bool,
    shared: Option<Db>,
    batches: Arc<BatchStats>,
}

impl WeakState {
    pub(super) fn upgrade(&self) -> Option<StateHandle> {
        Some(StateHandle {
            jobs: self.jobs.upgrade()?,
            reader: self.reader.clone(),
            sessions: self.sessions.clone(),
            clock: self.clock.clone(),
            policy_strict: self.policy_strict,
            shared: self.shared.clone(),
            batches: self.batches.clone(),
        })
    }

    pub(super) fn reader(&self) -> &StateReader {
        &self.reader
    }

    pub(super) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

impl StateHandle {
    pub(super) fn downgrade(&self) -> WeakState {
        WeakState {
            jobs: self.jobs.downgrade(),
            reader: self.reader.clone(),
            sessions: self.sessions.clone(),
            clock: self.clock.clone(),
            policy_strict: self.policy_strict,
            shared: self.shared.clone(),
            batches: self.batches.clone(),
        }
    }

    /// Runs `f` on the writer and returns its result.
    pub(super) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut Core) -> BoxFuture<'a, Result<T>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |core| {
            Box::pin(async move {
                let result = f(core).await;
                Done {
                    ok: result.is_ok(),
                    reply: Box::new(move |failed: Option<Error>| {
                        let _ = tx.send(failed.map_or(result, Err));
                    }),
                }
            })
        });
        self.jobs.send(job).await.map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    pub fn world(&self) -> Arc<World> {
        self.reader.world()
    }

    /// Jobs waiting for the writer (tests hold the writer to build a batch).
    #[cfg(test)]
    pub(super) fn queued(&self) -> usize {
        self.jobs.max_capacity() - self.jobs.capacity()
    }

    /// Proves the writer is alive and the database accepts writes: a
    /// one-row write is committed (answers are reused for a second). A read
    /// would not do: a full disk or a read-only file still answer reads.
    pub async fn health(&self) -> Result<()> {
        self.run(|core| Box::pin(core.probe())).await
    }

    pub fn reader(&self) -> StateReader {
        self.reader.clone()
    }

    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.sessions
    }

    /// Whether other replicas share this state's database: then state kept
    /// outside the World (ACME challenges, pending requests) is shared too.
    /// The writer's batches so far (for `/metrics`).
    pub fn batch_counts(&self) -> super::BatchCounts {
        self.batches.counts()
    }

    pub fn is_replicated(&self) -> bool {
        self.shared.is_some()
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The clock state runs on, for others that must agree with it.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }
}
