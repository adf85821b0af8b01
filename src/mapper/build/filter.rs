//! A node's packet filter as named chunks (`MapResponse.PacketFilters`), so
//! that a delta carries only the part of the filter that changed.
//!
//! Under `autogroup:self` every join changes the sources of each of its
//! team's filters: sent whole, every team member's delta repeated all of its
//! team's addresses, and a host that every member reaches (an MCP server)
//! got every member's addresses again with each join. So a rule with many
//! sources is sent as runs of its `SrcIPs`, each run a chunk of its own
//! holding the rule with just those sources. A run ends after a source that
//! a hash of its text marks (one in [`CUT_ONE_IN`]), so where the runs break
//! depends on the sources, not on their positions: adding or removing one
//! source changes the run it is in (two when it makes or removes a break),
//! and every other chunk stays what the client holds.
//!
//! Splitting a rule by sources keeps its meaning: a packet or capability
//! matches a rule when its source is among `SrcIPs` and its destination and
//! protocol match, so `{A ∪ B, D}` and the pair `{A, D}`, `{B, D}` accept
//! the same packets and grant the same capabilities. Clients keep the
//! chunks by name and concatenate them; a `null` chunk deletes its name and
//! `"*": null` first clears all (`control/controlclient/map.go`,
//! `tailcfg.MapResponse.PacketFilters`, capability version 81).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Weak};

use crate::tailcfg::FilterRule;

/// What `PacketFilters` carries: chunk name to its rules, `None` to delete.
pub type Chunks = BTreeMap<String, Option<Vec<FilterRule>>>;

/// The name that clears every chunk the client holds.
const CLEAR: &str = "*";
/// Rules with at most this many sources are one chunk: resending a few
/// addresses costs less than repeating the rule's destinations per run.
const WHOLE_UP_TO: usize = 16;
/// A source ends its run with probability 1 / `CUT_ONE_IN`.
const CUT_ONE_IN: u64 = 8;
/// Bounds on a run, so that no source text makes runs of one or of
/// thousands (a bound moves later breaks, never correctness).
const MIN_RUN: usize = 2;
const MAX_RUN: usize = 32;

/// One chunk: sources `src` of rule `rule`.
struct Run<'a> {
    rule: usize,
    src: &'a [String],
}

impl Run<'_> {
    /// Sorting key and name: the rule's position and the run's first
    /// source, unique because a rule's sources are.
    fn key(&self) -> (usize, &str) {
        (self.rule, self.src.first().map_or("", String::as_str))
    }

    fn name(&self) -> String {
        let (rule, first) = self.key();
        format!("{rule}/{first}")
    }

    fn render(&self, rules: &[FilterRule]) -> Vec<FilterRule> {
        let r = &rules[self.rule];
        // A run of all the rule's sources shares them.
        let src_ips = if self.src.len() == r.src_ips.len() {
            r.src_ips.clone()
        } else {
            Arc::new(self.src.to_vec())
        };
        vec![FilterRule {
            src_ips,
            dst_ports: r.dst_ports.clone(),
            ip_proto: r.ip_proto.clone(),
            cap_grant: r.cap_grant.clone(),
        }]
    }
}

/// The chunks of a full map: clear what the client holds, then every run.
pub fn full(rules: &[FilterRule]) -> Chunks {
    let mut out = Chunks::new();
    out.insert(CLEAR.to_string(), None);
    for run in runs(rules) {
        out.insert(run.name(), Some(run.render(rules)));
    }
    out
}

/// The chunks that turn `old` (as the client holds it, from [`full`] and
/// earlier deltas) into `new`; `None` when nothing changed.
pub fn delta(old: &[FilterRule], new: &[FilterRule]) -> Option<Chunks> {
    let (a, b) = (runs(old), runs(new));
    // Per rule position in both: whether all but the sources are equal.
    let same_rest: Vec<bool> = old
        .iter()
        .zip(new)
        .map(|(o, n)| {
            o.dst_ports == n.dst_ports && o.ip_proto == n.ip_proto && o.cap_grant == n.cap_grant
        })
        .collect();
    let mut out = Chunks::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let order = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.key().cmp(&y.key()),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                out.insert(a[i].name(), None);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.insert(b[j].name(), Some(b[j].render(new)));
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (x, y) = (&a[i], &b[j]);
                if !(same_rest[x.rule] && x.src == y.src) {
                    out.insert(y.name(), Some(y.render(new)));
                }
                i += 1;
                j += 1;
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Every run of `rules`, sorted by key.
fn runs(rules: &[FilterRule]) -> Vec<Run<'_>> {
    let mut out = Vec::new();
    for (rule, r) in rules.iter().enumerate() {
        let src: &[String] = &r.src_ips;
        match spans(&r.src_ips) {
            Some(spans) => out.extend(spans.iter().map(|&(from, to)| Run {
                rule,
                src: &src[from as usize..to as usize],
            })),
            None => out.push(Run { rule, src }),
        }
    }
    out
}

/// Where a rule's sources are cut into runs, as `(from, to)` positions
/// sorted by each run's first source; `None`: the rule is sent whole.
type Spans = Rc<[(u32, u32)]>;

/// Slots of the per-thread memo of [`spans`], by the sources' allocation:
/// enough for the sources of the teams a burst of joins changes and of
/// the filters their members were sent before (with 64, a 10,000-node
/// enrollment still cut sources in 1 % of the server's samples).
const SLOTS: usize = 1024;
type Slot = (Weak<Vec<String>>, Option<Spans>);

thread_local! {
    /// The sources of a team's `autogroup:self` rule are one `Arc` shared
    /// by every member's filter, and a join compares about a hundred such
    /// filters: each `Arc` is cut once, not once per member. A slot holds
    /// its `Arc` weakly, so the allocation (and with it the address the
    /// slot is found by) is not reused while the slot can answer for it.
    static MEMO: RefCell<Vec<Slot>> = RefCell::new(vec![(Weak::new(), None); SLOTS]);
}

fn spans(src: &Arc<Vec<String>>) -> Option<Spans> {
    if src.len() <= WHOLE_UP_TO {
        return None;
    }
    MEMO.with(|memo| {
        let mut memo = memo.borrow_mut();
        let slot = &mut memo[(Arc::as_ptr(src) as usize >> 4) % SLOTS];
        if !std::ptr::eq(slot.0.as_ptr(), Arc::as_ptr(src)) {
            *slot = (Arc::downgrade(src), cut(src));
        }
        slot.1.clone()
    })
}

fn cut(src: &[String]) -> Option<Spans> {
    let mut spans: Vec<(u32, u32)> = Vec::new();
    let mut start = 0;
    for (i, s) in src.iter().enumerate() {
        let len = i + 1 - start;
        if len >= MAX_RUN || (len >= MIN_RUN && marks(s)) {
            spans.push((start as u32, i as u32 + 1));
            start = i + 1;
        }
    }
    if start < src.len() {
        spans.push((start as u32, src.len() as u32));
    }
    let first = |&(from, _): &(u32, u32)| &src[from as usize];
    spans.sort_by(|x, y| first(x).cmp(first(y)));
    // Names must be unique: the runs' first sources must differ, as they
    // do for a rule's sources (a set). Anything else is sent whole.
    spans
        .windows(2)
        .all(|w| first(&w[0]) != first(&w[1]))
        .then(|| spans.into())
}

/// Whether `s` ends a run: a multiplicative hash of its last eight bytes,
/// where addresses differ (a few instructions per source).
fn marks(s: &str) -> bool {
    let b = s.as_bytes();
    let tail = &b[b.len().saturating_sub(8)..];
    let x = tail.iter().fold(0u64, |x, c| (x << 8) | u64::from(*c));
    let h = (x ^ (b.len() as u64)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> 32).is_multiple_of(CUT_ONE_IN)
}

#[cfg(test)]
pub(super) mod tests;
