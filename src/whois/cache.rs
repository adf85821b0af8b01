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

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock, RwLock};

use axum::http::{HeaderName, HeaderValue};
use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::answer::{self, CapCache, Query, WhoIs};
use super::authorize;
use crate::state::{Settings, World};
use crate::tailcfg::FilterRule;
use crate::types::{Node, NodeId, User};

/// Entries kept at most. An entry holds an answer (about 2 KiB with its
/// body), so this bounds the cache to tens of MiB; past it, an arbitrary
/// entry makes room.
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

fn same<T>(a: &Option<Arc<T>>, b: &Option<Arc<T>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

impl Inputs {
    fn matches(&self, o: &Inputs) -> bool {
        Arc::ptr_eq(&self.node, &o.node)
            && Arc::ptr_eq(&self.settings, &o.settings)
            && same(&self.user, &o.user)
            && same(&self.filter, &o.filter)
            && self.online == o.online
            && self.expired == o.expired
    }
}

#[derive(Debug)]
struct Entry {
    inputs: Inputs,
    answer: Arc<Answer>,
}

type Key = (IpAddr, Option<NodeId>);

/// Answers by (source address, destination).
#[derive(Debug)]
pub struct AnswerCache {
    entries: RwLock<HashMap<Key, Entry>>,
    capacity: usize,
}

impl Default for AnswerCache {
    fn default() -> Self {
        AnswerCache::with_capacity(MAX_ENTRIES)
    }
}

impl AnswerCache {
    /// A cache keeping at most `capacity` answers (at least one).
    pub fn with_capacity(capacity: usize) -> AnswerCache {
        AnswerCache {
            entries: RwLock::default(),
            capacity: capacity.max(1),
        }
    }

    /// The answer for `query` with the CapMap towards `dst`, as
    /// [`answer::whois_with`] computes it from `world` at `now`.
    pub fn get(
        &self,
        world: &World,
        query: Query,
        dst: Option<NodeId>,
        now: DateTime<Utc>,
        caps: &CapCache,
    ) -> Option<Arc<Answer>> {
        let (node, src_ip) = answer::locate(world, query)?;
        let filter = answer::dst_filter(world, dst);
        // Tagged nodes show the synthetic tagged-devices profile.
        let user = match node.is_tagged() {
            true => None,
            false => Some(world.user(node.user_id)?.clone()),
        };
        let inputs = Inputs {
            node: node.clone(),
            user,
            settings: world.settings.clone(),
            filter: filter.as_ref().map(|(_, f)| f.clone()),
            online: world.is_online(node.id),
            expired: node.is_expired(now),
        };
        let key = (src_ip, dst);
        if let Some(e) = self.read().get(&key)
            && e.inputs.matches(&inputs)
        {
            return Some(e.answer.clone());
        }
        let built = Arc::new(Answer::new(answer::assemble(
            world,
            node,
            src_ip,
            filter,
            now,
            Some(caps),
        )?));
        let mut m = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if m.len() >= self.capacity
            && !m.contains_key(&key)
            && let Some(victim) = m.keys().next().copied()
        {
            m.remove(&victim);
        }
        m.insert(
            key,
            Entry {
                inputs,
                answer: built.clone(),
            },
        );
        Some(built)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Key, Entry>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    /// How many answers are kept.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
