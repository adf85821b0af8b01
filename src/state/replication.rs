//! Replicas over PostgreSQL: several servers on one database serve one
//! tailnet (docs/replicas.md).
//!
//! Each replica keeps its own writer and World. Around every batch of jobs
//! the writer takes the database-wide writer lock ([`WriterLock`]) and
//! first applies what other replicas committed ([`Core::catch_up`]), so its
//! jobs validate against every earlier write; after the batch it reads the
//! newest change id still under the lock (all ids up to it are its own or
//! already applied) and releases the lock. Between batches a listener task
//! ([`follow`]) LISTENs for change ids and sends the writer an empty job
//! when one is new, which runs the same catch-up; after a reconnect, and
//! every [`ReplicaOptions::poll`] besides, it does so unasked, so a
//! notification lost with a connection is never a change lost.
//!
//! Health: while the listener is down, or the writer could not take the
//! lock, the replica may be behind; [`Core::replication_health`] makes
//! `/healthz` answer 503 so load balancers send clients elsewhere, and
//! writes fail because they cannot commit.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use sqlx::postgres::PgListener;

use super::change::Change;
use super::policy::{PolicyState, PolicyStore};
use super::writer::{Core, WeakState};
use super::{Error, Result};
use crate::db::Db;
use crate::db::changelog::{CHANNEL, Changes, WriterLock};
use crate::db::replicas::LiveReplica;
use crate::tailcfg::DerpRegion;
use crate::types::{NodeId, UserId};

/// How replicas follow each other (fixed at start).
#[derive(Debug, Clone)]
pub struct ReplicaOptions {
    /// Catch up unasked this often, whatever the notifications say.
    pub poll: Duration,
    /// How often this replica says it is alive.
    pub heartbeat: Duration,
    /// A replica not heard from for this long is dead: its streams no
    /// longer make nodes online and its relay leaves the DERP map.
    pub timeout: Duration,
    /// This replica's embedded relay, which the others add to their DERP
    /// maps.
    pub derp_region: Option<DerpRegion>,
    /// How long change-log rows are kept; a replica away longer reloads
    /// everything when it comes back.
    pub keep_changes: Duration,
}

impl Default for ReplicaOptions {
    fn default() -> Self {
        ReplicaOptions {
            poll: Duration::from_secs(5),
            heartbeat: Duration::from_secs(2),
            timeout: Duration::from_secs(10),
            derp_region: None,
            keep_changes: Duration::from_secs(3600),
        }
    }
}

/// Wait before reconnecting a lost listener.
const RETRY: Duration = Duration::from_millis(500);

/// The writer's replication state (PostgreSQL only).
pub(super) struct Replication {
    /// This process's name among the replicas (unique per start).
    pub(super) name: String,
    /// The other live replicas' relays.
    pub(super) regions: Vec<DerpRegion>,
    /// The DERP map keys those relays were added under.
    pub(super) added_regions: BTreeSet<String>,
    lock: WriterLock,
    /// Whether this batch holds the lock and has caught up under it.
    caught_up: bool,
    link: Arc<Link>,
}

/// What the writer and the listener task share.
#[derive(Debug, Default)]
struct Link {
    /// The newest change id the published World includes.
    applied: AtomicI64,
    listening: AtomicBool,
    /// Why the last batch could not take the writer lock, if it could not.
    lock_error: Mutex<Option<String>>,
    /// The live replicas, when they changed since the writer last looked.
    membership: Mutex<Option<Vec<LiveReplica>>>,
}

impl Replication {
    /// Replication for `db`, `None` on SQLite. Reads the newest change id
    /// before the caller loads the World, so whatever commits in between
    /// is applied again (reloading a row twice is harmless).
    pub(super) async fn open(db: &Db, opts: &ReplicaOptions) -> Result<Option<Replication>> {
        let Some(pool) = db.postgres() else {
            return Ok(None);
        };
        let link = Link::default();
        link.applied
            .store(db.latest_change().await?, Ordering::SeqCst);
        let name = replica_name();
        let region = match &opts.derp_region {
            Some(r) => Some(
                serde_json::to_string(r)
                    .map_err(|e| Error::Internal(format!("relay region: {e}")))?,
            ),
            None => None,
        };
        db.join_replicas(&name, region.as_deref()).await?;
        tracing::info!(replica = %name, "joined the replicas on this database");
        *link.membership.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(db.live_replicas(opts.timeout).await?);
        Ok(Some(Replication {
            name,
            regions: Vec::new(),
            added_regions: BTreeSet::new(),
            lock: WriterLock::new(pool.clone()),
            caught_up: false,
            link: Arc::new(link),
        }))
    }
}

impl Core {
    /// Before a batch: takes the writer lock and applies other replicas'
    /// changes. On failure the batch still runs; its writes fail to commit
    /// against the database that failed here.
    pub(super) async fn replication_begin(&mut self) {
        let Some(r) = self.replication.as_mut() else {
            return;
        };
        let taken = r.lock.lock().await;
        *r.link.lock_error.lock().unwrap_or_else(|p| p.into_inner()) =
            taken.as_ref().err().map(|e| e.to_string());
        if let Err(e) = taken {
            tracing::warn!(error = %e, "replica cannot take the writer lock");
            return;
        }
        match self.catch_up().await {
            Ok(()) => {
                if let Some(r) = self.replication.as_mut() {
                    r.caught_up = true;
                }
            }
            Err(e) => tracing::warn!(error = %e, "replica cannot read the change log"),
        }
    }

    /// After a batch: records its own changes as applied and releases the
    /// lock.
    pub(super) async fn replication_end(&mut self) {
        let Some(r) = self.replication.as_mut() else {
            return;
        };
        let caught_up = std::mem::take(&mut r.caught_up);
        match r.lock.unlock().await {
            // Only a batch that caught up under the lock may claim every id
            // up to the newest: otherwise some of them are others' changes.
            Ok(newest) if caught_up => {
                r.link.applied.fetch_max(newest, Ordering::SeqCst);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "replica cannot release the writer lock"),
        }
    }

    /// Err while this replica may be behind the database.
    pub(super) fn replication_health(&self) -> Result<()> {
        let Some(r) = self.replication.as_ref() else {
            return Ok(());
        };
        if let Some(e) = &*r.link.lock_error.lock().unwrap_or_else(|p| p.into_inner()) {
            return Err(Error::Unavailable(format!(
                "cannot take the replicas' writer lock: {e}"
            )));
        }
        if !r.link.listening.load(Ordering::SeqCst) {
            return Err(Error::Unavailable(
                "not listening for other replicas' changes (PostgreSQL connection lost)".into(),
            ));
        }
        Ok(())
    }

    /// Applies every change committed after the World's, by reloading the
    /// rows it names, and publishes them as typed changes.
    async fn catch_up(&mut self) -> Result<()> {
        let Some(r) = self.replication.as_ref() else {
            return Ok(());
        };
        let link = r.link.clone();
        let mut changes = self
            .db
            .changes_since(link.applied.load(Ordering::SeqCst))
            .await?;
        let mut live = link
            .membership
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if changes.replicas && live.is_none() {
            live = Some(self.db.live_replicas(self.opts.replica.timeout).await?);
        }
        changes.replicas |= live.is_some();
        if changes.is_empty() {
            return Ok(());
        }
        let applied = self.apply_changes(&changes, live.as_deref()).await;
        if applied.is_err()
            && let Some(live) = live
        {
            // Try again next batch.
            link.membership
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(live);
        }
        applied?;
        link.applied.fetch_max(changes.last, Ordering::SeqCst);
        Ok(())
    }

    async fn apply_changes(&mut self, c: &Changes, live: Option<&[LiveReplica]>) -> Result<()> {
        let mut w = self.draft();
        let mut change = Change::default();
        if c.reload_all || c.users {
            let users = self.db.list_users().await?;
            let keep: BTreeSet<UserId> = users.iter().map(|u| u.id).collect();
            let gone: Vec<UserId> = w
                .users
                .keys()
                .filter(|id| !keep.contains(id))
                .copied()
                .collect();
            for id in gone {
                w.remove_user(id);
            }
            for u in users {
                w.put_user(u);
            }
            change.merge(Change::users());
        }
        let (ids, rows) = if c.reload_all {
            let rows = self.db.list_nodes().await?;
            let mut ids: BTreeSet<NodeId> = w.nodes.keys().copied().collect();
            ids.extend(rows.iter().map(|n| n.id));
            (ids, rows)
        } else if c.nodes.is_empty() {
            (BTreeSet::new(), Vec::new())
        } else {
            let ids: Vec<NodeId> = c.nodes.iter().copied().collect();
            (c.nodes.clone(), self.db.nodes_by_id(&ids).await?)
        };
        let mut rows: std::collections::BTreeMap<NodeId, _> =
            rows.into_iter().map(|n| (n.id, n)).collect();
        for id in ids {
            match rows.remove(&id) {
                Some(n) if w.node(id).is_some_and(|old| **old == n) => {}
                Some(n) => {
                    w.put_node(Arc::new(n));
                    change.merge(Change::upsert(id));
                }
                None => {
                    if w.remove_node(id).is_some() {
                        change.merge(Change::remove(id));
                    }
                }
            }
        }
        if (c.reload_all || c.policy) && self.opts.policy_store == PolicyStore::Database {
            self.reload_policy(&mut w, &mut change).await?;
        }
        if c.reload_all || c.dns {
            let o = self.db.dns_overrides().await?;
            if o != self.dns_overrides {
                let settings = super::dns::apply(&w.settings, &self.opts.dns, &o);
                self.dns_overrides = o;
                if settings != *w.settings {
                    w.settings = Arc::new(settings);
                    change.merge(Change::settings());
                }
            }
        }
        if let Some(live) = live {
            self.apply_membership(&mut w, live, &mut change);
        }
        if c.reload_all || live.is_some() {
            self.apply_presence(&mut w, None, &mut change).await?;
        } else if !c.presence.is_empty() {
            let ids: Vec<NodeId> = c.presence.iter().copied().collect();
            self.apply_presence(&mut w, Some(&ids), &mut change).await?;
        }
        if c.reload_all {
            change.merge(Change::full());
        }
        if !change.is_empty() {
            self.publish(w, change);
        }
        Ok(())
    }

    /// Puts the stored policy in force if another replica changed it. It
    /// was accepted (its tests passed) when that replica stored it.
    async fn reload_policy(&mut self, w: &mut super::World, change: &mut Change) -> Result<()> {
        let Some(text) = self.db.current_policy().await? else {
            return Ok(());
        };
        if w.policy.text.as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        let policy = super::policy::parse(&text, self.opts.policy_strict)
            .map_err(|e| Error::Internal(format!("stored policy: {e}")))?;
        let compiled = policy.compile(&super::policy::topology(w));
        w.policy = Arc::new(PolicyState {
            text: Some(text.into()),
            policy: Some(policy),
            compiled: Some(compiled),
            updated_at: Some(self.now()),
        });
        change.merge(Change::policy(w.nodes.keys().copied()));
        Ok(())
    }

    /// The listener task for this writer, if it replicates.
    pub(super) fn follower(&self) -> Option<Follower> {
        let r = self.replication.as_ref()?;
        Some(Follower {
            db: self.db.clone(),
            name: r.name.clone(),
            link: r.link.clone(),
            opts: self.opts.replica.clone(),
        })
    }
}

/// The listener task, before it starts.
pub(super) struct Follower {
    db: Db,
    name: String,
    link: Arc<Link>,
    opts: ReplicaOptions,
}

impl Follower {
    pub(super) fn spawn(self, state: WeakState) {
        tokio::spawn(follow(state, self));
    }
}

/// LISTENs for change ids and has the writer catch up on new ones, after
/// every (re)connect, and every `poll`; heartbeats this replica and watches
/// the others'. Ends with the writer.
async fn follow(state: WeakState, f: Follower) {
    let Some(pool) = f.db.postgres() else {
        return;
    };
    // Its own one-connection pool: the server's pool would make a
    // reconnect wait its whole acquire timeout while the database is gone.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(RETRY * 4)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with((*pool.connect_options()).clone());
    let mut beat = Heartbeat {
        last_live: None,
        last_sync: tokio::time::Instant::now(),
        ticks: 0,
    };
    loop {
        let listener = async {
            let mut l = PgListener::connect_with(&pool).await?;
            l.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        };
        let mut listener = match listener.await {
            Ok(l) => l,
            Err(e) => {
                f.link.listening.store(false, Ordering::SeqCst);
                tracing::warn!(error = %e, "replica cannot listen for changes; retrying");
                tokio::time::sleep(RETRY).await;
                if state.upgrade().is_none() {
                    return;
                }
                continue;
            }
        };
        f.link.listening.store(true, Ordering::SeqCst);
        // Whatever was committed while not listening.
        if !sync(&state).await {
            return;
        }
        let mut tick = tokio::time::interval(f.opts.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                n = listener.try_recv() => match n {
                    Ok(Some(n)) => {
                        let new = n
                            .payload()
                            .parse::<i64>()
                            .map_or(true, |id| id > f.link.applied.load(Ordering::SeqCst));
                        if new && !sync(&state).await {
                            return;
                        }
                    }
                    Ok(None) | Err(_) => break,
                },
                _ = tick.tick() => {
                    if !beat.tick(&f, &state).await {
                        return;
                    }
                }
            }
        }
        f.link.listening.store(false, Ordering::SeqCst);
        tracing::warn!("replica lost its PostgreSQL change notifications; reconnecting");
    }
}

/// The follower's periodic work.
struct Heartbeat {
    /// The live replicas at the last tick.
    last_live: Option<Vec<LiveReplica>>,
    last_sync: tokio::time::Instant,
    ticks: u64,
}

impl Heartbeat {
    /// Says this replica is alive, notices replicas that came or went, and
    /// catches up when `poll` has passed. False once the writer is gone.
    async fn tick(&mut self, f: &Follower, state: &WeakState) -> bool {
        // A replica whose writer is gone must stop saying it is alive:
        // otherwise its presence rows and relay outlive it for as long as
        // its change listener happens to stay connected.
        if state.upgrade().is_none() {
            return false;
        }
        self.ticks += 1;
        let beat = match f.db.heartbeat(&f.name).await {
            Ok(true) => Ok(()),
            // Pruned during a long outage: join again.
            Ok(false) => {
                let region = f
                    .opts
                    .derp_region
                    .as_ref()
                    .and_then(|r| serde_json::to_string(r).ok());
                f.db.join_replicas(&f.name, region.as_deref()).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = beat {
            tracing::warn!(error = %e, "replica heartbeat failed");
        }
        let mut due = self.last_sync.elapsed() >= f.opts.poll;
        match f.db.live_replicas(f.opts.timeout).await {
            Ok(live) if self.last_live.as_ref() != Some(&live) => {
                *f.link.membership.lock().unwrap_or_else(|p| p.into_inner()) = Some(live.clone());
                self.last_live = Some(live);
                due = true;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the live replicas"),
        }
        if due {
            self.last_sync = tokio::time::Instant::now();
            if !sync(state).await {
                return false;
            }
        }
        // About hourly with the defaults.
        if self.ticks.is_multiple_of(1800) {
            let keep = f.opts.keep_changes;
            if let Err(e) = f.db.prune_changes(keep).await {
                tracing::warn!(error = %e, "cannot prune the change log");
            }
            if let Err(e) = f.db.prune_replicas(keep).await {
                tracing::warn!(error = %e, "cannot prune departed replicas");
            }
        }
        true
    }
}

/// A name for this process among the replicas: host, PID and a random
/// part, so a restarted replica is a new member (its old claims die with
/// the old name's heartbeat).
fn replica_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = match host.trim() {
        "" => "clawscale",
        h => h,
    };
    format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Runs an empty job: the writer catches up around every batch. False once
/// the writer is gone.
async fn sync(state: &WeakState) -> bool {
    let Some(state) = state.upgrade() else {
        return false;
    };
    match state.run(|_| Box::pin(async { Ok(()) })).await {
        Ok(()) => true,
        Err(Error::Stopped) => false,
        Err(_) => true,
    }
}
