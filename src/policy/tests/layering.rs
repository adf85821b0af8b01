//! The layering rule of `policy`, checked on the source text: every
//! reference to another module of `policy` (`use` lines and inline paths,
//! through `crate::policy::…`, `super::…` or `self::…`) must point down
//!
//! ```text
//! check → compile → resolve → model ← syntax
//! ```
//!
//! (or sideways within a layer), never at an ancestor module (the facade
//! `policy.rs` or a layer's own root file), and the file-level graph must
//! have no cycle. Test code (`#[cfg(test)]` onwards, `tests/`) is exempt:
//! it sits above everything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type ModPath = Vec<String>;

/// Which layers each layer may refer to (itself included).
fn allowed(layer: &str) -> &'static [&'static str] {
    match layer {
        "model" => &["model"],
        "syntax" => &["syntax", "model"],
        "resolve" => &["resolve", "model"],
        "compile" => &["compile", "resolve", "model"],
        "check" => &["check", "compile", "resolve", "model"],
        _ => &[],
    }
}

fn policy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/policy")
}

/// Every non-test source file under `src/policy/` with its module path.
fn files(dir: &Path, base: &[String], out: &mut Vec<(ModPath, PathBuf)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read src/policy")
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            if name == "tests" {
                continue;
            }
            let mut b = base.to_vec();
            b.push(name);
            files(&path, &b, out);
        } else if let Some(stem) = name.strip_suffix(".rs") {
            if stem == "tests" {
                continue;
            }
            let mut m = base.to_vec();
            m.push(stem.to_string());
            out.push((m, path));
        }
    }
}

/// The code of a file without comments and without its test module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Module paths referred to from `from`, given the set of known modules.
/// `super::x` and `crate::policy::x::y` resolve to the deepest known
/// module along the path (an item path ends at the module defining it).
fn refs(from: &ModPath, text: &str, known: &BTreeSet<ModPath>) -> BTreeSet<ModPath> {
    let mut out = BTreeSet::new();
    let bytes: Vec<char> = text.chars().collect();
    let word = |i: usize| -> (String, usize) {
        let mut j = i;
        while j < bytes.len() && (bytes[j].is_alphanumeric() || bytes[j] == '_' || bytes[j] == ':')
        {
            j += 1;
        }
        (bytes[i..j].iter().collect(), j)
    };
    let mut i = 0;
    while i < bytes.len() {
        let boundary = i == 0 || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_');
        if !boundary || !bytes[i].is_alphabetic() {
            i += 1;
            continue;
        }
        let (w, j) = word(i);
        i = j.max(i + 1);
        let segs: Vec<&str> = w.split("::").filter(|s| !s.is_empty()).collect();
        let (mut base, rest): (ModPath, &[&str]) = match segs.first() {
            Some(&"crate") if segs.get(1) == Some(&"policy") => (vec![], &segs[2..]),
            Some(&"self") => (from.clone(), &segs[1..]),
            Some(&"super") => {
                // `super` of a file module is its parent module.
                let mut b = from.clone();
                let mut k = 0;
                while segs.get(k) == Some(&"super") {
                    b.pop();
                    k += 1;
                }
                (b, &segs[k..])
            }
            _ => continue,
        };
        // A `{`-group after the path (`use super::{a, b}`) names items or
        // modules of `base` + `rest`.
        let mut target = base.clone();
        for s in rest {
            let mut next = target.clone();
            next.push(s.to_string());
            if known.contains(&next) {
                target = next;
            } else {
                break;
            }
        }
        if rest.len() == target.len() - base.len() && w.ends_with("::") {
            let group: String = bytes[j..]
                .iter()
                .skip_while(|c| c.is_whitespace())
                .take_while(|c| **c != '}')
                .collect();
            if let Some(g) = group.strip_prefix('{') {
                for item in g.split(',') {
                    let first = item.trim().split("::").next().unwrap_or("").trim();
                    let mut next = target.clone();
                    next.push(first.to_string());
                    out.insert(if known.contains(&next) {
                        next
                    } else {
                        target.clone()
                    });
                }
                continue;
            }
        }
        base.clear();
        out.insert(target);
    }
    out.remove(from);
    out
}

fn graph() -> BTreeMap<ModPath, BTreeSet<ModPath>> {
    let mut fs = Vec::new();
    files(&policy_dir(), &[], &mut fs);
    let mut known: BTreeSet<ModPath> = fs.iter().map(|(m, _)| m.clone()).collect();
    known.insert(vec![]);
    fs.iter()
        .map(|(m, p)| {
            let text = std::fs::read_to_string(p).expect("read source");
            (m.clone(), refs(m, &code(&text), &known))
        })
        .collect()
}

fn show(m: &ModPath) -> String {
    if m.is_empty() {
        "policy".into()
    } else {
        format!("policy::{}", m.join("::"))
    }
}

#[test]
fn imports_run_one_way() {
    let g = graph();
    assert!(g.len() >= 30, "found only {} modules", g.len());
    let mut bad = Vec::new();
    for (from, tos) in &g {
        let layer = from[0].as_str();
        assert!(
            !allowed(layer).is_empty(),
            "{} is in no layer (add it to one of syntax, model, resolve, compile, check)",
            show(from)
        );
        for to in tos {
            let ok =
                !to.is_empty() && allowed(layer).contains(&to[0].as_str()) && !from.starts_with(to);
            if !ok {
                bad.push(format!("{} → {}", show(from), show(to)));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "imports against the layering:\n{}",
        bad.join("\n")
    );
}

#[test]
fn no_import_cycle() {
    let g = graph();
    // Depth-first search with colours; report the first cycle found.
    fn visit(
        m: &ModPath,
        g: &BTreeMap<ModPath, BTreeSet<ModPath>>,
        state: &mut BTreeMap<ModPath, u8>,
        stack: &mut Vec<ModPath>,
    ) -> Option<Vec<ModPath>> {
        match state.get(m) {
            Some(2) => return None,
            Some(1) => {
                let i = stack.iter().position(|x| x == m).unwrap_or(0);
                return Some(stack[i..].to_vec());
            }
            _ => {}
        }
        state.insert(m.clone(), 1);
        stack.push(m.clone());
        for n in g.get(m).into_iter().flatten() {
            if let Some(c) = visit(n, g, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(m.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in g.keys() {
        let mut stack = Vec::new();
        if let Some(c) = visit(m, &g, &mut state, &mut stack) {
            let names: Vec<String> = c.iter().map(show).collect();
            panic!("import cycle: {}", names.join(" → "));
        }
    }
}

/// The scanner itself: it must see `use` groups, inline paths, `super`
/// and `self`, or the two tests above would pass vacuously.
#[test]
fn scanner_sees_every_kind_of_reference() {
    let known: BTreeSet<ModPath> = [
        vec![],
        vec!["compile".to_string()],
        vec!["compile".to_string(), "inner".to_string()],
        vec!["compile".to_string(), "filter".to_string()],
        vec!["model".to_string()],
        vec!["resolve".to_string()],
        vec!["resolve".to_string(), "ipset".to_string()],
    ]
    .into_iter()
    .collect();
    let from = vec!["compile".to_string(), "filter".to_string()];
    let text = "use super::{inner::Inner, Compiled};\n\
                use crate::policy::resolve::ipset::IpSet;\n\
                fn f() { crate::policy::model::Doc::default(); super::super::Policy::x(); }";
    let got = refs(&from, &code(text), &known);
    let want: BTreeSet<ModPath> = [
        vec!["compile".to_string(), "inner".to_string()],
        vec!["compile".to_string()],
        vec!["resolve".to_string(), "ipset".to_string()],
        vec!["model".to_string()],
        vec![],
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want);
    // Comments and test modules do not count.
    let text =
        "// use crate::policy::model;\n#[cfg(test)]\nmod tests { use super::super::Policy; }";
    assert!(refs(&from, &code(text), &known).is_empty());
}
