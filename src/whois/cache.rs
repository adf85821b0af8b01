//! Whois answers kept between requests, with their encoded body and
//! identity headers, and reused only while every input they were built
//! from is unchanged.
//!
//! An answer is a function of: the node (`Arc<Node>`, replaced on any
//! change), its user (`Arc<User>`; none for tagged nodes), the Settings
//! (base domain), the node's presence, whether its key has expired by now,
//! and the destination's compiled packet filter (`Arc`, replaced when the
//! policy or topology changes it). A cached entry records those inputs by
//! pointer and is served only if all of them are still the ones the
//! current World holds; otherwise it is rebuilt. Freshness is therefore the
//! same as without the cache: the first request that sees a new World sees
//! its answer. A gateway asks about the same few callers again and again,
//! and building, encoding and formatting an answer costs several times the
//! lookup, so this is where the time goes otherwise.
//!
//! Entries a change made stale are dropped by a sweep some seconds after
//! it ([`sweep_on_change`]), so deleted nodes and old policies' filters
//! are not kept alive by answers nobody asks for again.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock, RwLock, Weak};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::answer::{self, CapCache, Query, WhoIs};
use super::authorize;
use crate::state::{Settings, World};
use crate::tailcfg::FilterRule;
use crate::types::{Node, NodeId, User};

/// Entries kept at most. An entry holds an answer (about 2 KiB with its
/// body), so this bounds the cache to tens of MiB; past it (per shard), an
/// arbitrary entry of the shard makes room.
const MAX_ENTRIES: usize = 32_768;

/// One built answer; body and headers are encoded on first use.
#[derive(Debug)]
pub struct Answer {
    pub whois: WhoIs,
    body: OnceLock<Bytes>,
    identity: OnceLock<Vec<(HeaderName, HeaderValue)>>,
    mcp: OnceLock<authorize::McpGrants>,
}

impl Answer {
    pub fn new(whois: WhoIs) -> Answer {
        Answer {
            whois,
            body: OnceLock::new(),
            identity: OnceLock::new(),
            mcp: OnceLock::new(),
        }
    }

    /// The LocalAPI response body (tab-indented JSON).
    pub fn body(&self) -> Bytes {
        self.body
            .get_or_init(|| Bytes::from(answer::to_body(&self.whois)))
            .clone()
    }

    /// Whether the caller's MCP grants admit `tool` on `server`
    /// ([`authorize::decide`] on this answer's CapMap).
    pub fn decide(&self, tool: Option<&str>, server: Option<&str>) -> authorize::Decision {
        self.mcp
            .get_or_init(|| authorize::McpGrants::new(&self.whois.cap_map))
            .decide(tool, server)
    }

    /// The identity headers forward-auth answers an allowed call with; a
    /// value HTTP cannot carry is left out.
    pub fn identity_headers(&self) -> &[(HeaderName, HeaderValue)] {
        self.identity.get_or_init(|| {
            authorize::identity_headers(&self.whois)
                .into_iter()
                .filter_map(|(name, value)| {
                    Some((
                        HeaderName::from_bytes(name.as_bytes()).ok()?,
                        HeaderValue::from_str(&value).ok()?,
                    ))
                })
                .collect()
        })
    }
}

/// What an answer was built from, held by pointer.
#[derive(Debug)]
struct Inputs {
    node: Arc<Node>,
    user: Option<Arc<User>>,
    settings: Arc<Settings>,
    filter: Option<Arc<Vec<FilterRule>>>,
    online: bool,
    expired: bool,
}

/// The same inputs borrowed from a World: checking an entry touches no
/// reference count (shared counts would bounce between cores).
struct Current<'w> {
    node: &'w Arc<Node>,
    user: Option<&'w Arc<User>>,
    settings: &'w Arc<Settings>,
    filter: Option<&'w Arc<Vec<FilterRule>>>,
    online: bool,
    expired: bool,
}

impl<'w> Current<'w> {
    /// The inputs of `node`'s answer towards `dst` in `world` at `now`;
    /// `None` if its user is gone (no answer then).
    fn of(
        world: &'w World,
        node: &'w Arc<Node>,
        dst: Option<NodeId>,
        now: DateTime<Utc>,
    ) -> Option<Current<'w>> {
        // Tagged nodes show the synthetic tagged-devices profile.
        let user = match node.is_tagged() {
            true => None,
            false => Some(world.user(node.user_id)?),
        };
        Some(Current {
            node,
            user,
            settings: &world.settings,
            filter: dst.and_then(|d| answer::dst_filter(world, d)),
            online: world.is_online(node.id),
            expired: node.is_expired(now),
        })
    }
}

fn same<T>(a: &Option<Arc<T>>, b: Option<&Arc<T>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

impl Inputs {
    fn matches(&self, c: &Current<'_>) -> bool {
        Arc::ptr_eq(&self.node, c.node)
            && Arc::ptr_eq(&self.settings, c.settings)
            && same(&self.user, c.user)
            && same(&self.filter, c.filter)
            && self.online == c.online
            && self.expired == c.expired
    }

    fn of(c: &Current<'_>) -> Inputs {
        Inputs {
            node: c.node.clone(),
            user: c.user.cloned(),
            settings: c.settings.clone(),
            filter: c.filter.cloned(),
            online: c.online,
            expired: c.expired,
        }
    }
}

#[derive(Debug)]
struct Entry {
    inputs: Inputs,
    answer: Arc<Answer>,
    /// The World the inputs were last found current in. Published Worlds
    /// are immutable, so while that is still the World asked with, only
    /// the clock can have changed the answer (key expiry), and the lookups
    /// the full check needs are skipped. Held weakly: only its address is
    /// compared, and the weak count keeps that address from being reused
    /// by a later World.
    seen: Weak<World>,
    /// The node's key expiry, copied so that check touches only the entry.
    expiry: Option<DateTime<Utc>>,
}

impl Entry {
    fn current_in(&self, world: &Arc<World>, now: DateTime<Utc>) -> bool {
        std::ptr::eq(self.seen.as_ptr(), Arc::as_ptr(world))
            && self.inputs.expired == self.expiry.is_some_and(|e| e <= now)
    }
}

type Key = (IpAddr, Option<NodeId>);

/// Independent parts of the cache, so concurrent requests rarely share a
/// lock word.
const SHARDS: usize = 16;

/// Answers by (source address, destination).
#[derive(Debug)]
pub struct AnswerCache {
    shards: Vec<RwLock<HashMap<Key, Entry>>>,
    /// Entries per shard at most.
    capacity: usize,
}

/// The shard of `key`: tailnet addresses differ in their last bytes.
fn shard_of(key: &Key) -> usize {
    let last = match key.0 {
        IpAddr::V4(a) => a.octets()[3],
        IpAddr::V6(a) => a.octets()[15],
    };
    (last as usize ^ key.1.map_or(0, |d| d.0 as usize)) % SHARDS
}

impl Default for AnswerCache {
    fn default() -> Self {
        AnswerCache::with_capacity(MAX_ENTRIES)
    }
}

impl AnswerCache {
    /// A cache keeping about `capacity` answers: each shard keeps at most
    /// its share, rounded up (so at least one).
    pub fn with_capacity(capacity: usize) -> AnswerCache {
        AnswerCache {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            capacity: capacity.div_ceil(SHARDS).max(1),
        }
    }

    /// The answer for `query` with the CapMap towards `dst`, as
    /// [`answer::whois_with`] computes it from `world` at `now`.
    pub fn get(
        &self,
        world: &Arc<World>,
        query: Query,
        dst: Option<NodeId>,
        now: DateTime<Utc>,
        caps: &CapCache,
    ) -> Option<Arc<Answer>> {
        // Asked again in the World the entry was last checked in: the
        // common case between changes, answered without any World lookup.
        if let Query::Ip(ip) = query {
            let key = (ip, dst);
            let shard = self.shard(&key).read().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = shard.get(&key)
                && e.current_in(world, now)
            {
                return Some(e.answer.clone());
            }
        }
        let (node, src_ip) = answer::locate(world, query)?;
        let current = Current::of(world, node, dst, now)?;
        let key = (src_ip, dst);
        let shard = self.shard(&key);
        let valid = shard
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .filter(|e| e.inputs.matches(&current))
            .map(|e| e.answer.clone());
        if let Some(answer) = valid {
            // Still right in this newer World: remember that, so the next
            // request takes the short way. (A racing rebuild may have
            // replaced the entry meanwhile; then it is left as it is.)
            let mut m = shard.write().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = m.get_mut(&key)
                && Arc::ptr_eq(&e.answer, &answer)
            {
                e.seen = Arc::downgrade(world);
            }
            return Some(answer);
        }
        let filter = dst.zip(current.filter);
        let built = Arc::new(Answer::new(answer::assemble(
            world,
            node,
            src_ip,
            filter,
            now,
            Some(caps),
        )?));
        let mut m = shard.write().unwrap_or_else(|e| e.into_inner());
        if m.len() >= self.capacity
            && !m.contains_key(&key)
            && let Some(victim) = m.keys().next().copied()
        {
            m.remove(&victim);
        }
        m.insert(
            key,
            Entry {
                inputs: Inputs::of(&current),
                answer: built.clone(),
                seen: Arc::downgrade(world),
                expiry: node.expiry,
            },
        );
        Some(built)
    }

    /// Drops every entry `world` would not serve as it stands (its node
    /// gone or changed, a new policy filter, ...), so an answer and what it
    /// holds (a deleted node, an old policy's filter) do not stay in memory
    /// until evicted. Each shard is read to find them and locked for
    /// writing only to remove them. Returns how many went.
    pub fn sweep(&self, world: &Arc<World>, now: DateTime<Utc>) -> usize {
        let valid = |key: &Key, e: &Entry| {
            e.current_in(world, now)
                || world
                    .node_by_ip(&key.0)
                    .and_then(|n| Current::of(world, n, key.1, now))
                    .is_some_and(|c| e.inputs.matches(&c))
        };
        let mut removed = 0;
        for shard in &self.shards {
            let stale: Vec<Key> = shard
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter(|(k, e)| !valid(k, e))
                .map(|(k, _)| *k)
                .collect();
            if stale.is_empty() {
                continue;
            }
            let mut m = shard.write().unwrap_or_else(|e| e.into_inner());
            for k in stale {
                // Rebuilt meanwhile by a request: keep the new entry.
                if m.get(&k).is_some_and(|e| !valid(&k, e)) {
                    m.remove(&k);
                    removed += 1;
                }
            }
        }
        removed
    }

    fn shard(&self, key: &Key) -> &RwLock<HashMap<Key, Entry>> {
        &self.shards[shard_of(key)]
    }

    /// How many answers are kept.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Sweeps `cache` against each new World, at most once per `every`, off
/// the runtime's workers (a sweep visits every entry). Ends when the World
/// channel closes.
pub async fn sweep_on_change(
    cache: Arc<AnswerCache>,
    mut worlds: watch::Receiver<Arc<World>>,
    now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static,
    every: Duration,
) {
    let now = Arc::new(now);
    while worlds.changed().await.is_ok() {
        // Let a burst of changes settle, and hot entries be rebuilt by the
        // requests that need them.
        tokio::time::sleep(every).await;
        let world = worlds.borrow_and_update().clone();
        let (cache, now) = (cache.clone(), now.clone());
        let removed = tokio::task::spawn_blocking(move || cache.sweep(&world, now()))
            .await
            .unwrap_or(0);
        tracing::debug!(removed, "whois answer cache swept");
    }
}

#[cfg(test)]
mod tests;
