//! The compiled state shared by every per-node output: the policy and the
//! topology it was compiled against, each rule's source and destination
//! node sets, route facts, and the lazily filled per-node outputs. Built by
//! `build`; read by `filter`, `peers`, `node_attrs`, `output`, `explain`
//! and `incr`. Holds data and cheap accessors only.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use ipnet::IpNet;

use super::ssh::SshIndex;
use super::types::NodeOutput;
use crate::policy::model::{CapMap, Doc, Ports, Rule, Topology};
use crate::policy::resolve::alias::Resolver;
use crate::policy::resolve::index::{Bits, Facts};
use crate::policy::resolve::ipset::IpSet;

/// Sources shared by all rules with the same `src` selector list.
pub(crate) struct SrcGroup {
    /// Nodes matched by identity (users, groups, tags, autogroups).
    pub node_bits: Arc<Bits>,
    /// Address part (`*`, hosts, prefixes).
    pub static_set: IpSet,
    /// The selectors include `autogroup:danger-all`: Tailscale writes such
    /// sources as the one wildcard `*`, not as the two `/0` prefixes.
    pub danger_all: bool,
    pub set: OnceLock<IpSet>,
    pub text: OnceLock<Arc<Vec<String>>>,
}

/// A rule with its node sets resolved.
pub(crate) struct CRule {
    pub src: usize,
    /// Nodes whose addresses or subnets are among the sources.
    pub src_nodes: Arc<Bits>,
    /// Nodes some destination applies to (`autogroup:self` aside).
    pub dst_nodes: Arc<Bits>,
    pub has_self: bool,
    /// Per `rule.dsts` entry: the nodes it applies to.
    pub dst_each: Vec<Arc<Bits>>,
    /// Per `rule.app_dsts` entry: the nodes it applies to.
    pub app_each: Vec<Arc<Bits>>,
    /// Per `rule.dsts` entry: its address set and text for a host/prefix.
    pub dst_static: Vec<Option<(IpSet, Vec<String>)>>,
    /// Per `rule.dsts` entry: `Dst::mask` as a set.
    pub dst_mask: Vec<Option<IpSet>>,
    /// The rule grants capabilities Tailscale mirrors back to the sources.
    pub has_reverse: bool,
}

pub(crate) struct Inner {
    /// The rules compiled: `source` with its deny rules subtracted
    /// (`deny::lower`); the same `Arc` when it has none.
    pub doc: Arc<Doc>,
    /// The policy as written.
    pub source: Arc<Doc>,
    /// The topology with auto-approved routes applied.
    pub topo: Arc<Topology>,
    /// The topology as given (the same `Arc` as `topo` when nothing was
    /// auto-approved): what the next topology is derived from.
    pub input: Arc<Topology>,
    pub index: HashMap<u64, usize>,
    pub facts: Facts,
    pub groups: Vec<SrcGroup>,
    pub rules: Vec<CRule>,
    /// Per node: approved subnet routes for which it is primary.
    pub primary: Vec<Vec<IpNet>>,
    /// Per node: nodes allowed to use its exit routes.
    pub exit_viewers: Vec<Option<Bits>>,
    /// Per node: for each primary route, the nodes that see it.
    pub route_viewers: Vec<Vec<(IpNet, Bits)>>,
    /// Nodes carrying the `disable-ipv4` attribute.
    pub no_ipv4: Bits,
    pub has_via: bool,
    pub outputs: Vec<OnceLock<Arc<NodeOutput>>>,
    /// SSH rules resolved once for all destinations (built lazily).
    pub ssh: OnceLock<SshIndex>,
    /// `autogroup:self` sources per (source group, user), with their text:
    /// the same for every device of the user, so a team of k devices
    /// renders them once per policy generation, not k times.
    pub self_srcs: SelfSrcs,
}

pub(crate) type SelfSrcs = Mutex<SelfSrcMap>;
/// (source group, user) to that user's devices among the sources, as a set
/// and as text.
pub(crate) type SelfSrcMap = HashMap<(usize, u64), (IpSet, Arc<Vec<String>>)>;

impl Inner {
    pub(crate) fn resolver(&self) -> Resolver<'_> {
        Resolver {
            doc: &self.doc,
            topo: &self.topo,
        }
    }

    /// Source addresses of rule `ri`.
    pub(crate) fn src_set(&self, ri: usize) -> &IpSet {
        let g = &self.groups[self.rules[ri].src];
        g.set.get_or_init(|| {
            // `autogroup:member` at 10,000 nodes is rebuilt per policy
            // generation: no allocation per node, no regrowth.
            let mut s = g.static_set.clone();
            let members = g.node_bits.count();
            s.reserve(members, members);
            for i in g.node_bits.iter() {
                s.append(&self.facts.own[i]);
            }
            s.normalize();
            s
        })
    }

    /// `SrcIPs` text of rule `ri` (shared by every node it is rendered for).
    pub(crate) fn src_text(&self, ri: usize) -> Arc<Vec<String>> {
        let g = &self.groups[self.rules[ri].src];
        g.text
            .get_or_init(|| {
                let set = self.src_set(ri);
                if g.danger_all && set.covers(&IpSet::full()) {
                    Arc::new(vec!["*".to_string()])
                } else {
                    Arc::new(set.to_strings())
                }
            })
            .clone()
    }

    pub(crate) fn via_ok(&self, rule: &Rule, i: usize) -> bool {
        rule.via.is_empty() || self.topo.nodes[i].tags.iter().any(|t| rule.via.contains(t))
    }

    pub(crate) fn user_node(&self, i: usize) -> bool {
        let n = &self.topo.nodes[i];
        n.tags.is_empty() && n.user.is_some()
    }

    /// Untagged nodes of `v`'s user (none when `v` is tagged).
    pub(crate) fn same_user_nodes(&self, v: usize) -> &[usize] {
        match self.topo.nodes[v].user {
            Some(u) if self.topo.nodes[v].tags.is_empty() => self
                .facts
                .user_nodes
                .get(&u)
                .map(Vec::as_slice)
                .unwrap_or(&[]),
            _ => &[],
        }
    }
}

/// How a destination entry applies to one node.
pub(crate) enum Target {
    /// The node's own addresses.
    Own,
    /// Literal text for `DstPorts[].IP` (`*`, a prefix, ...).
    Text(Vec<String>),
}

pub(crate) struct RuleOut<'a> {
    pub src: Cow<'a, IpSet>,
    /// Pre-rendered `src` when it is the rule's whole source set.
    pub src_text: Option<Arc<Vec<String>>>,
    pub protos: Vec<i32>,
    pub dst: Vec<(String, Ports)>,
    pub cap_grant: Option<CapMap>,
    pub cap_dsts: Vec<String>,
}

/// The capability Tailscale grants in the opposite direction of `cap`.
pub(crate) fn reverse_cap(cap: &str) -> Option<&'static str> {
    match cap {
        "tailscale.com/cap/drive" => Some("tailscale.com/cap/drive-sharer"),
        "tailscale.com/cap/relay" => Some("tailscale.com/cap/relay-target"),
        _ => None,
    }
}
