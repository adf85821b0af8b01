//! Property tests of the HuJSON parser (fixed-seed generator, no deps):
//! random JSON documents, printed with random whitespace, `//` and `/* */`
//! comments and trailing commas, must parse to the same value as the plain
//! JSON does with serde_json; every strict prefix of such a document (it
//! ends with its closing brace) must be rejected with a position inside
//! the prefix.

use serde_json::{Map, Value};

use crate::policy::syntax::hujson::parse;

use super::rng::Rng;

const CHARS: &[&str] = &[
    "a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "é", "😀", "*", ",", "}", "\u{1}", ":",
];

fn string(rng: &mut Rng) -> String {
    (0..rng.below(8))
        .map(|_| CHARS[rng.below(CHARS.len() as u64) as usize])
        .collect()
}

fn value(rng: &mut Rng, depth: usize) -> Value {
    let leaf = depth >= 4 || rng.chance(3);
    match rng.below(if leaf { 5 } else { 7 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(2)),
        2 => {
            let n = rng.next() as i64 >> rng.below(64);
            Value::from(n)
        }
        3 => Value::from([0.5, -1.25, 1e-3, 6.02e23, 0.0][rng.below(5) as usize]),
        4 => Value::String(string(rng)),
        5 => Value::Array((0..rng.below(5)).map(|_| value(rng, depth + 1)).collect()),
        _ => Value::Object(object(rng, depth)),
    }
}

fn object(rng: &mut Rng, depth: usize) -> Map<String, Value> {
    let mut m = Map::new();
    for _ in 0..rng.below(5) {
        m.insert(string(rng), value(rng, depth + 1));
    }
    m
}

/// Whitespace and comments between tokens.
fn filler(rng: &mut Rng, out: &mut String) {
    for _ in 0..rng.below(3) {
        match rng.below(5) {
            0 => out.push(' '),
            1 => out.push_str("\n  "),
            2 => out.push('\t'),
            3 => out.push_str(" // note, {not} \"json\" é\n"),
            _ => out.push_str("/* block\n * with , ] and // inside */"),
        }
    }
}

fn print(rng: &mut Rng, v: &Value, out: &mut String) {
    match v {
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                filler(rng, out);
                print(rng, x, out);
                filler(rng, out);
                if i + 1 < a.len() || rng.chance(2) {
                    out.push(',');
                }
            }
            filler(rng, out);
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                filler(rng, out);
                out.push_str(&Value::String(k.clone()).to_string());
                filler(rng, out);
                out.push(':');
                filler(rng, out);
                print(rng, x, out);
                filler(rng, out);
                if i + 1 < m.len() || rng.chance(2) {
                    out.push(',');
                }
            }
            filler(rng, out);
            out.push('}');
        }
        leaf => out.push_str(&leaf.to_string()),
    }
}

#[test]
fn decorated_json_parses_to_the_same_value() {
    let mut rng = Rng(0x0DDB_1A5E_5BAD_5EED);
    let mut bytes = 0;
    for case in 0..400 {
        let v = Value::Object(object(&mut rng, 0));
        let mut text = String::new();
        filler(&mut rng, &mut text);
        print(&mut rng, &v, &mut text);
        filler(&mut rng, &mut text);
        let want: Value = serde_json::from_str(&v.to_string()).expect("plain JSON");
        let (got, pos) = parse(&text).unwrap_or_else(|e| panic!("case {case}: {e:?}\n{text}"));
        assert_eq!(got, want, "case {case}:\n{text}");
        assert!(pos.contains_key(""), "root position recorded");
        bytes += text.len();
    }
    // The generator must produce real documents, not just `{}`.
    assert!(bytes > 400 * 100, "only {bytes} bytes generated");
}

#[test]
fn truncations_error_with_in_bounds_positions() {
    let mut rng = Rng(0xC0FF_EE00_1234_5678);
    let mut prefixes = 0;
    for case in 0..60 {
        let v = Value::Object(object(&mut rng, 1));
        let mut text = String::new();
        filler(&mut rng, &mut text);
        print(&mut rng, &v, &mut text);
        assert!(parse(&text).is_ok(), "case {case}: full text parses");
        for k in 0..text.len() {
            if !text.is_char_boundary(k) {
                continue;
            }
            let prefix = &text[..k];
            prefixes += 1;
            let e = match parse(prefix) {
                Err(e) => e,
                Ok(_) => panic!("case {case}: prefix {k} accepted:\n{prefix}"),
            };
            let lines: Vec<&str> = prefix.split('\n').collect();
            assert!(
                e.line >= 1 && e.line <= lines.len(),
                "case {case} prefix {k}: line {} of {}",
                e.line,
                lines.len()
            );
            let width = lines[e.line - 1].chars().count();
            assert!(
                e.col >= 1 && e.col <= width + 1,
                "case {case} prefix {k}: column {} of {} ({e:?})",
                e.col,
                width + 1
            );
        }
    }
    assert!(prefixes > 60 * 100, "only {prefixes} prefixes checked");
}
