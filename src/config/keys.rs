//! Unknown-key detection with dotted paths and suggestions.
//!
//! serde's `deny_unknown_fields` stops at the first stray key and names only
//! the field, not where it sits. Instead, the schema is read off the `raw`
//! types themselves: a probing deserializer walks `RawConfig` once and
//! records, for every struct, the field names serde expects. The parsed YAML
//! tree is then checked against that schema, so the accepted keys can never
//! drift from what `raw` actually deserializes, and every unknown key is
//! reported with its path, a removal note for keys Headscale dropped, or a
//! "did you mean" for near misses.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_norway::Value;

/// A key the schema does not know, with its dotted path (`dns.magicdns`,
/// `dns.extra_records[0].ttl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    pub path: String,
    /// A replacement key, if one is close enough or Headscale renamed it.
    pub suggestion: Option<String>,
    /// Why the key is gone, for keys Headscale removed.
    pub note: Option<&'static str>,
}

impl fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown key {:?}", self.path)?;
        if let Some(note) = self.note {
            write!(f, " ({note})")?;
        } else if let Some(suggestion) = &self.suggestion {
            write!(f, " (did you mean {suggestion:?}?)")?;
        }
        Ok(())
    }
}

/// Keys older Headscale versions accepted, with what replaced them. Stale
/// configs are common, so a pointer beats a bare "unknown key".
const REMOVED: &[(&str, &str)] = &[
    (
        "dns_config",
        "Headscale 0.23 replaced it with the \"dns\" section",
    ),
    ("acl_policy_path", "renamed to \"policy.path\""),
    (
        "ip_prefixes",
        "replaced by \"prefixes.v4\" and \"prefixes.v6\"",
    ),
    (
        "private_key_path",
        "the legacy protocol key is gone; only \"noise.private_key_path\" is used",
    ),
    ("db_type", "replaced by the \"database\" section"),
    ("db_path", "replaced by \"database.sqlite.path\""),
    ("db_host", "replaced by \"database.postgres.host\""),
    (
        "randomize_client_port",
        "set \"randomizeClientPort\" in the policy file instead",
    ),
    (
        "dns.use_username_in_magic_dns",
        "removed by Headscale; hostnames no longer include the user",
    ),
    ("oidc.strip_email_domain", "removed in Headscale 0.26"),
    ("oidc.map_legacy_users", "removed in Headscale 0.26"),
];

/// Checks `value` against the schema of `T` and returns every unknown key.
pub(super) fn find_unknown<T: for<'de> Deserialize<'de>>(value: &Value) -> Vec<UnknownKey> {
    let schema = shape_of::<T>();
    let mut all_paths = Vec::new();
    collect_paths(&schema, "", &mut all_paths);
    let mut out = Vec::new();
    walk(value, &schema, "", &all_paths, &mut out);
    out
}

/// What the deserializer of a type accepts, as far as key names go.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Shape {
    /// A scalar, or a type the probe cannot see into: accepts anything.
    Leaf,
    Struct(Vec<(&'static str, Shape)>),
    Seq(Box<Shape>),
    /// Free-form keys (e.g. split DNS domains), values of one shape.
    Map(Box<Shape>),
}

pub(super) fn shape_of<T: for<'de> Deserialize<'de>>() -> Shape {
    let mut shape = Shape::Leaf;
    // A failure leaves a partial schema; `deny_unknown_fields` is still the
    // backstop, and a unit test pins that the probe covers `RawConfig`.
    let _ = T::deserialize(Probe { shape: &mut shape });
    shape
}

fn walk(value: &Value, shape: &Shape, path: &str, all: &[String], out: &mut Vec<UnknownKey>) {
    let value = match value {
        Value::Tagged(tagged) => &tagged.value,
        other => other,
    };
    match (shape, value) {
        (Shape::Struct(fields), Value::Mapping(map)) => {
            for (key, child) in map {
                let name = key_text(key);
                let child_path = join(path, &name);
                match fields.iter().find(|(field, _)| *field == name) {
                    Some((_, child_shape)) => walk(child, child_shape, &child_path, all, out),
                    None => out.push(unknown(child_path, fields, path, all)),
                }
            }
        }
        (Shape::Map(inner), Value::Mapping(map)) => {
            for (key, child) in map {
                walk(child, inner, &join(path, &key_text(key)), all, out);
            }
        }
        (Shape::Seq(inner), Value::Sequence(items)) => {
            for (index, item) in items.iter().enumerate() {
                walk(item, inner, &format!("{path}[{index}]"), all, out);
            }
        }
        // Type mismatches are serde's to report, with line and column.
        _ => {}
    }
}

fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "~".to_string(),
        _ => "<complex key>".to_string(),
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

fn unknown(path: String, siblings: &[(&str, Shape)], parent: &str, all: &[String]) -> UnknownKey {
    let generic = strip_indices(&path);
    if let Some((_, note)) = REMOVED.iter().find(|(key, _)| *key == generic) {
        return UnknownKey {
            path,
            suggestion: None,
            note: Some(note),
        };
    }
    let name = generic.rsplit('.').next().unwrap_or(&generic).to_string();
    let suggestion = closest(&name, siblings.iter().map(|(field, _)| *field))
        .map(|field| join(parent, field))
        .or_else(|| {
            // The right key in the wrong section (`base_domain` at the top).
            all.iter()
                .find(|candidate| {
                    let candidate_name = candidate.rsplit('.').next().unwrap_or(candidate);
                    normalize(candidate_name) == normalize(&name)
                })
                .cloned()
        });
    UnknownKey {
        path,
        suggestion,
        note: None,
    }
}

fn strip_indices(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut depth = 0usize;
    for c in path.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// The sibling spelled most like `name`: the same once case, `_` and `-`
/// are ignored, or within a small edit distance.
fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let wanted = normalize(name);
    let limit = (wanted.chars().count() / 3).clamp(1, 3);
    candidates
        .map(|candidate| (edit_distance(&wanted, &normalize(candidate)), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

fn collect_paths(shape: &Shape, prefix: &str, out: &mut Vec<String>) {
    if let Shape::Struct(fields) = shape {
        for (name, child) in fields {
            let path = join(prefix, name);
            collect_paths(child, &path, out);
            out.push(path);
        }
    }
}

// === impl Probe ===
//
// A deserializer that feeds every visitor the smallest value it accepts and
// records the structure on the way: all fields for structs, one element for
// sequences, one entry for maps, `Some` for options.

#[derive(Debug)]
struct ProbeError(String);

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProbeError {}

impl de::Error for ProbeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ProbeError(msg.to_string())
    }
}

struct Probe<'s> {
    shape: &'s mut Shape,
}

macro_rules! probe_leaf {
    ($($method:ident => $visit:ident($($value:expr)?)),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
            *self.shape = Shape::Leaf;
            visitor.$visit($($value)?)
        })*
    };
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = ProbeError;

    probe_leaf! {
        deserialize_any => visit_str(""),
        deserialize_bool => visit_bool(false),
        deserialize_i8 => visit_i64(0),
        deserialize_i16 => visit_i64(0),
        deserialize_i32 => visit_i64(0),
        deserialize_i64 => visit_i64(0),
        deserialize_u8 => visit_u64(0),
        deserialize_u16 => visit_u64(0),
        deserialize_u32 => visit_u64(0),
        deserialize_u64 => visit_u64(0),
        deserialize_f32 => visit_f64(0.0),
        deserialize_f64 => visit_f64(0.0),
        deserialize_char => visit_char('a'),
        deserialize_str => visit_str(""),
        deserialize_string => visit_str(""),
        deserialize_bytes => visit_bytes(&[]),
        deserialize_byte_buf => visit_bytes(&[]),
        deserialize_unit => visit_unit(),
        deserialize_identifier => visit_str(""),
        deserialize_ignored_any => visit_unit(),
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        let mut element = Shape::Leaf;
        let result = visitor.visit_seq(OneElement {
            shape: Some(&mut element),
        });
        *self.shape = Shape::Seq(Box::new(element));
        result
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        let mut value = Shape::Leaf;
        let result = visitor.visit_map(Fields {
            names: &["key"],
            next: 0,
            shapes: Vec::new(),
            pending: Some(&mut value),
        });
        *self.shape = Shape::Map(Box::new(value));
        result
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        let mut access = Fields {
            names: fields,
            next: 0,
            shapes: fields.iter().map(|name| (*name, Shape::Leaf)).collect(),
            pending: None,
        };
        let result = visitor.visit_map(&mut access);
        *self.shape = Shape::Struct(access.shapes);
        result
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, ProbeError> {
        Err(ProbeError(format!("enum {name} cannot be probed")))
    }
}

struct OneElement<'s> {
    shape: Option<&'s mut Shape>,
}

impl<'de> SeqAccess<'de> for OneElement<'_> {
    type Error = ProbeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ProbeError> {
        match self.shape.take() {
            Some(shape) => seed.deserialize(Probe { shape }).map(Some),
            None => Ok(None),
        }
    }
}

/// Map access over a struct's fields (`shapes` filled per field), or over a
/// single map entry (`pending` receives the value's shape).
struct Fields<'s> {
    names: &'static [&'static str],
    next: usize,
    shapes: Vec<(&'static str, Shape)>,
    pending: Option<&'s mut Shape>,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = ProbeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ProbeError> {
        let Some(name) = self.names.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        seed.deserialize(de::value::BorrowedStrDeserializer::new(name))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ProbeError> {
        if let Some(shape) = self.pending.take() {
            return seed.deserialize(Probe { shape });
        }
        match self.shapes.get_mut(self.next.saturating_sub(1)) {
            Some((_, shape)) => seed.deserialize(Probe { shape }),
            None => Err(ProbeError("value without a key".to_string())),
        }
    }
}
