use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::tailcfg::{NetPortRange, PortRange};

/// What a client holds after applying chunk updates, as
/// `controlclient/map.go` keeps them.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Held(BTreeMap<String, Vec<FilterRule>>);

impl Held {
    pub(crate) fn apply(&mut self, update: &Chunks) {
        if update.get(CLEAR).is_some_and(Option::is_none) {
            self.0.clear();
        }
        for (name, rules) in update {
            match rules {
                _ if name == CLEAR => {}
                Some(r) => {
                    self.0.insert(name.clone(), r.clone());
                }
                None => {
                    self.0.remove(name);
                }
            }
        }
    }

    pub(crate) fn of(update: &Chunks) -> Held {
        let mut h = Held::default();
        h.apply(update);
        h
    }

    /// The rules concatenated in name order, as the client filters with.
    pub(crate) fn rules(&self) -> Vec<FilterRule> {
        self.0.values().flatten().cloned().collect()
    }

    /// What the rules mean, independent of how they are split: one entry
    /// per (source, rest of the rule).
    pub(crate) fn meaning(&self) -> BTreeSet<(String, String)> {
        meaning(&self.rules())
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

pub(crate) fn meaning(rules: &[FilterRule]) -> BTreeSet<(String, String)> {
    rules
        .iter()
        .flat_map(|r| {
            let rest = FilterRule {
                src_ips: Arc::new(Vec::new()),
                ..r.clone()
            };
            let rest = serde_json::to_string(&rest).expect("rule");
            let src: Vec<String> = if r.src_ips.is_empty() {
                vec![String::new()]
            } else {
                r.src_ips.to_vec()
            };
            src.into_iter().map(move |s| (s, rest.clone()))
        })
        .collect()
}

/// The sources of `ids` as the policy writes them: both addresses of each,
/// sorted as text.
fn sources(ids: &[u32]) -> Vec<String> {
    let mut out: Vec<String> = ids
        .iter()
        .flat_map(|id| {
            [
                format!("100.64.{}.{}", id / 256, id % 256),
                format!("fd7a:115c:a1e0::{id:x}"),
            ]
        })
        .collect();
    out.sort();
    out
}

fn rule(src: Vec<String>, port: u16) -> FilterRule {
    FilterRule {
        src_ips: Arc::new(src),
        dst_ports: vec![NetPortRange {
            ip: "100.64.0.1".into(),
            ports: PortRange {
                first: port,
                last: port,
            },
        }],
        ip_proto: vec![],
        cap_grant: vec![],
    }
}

fn json_len(c: &Chunks) -> usize {
    serde_json::to_vec(c).expect("json").len()
}

#[test]
fn a_full_map_clears_then_holds_the_filter_in_runs() {
    let ids: Vec<u32> = (1..=150).map(|i| i * 7).collect();
    let rules = vec![
        rule(sources(&ids), 22),
        rule(sources(&[3]), 80),
        rule(vec![], 443),
    ];
    let c = full(&rules);
    assert_eq!(c.get("*"), Some(&None), "a full map clears what is held");
    let held = Held::of(&c);
    assert_eq!(held.meaning(), meaning(&rules));
    // The 300 sources are split into runs; the small rules are whole.
    assert!(held.len() > 10, "{} chunks", held.len());
    for rules in held.0.values() {
        assert_eq!(rules.len(), 1);
        assert!(rules[0].src_ips.len() <= MAX_RUN.max(WHOLE_UP_TO));
    }
    // A rule with few sources is sent as it is, its sources shared.
    let small = held
        .0
        .values()
        .flatten()
        .find(|r| r.dst_ports[0].ports.first == 80)
        .unwrap();
    assert_eq!(small.src_ips, rules[1].src_ips);
    // So is a rule with no sources (a grant to a group with no members).
    assert!(
        held.rules()
            .iter()
            .any(|r| r.src_ips.is_empty() && r.dst_ports[0].ports.first == 443)
    );
}

#[test]
fn one_new_source_resends_its_run_not_the_rule() {
    let mut ids: Vec<u32> = (0..100).map(|i| 5 + i * 100).collect();
    let whole = json_len(&full(&filter_of(&ids)));
    let mut sent = 0;
    for joined in 0..20 {
        let old = filter_of(&ids);
        ids.push(10_007 + joined * 100);
        let new = filter_of(&ids);
        let d = delta(&old, &new).expect("a change");
        // A new node adds two sources: each changes its run, which may
        // split in two.
        assert!(d.len() <= 4, "{} chunks: {:?}", d.len(), d.keys());
        sent += json_len(&d);
        let mut held = Held::of(&full(&old));
        held.apply(&d);
        assert_eq!(held, Held::of(&full(&new)));
    }
    // Whole filters would be 20 times `whole`; the runs are a small part.
    assert!(
        sent * 4 < whole * 20,
        "deltas {sent} bytes against {} for whole filters",
        whole * 20
    );
}

fn filter_of(ids: &[u32]) -> Vec<FilterRule> {
    vec![rule(sources(ids), 0)]
}

#[test]
fn an_unchanged_filter_sends_nothing() {
    let ids: Vec<u32> = (0..60).collect();
    let a = vec![rule(sources(&ids), 1), rule(sources(&[1]), 2)];
    let b: Vec<FilterRule> = a
        .iter()
        .map(|r| FilterRule {
            src_ips: Arc::new((*r.src_ips).clone()),
            ..r.clone()
        })
        .collect();
    assert!(delta(&a, &b).is_none());
    // Another destination port changes every run of that rule.
    let mut c = b.clone();
    c[0].dst_ports[0].ports.first = 9;
    let d = delta(&a, &c).expect("a change");
    let runs = Held::of(&full(&a))
        .0
        .keys()
        .filter(|k| k.starts_with("0/"))
        .count();
    assert_eq!(d.len(), runs);
}

#[test]
fn deltas_leave_the_client_with_what_a_full_map_gives() {
    for seed in 0..20 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut sets: Vec<(Vec<u32>, u16)> = vec![(Vec::new(), 1)];
        let render = |sets: &[(Vec<u32>, u16)]| -> Vec<FilterRule> {
            sets.iter().map(|(ids, p)| rule(sources(ids), *p)).collect()
        };
        let mut old = render(&sets);
        let mut held = Held::of(&full(&old));
        for _ in 0..200 {
            let k = rng.gen_range(0..sets.len());
            match rng.gen_range(0..10) {
                0..=4 => sets[k].0.push(rng.gen_range(0..5_000)),
                5 | 6 if !sets[k].0.is_empty() => {
                    let i = rng.gen_range(0..sets[k].0.len());
                    sets[k].0.remove(i);
                }
                7 => sets[k].1 = rng.gen_range(1..4),
                8 if sets.len() < 4 => sets.insert(k, (vec![rng.gen_range(0..5_000)], 5)),
                9 if sets.len() > 1 => {
                    sets.remove(k);
                }
                _ => {}
            }
            for s in &mut sets {
                s.0.sort();
                s.0.dedup();
            }
            let new = render(&sets);
            if let Some(d) = delta(&old, &new) {
                held.apply(&d);
            }
            assert_eq!(held, Held::of(&full(&new)), "seed {seed}");
            assert_eq!(held.meaning(), meaning(&new), "seed {seed}");
            old = new;
        }
    }
}

#[test]
fn repeated_sources_are_sent_whole_under_unique_names() {
    // Not what the policy writes, but names must never collide: a second
    // run named like the first would replace it.
    let mut src = sources(&(0..40).collect::<Vec<_>>());
    src.extend(src.clone());
    let rules = vec![rule(src, 7)];
    let held = Held::of(&full(&rules));
    assert_eq!(held.meaning(), meaning(&rules));
    assert_eq!(held.len(), 1);
}

#[test]
fn about_one_source_in_eight_ends_a_run() {
    let src = sources(&(0..5_000).collect::<Vec<_>>());
    let marked = src.iter().filter(|s| marks(s)).count();
    let share = marked as f64 / src.len() as f64;
    assert!((0.08..0.17).contains(&share), "{marked} of {}", src.len());
}

#[test]
fn sources_are_cut_once_and_a_memo_never_answers_for_others() {
    let team = Arc::new(sources(&(0..50).collect::<Vec<_>>()));
    let (a, b) = (spans(&team).unwrap(), spans(&team).unwrap());
    assert!(Rc::ptr_eq(&a, &b), "cut once per shared `Arc`");
    drop(team);
    // Dropped sources free their address for others; each answer is
    // still the cut of what is there now.
    for round in 0..300u32 {
        let src = Arc::new(sources(&(round..round + 30).collect::<Vec<_>>()));
        assert_eq!(spans(&src), cut(&src), "round {round}");
    }
}
