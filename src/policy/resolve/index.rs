//! Node-set indexes that make compilation scale: every distinct selector is
//! resolved once to a bitset over node indices (users via a per-user table,
//! never per node × group member), and identical bitsets are shared.
//! Selector semantics are those of `alias::Resolver::node_matches`.

use std::collections::HashMap;
use std::sync::Arc;

use super::alias::Resolver;
use super::ipset::IpSet;
use crate::policy::model::alias::{member_matches, user_matches};
use crate::policy::model::{Alias, Doc, TopoUser, Topology};

/// Fixed-size bitset over node indices.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Bits(Vec<u64>);

impl Bits {
    pub fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }
    pub fn all(n: usize) -> Self {
        let mut b = Bits::new(n);
        for i in 0..n {
            b.set(i);
        }
        b
    }
    pub fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    pub fn get(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    pub fn or(&mut self, o: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            *a |= b;
        }
    }
    pub fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &x)| {
            let mut x = x;
            std::iter::from_fn(move || {
                if x == 0 {
                    return None;
                }
                let b = x.trailing_zeros() as usize;
                x &= x - 1;
                Some(w * 64 + b)
            })
        })
    }
}

/// Per-node facts used everywhere in compilation.
pub(crate) struct Facts {
    pub own: Vec<IpSet>,
    /// Approved subnet routes (exit routes aside).
    pub subnets: Vec<IpSet>,
    pub is_exit: Vec<bool>,
    /// Index into `topo.users` of a node's user.
    pub user_idx: Vec<Option<usize>>,
    /// Untagged nodes per user id.
    pub user_nodes: HashMap<u64, Vec<usize>>,
}

impl Facts {
    pub fn new(topo: &Topology, subnets: Vec<IpSet>, is_exit: Vec<bool>) -> Facts {
        let by_id: HashMap<u64, usize> = topo
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id, i))
            .collect();
        let mut user_nodes: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, n) in topo.nodes.iter().enumerate() {
            if let (Some(u), true) = (n.user, n.tags.is_empty()) {
                user_nodes.entry(u).or_default().push(i);
            }
        }
        Facts {
            user_nodes,
            own: topo
                .nodes
                .iter()
                .map(|n| IpSet::of_node(n.ipv4, n.ipv6))
                .collect(),
            subnets,
            is_exit,
            user_idx: topo
                .nodes
                .iter()
                .map(|n| n.user.and_then(|u| by_id.get(&u).copied()))
                .collect(),
        }
    }
}

/// Interns bitsets so identical node sets are stored (and OR'd) once.
#[derive(Default)]
pub(crate) struct Interner {
    sets: HashMap<Bits, Arc<Bits>>,
}

impl Interner {
    pub fn intern(&mut self, b: Bits) -> Arc<Bits> {
        if let Some(x) = self.sets.get(&b) {
            return x.clone();
        }
        let a = Arc::new(b.clone());
        self.sets.insert(b, a.clone());
        a
    }
}

/// Resolves selectors to node bitsets, memoised per selector.
pub(crate) struct AliasIndex<'a> {
    pub doc: &'a Doc,
    pub topo: &'a Topology,
    pub facts: &'a Facts,
    cache: HashMap<Alias, Arc<Bits>>,
    pub interner: Interner,
}

impl<'a> AliasIndex<'a> {
    pub fn new(doc: &'a Doc, topo: &'a Topology, facts: &'a Facts) -> Self {
        AliasIndex {
            doc,
            topo,
            facts,
            cache: HashMap::new(),
            interner: Interner::default(),
        }
    }

    fn resolver(&self) -> Resolver<'a> {
        Resolver {
            doc: self.doc,
            topo: self.topo,
        }
    }

    /// Nodes the selector matches (`node_matches` semantics).
    pub fn nodes(&mut self, a: &Alias) -> Arc<Bits> {
        if let Some(b) = self.cache.get(a) {
            return b.clone();
        }
        let b = self.compute(a);
        let b = self.interner.intern(b);
        self.cache.insert(a.clone(), b.clone());
        b
    }

    fn compute(&mut self, a: &Alias) -> Bits {
        let n = self.topo.nodes.len();
        let nodes = &self.topo.nodes;
        let mut b = Bits::new(n);
        let users = &self.topo.users;
        let by_user = |ok: &dyn Fn(&TopoUser) -> bool, b: &mut Bits| {
            let good: Vec<bool> = users.iter().map(ok).collect();
            for (i, node) in nodes.iter().enumerate() {
                if node.tags.is_empty() && self.facts.user_idx[i].is_some_and(|u| good[u]) {
                    b.set(i);
                }
            }
        };
        match a {
            Alias::Wildcard | Alias::DangerAll => return Bits::all(n),
            Alias::User(sel) => by_user(&|u| user_matches(sel, &u.login), &mut b),
            Alias::UserDomain(d) => by_user(
                &|u| u.login.rsplit_once('@').is_some_and(|(_, dom)| dom == d),
                &mut b,
            ),
            Alias::Group(g) => {
                let members = self.doc.groups.get(g).cloned().unwrap_or_default();
                by_user(&|u| members.iter().any(|m| member_matches(m, u)), &mut b)
            }
            Alias::Member => {
                for (i, node) in nodes.iter().enumerate() {
                    if node.tags.is_empty() && node.user.is_some() {
                        b.set(i);
                    }
                }
            }
            Alias::Tag(t) => {
                for (i, node) in nodes.iter().enumerate() {
                    if node.tags.iter().any(|x| x == t) {
                        b.set(i);
                    }
                }
            }
            Alias::Tagged => {
                for (i, node) in nodes.iter().enumerate() {
                    if !node.tags.is_empty() {
                        b.set(i);
                    }
                }
            }
            Alias::Host(_) | Alias::Prefix(_) => {
                let set = self.resolver().static_set(a);
                for (i, own) in self.facts.own.iter().enumerate() {
                    if own.intersects(&set) {
                        b.set(i);
                    }
                }
            }
            Alias::Service(s) => {
                let hosts = self
                    .doc
                    .services
                    .get(s)
                    .map(|d| d.hosts.clone())
                    .unwrap_or_default();
                for h in &hosts {
                    let hb = self.nodes(h);
                    b.or(&hb);
                }
            }
            Alias::SelfDevices | Alias::Internet | Alias::Role(_) => {}
        }
        b
    }

    /// Nodes whose own addresses or approved subnets meet `set`.
    pub fn touching(&self, set: &IpSet) -> Bits {
        let mut b = Bits::new(self.topo.nodes.len());
        if set.is_empty() {
            return b;
        }
        for i in 0..self.topo.nodes.len() {
            if self.facts.own[i].intersects(set) || self.facts.subnets[i].intersects(set) {
                b.set(i);
            }
        }
        b
    }
}

/// Is `a` resolved by address rather than by node identity?
pub(crate) fn is_static(a: &Alias) -> bool {
    matches!(
        a,
        Alias::Wildcard | Alias::DangerAll | Alias::Host(_) | Alias::Prefix(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_ops() {
        let mut a = Bits::new(130);
        a.set(0);
        a.set(64);
        a.set(129);
        assert!(a.get(64) && !a.get(65) && !a.get(1000));
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![0, 64, 129]);
        let mut b = Bits::new(130);
        assert_eq!(b.iter().count(), 0);
        b.set(3);
        b.or(&a);
        assert_eq!(b.iter().count(), 4);
        assert_eq!(b.count(), 4);
        assert_eq!(Bits::all(70).iter().count(), 70);
        assert_eq!(Bits::all(70).count(), 70);
        let mut i = Interner::default();
        let x = i.intern(a.clone());
        let y = i.intern(a);
        assert!(Arc::ptr_eq(&x, &y));
    }
}
