//! Unknown keys: rejected at every level, reported with their dotted path.

use serde_norway::Value;

use super::super::keys::{Shape, shape_of};
use super::super::raw::RawConfig;
use super::*;

/// Free-form maps: any key is valid there.
const FREE_FORM: &[&str] = &["dns.nameservers.split", "oidc.extra_params"];

/// Paths of every mapping in `value` (the root is "").
fn mapping_paths(value: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Mapping(map) => {
            out.push(path.to_string());
            for (key, child) in map {
                let key = key.as_str().unwrap();
                let child_path = if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                };
                mapping_paths(child, &child_path, out);
            }
        }
        Value::Sequence(items) => {
            for (index, item) in items.iter().enumerate() {
                mapping_paths(item, &format!("{path}[{index}]"), out);
            }
        }
        _ => {}
    }
}

/// Inserts `key: 1` into the mapping at `path`.
fn insert_at(value: &mut Value, path: &str, key: &str) {
    let mut node = value;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (name, index) = match part.split_once('[') {
            Some((name, rest)) => (
                name,
                Some(rest.trim_end_matches(']').parse::<usize>().unwrap()),
            ),
            None => (part, None),
        };
        node = node.get_mut(name).unwrap();
        if let Some(index) = index {
            node = node.get_mut(index).unwrap();
        }
    }
    node.as_mapping_mut()
        .unwrap()
        .insert(Value::from(key), Value::from(1));
}

fn assert_rejected_everywhere(document: &str) {
    let doc: Value = serde_norway::from_str(document).unwrap();
    let mut paths = Vec::new();
    mapping_paths(&doc, "", &mut paths);
    let paths: Vec<_> = paths
        .into_iter()
        .filter(|p| !FREE_FORM.contains(&p.as_str()))
        .collect();
    assert!(
        paths.len() > 10,
        "the document should have many sections: {paths:?}"
    );
    for path in paths {
        let mut broken = doc.clone();
        insert_at(&mut broken, &path, "no_such_key");
        let text = serde_norway::to_string(&broken).unwrap();
        let expected = if path.is_empty() {
            "no_such_key".to_string()
        } else {
            format!("{path}.no_such_key")
        };
        match load_str(&text) {
            Err(Error::UnknownKeys { keys, .. }) => {
                assert_eq!(keys.len(), 1, "{path}: {keys:?}");
                assert_eq!(keys[0].path, expected);
            }
            other => panic!("{path}: expected an unknown-key error, got {other:?}"),
        }
    }
}

#[test]
fn unknown_keys_are_rejected_at_every_level_of_a_full_config() {
    assert_rejected_everywhere(HEADSCALE_FULL);
}

#[test]
fn unknown_keys_are_rejected_at_every_level_of_the_example() {
    assert_rejected_everywhere(EXAMPLE);
}

#[test]
fn misspelt_key_gets_a_suggestion() {
    let err = error_of("dns:\n  magicdns: true\n");
    assert!(
        err.ends_with(r#"unknown key "dns.magicdns" (did you mean "dns.magic_dns"?)"#),
        "{err}"
    );
    let err = error_of("derp:\n  server:\n    regoin_id: 5\n");
    assert!(
        err.contains(r#""derp.server.regoin_id" (did you mean "derp.server.region_id"?)"#),
        "{err}"
    );
    let err = error_of("server_ulr: https://x.example\n");
    assert!(err.contains(r#"(did you mean "server_url"?)"#), "{err}");
}

#[test]
fn key_in_the_wrong_section_points_to_the_right_one() {
    let err = error_of("base_domain: example.org\n");
    assert!(
        err.contains(r#"unknown key "base_domain" (did you mean "dns.base_domain"?)"#),
        "{err}"
    );
}

#[test]
fn unrelated_key_gets_no_suggestion() {
    let err = error_of("completely_different: 1\n");
    assert!(
        err.ends_with(r#"unknown key "completely_different""#),
        "{err}"
    );
}

#[test]
fn removed_headscale_keys_explain_the_replacement() {
    let err = error_of("dns_config:\n  magic_dns: true\n");
    assert!(
        err.contains(
            r#"unknown key "dns_config" (Headscale 0.23 replaced it with the "dns" section)"#
        ),
        "{err}"
    );
    let err = error_of("acl_policy_path: /x\n");
    assert!(err.contains("policy.path"), "{err}");
    let err = error_of("oidc:\n  strip_email_domain: true\n");
    assert!(
        err.contains(r#""oidc.strip_email_domain" (removed in Headscale 0.26)"#),
        "{err}"
    );
}

#[test]
fn all_unknown_keys_are_reported_together() {
    let err = error_of(
        "foo: 1\ndns:\n  bar: 2\n  extra_records:\n    - {name: a.b, type: A, value: 100.64.0.1, ttl: 60}\n",
    );
    assert!(err.contains(r#"unknown key "foo""#), "{err}");
    assert!(err.contains(r#"unknown key "dns.bar""#), "{err}");
    assert!(
        err.contains(r#"unknown key "dns.extra_records[0].ttl""#),
        "{err}"
    );
}

#[test]
fn free_form_maps_accept_any_key() {
    let c = load_str(
        "dns:\n  nameservers:\n    global: [1.1.1.1]\n    split:\n      any.thing: [10.0.0.1]\n",
    )
    .unwrap();
    assert_eq!(c.dns.nameservers_split["any.thing"], ["10.0.0.1"]);
}

#[test]
fn schema_is_read_off_the_raw_types() {
    let Shape::Struct(top) = shape_of::<RawConfig>() else {
        panic!("RawConfig is a struct");
    };
    let field = |fields: &[(&str, Shape)], name: &str| -> Shape {
        fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let Shape::Struct(dns) = field(&top, "dns") else {
        panic!("dns")
    };
    let Shape::Struct(nameservers) = field(&dns, "nameservers") else {
        panic!("nameservers")
    };
    assert_eq!(
        field(&nameservers, "split"),
        Shape::Map(Box::new(Shape::Seq(Box::new(Shape::Leaf))))
    );
    let Shape::Seq(record) = field(&dns, "extra_records") else {
        panic!("extra_records")
    };
    assert_eq!(
        *record,
        Shape::Struct(vec![
            ("name", Shape::Leaf),
            ("type", Shape::Leaf),
            ("value", Shape::Leaf)
        ])
    );
    // Optional sections are seen through their `Option`.
    let Shape::Struct(oidc) = field(&top, "oidc") else {
        panic!("oidc")
    };
    assert!(matches!(field(&oidc, "pkce"), Shape::Struct(_)));
    assert_eq!(
        top.len(),
        37,
        "top-level keys: {:?}",
        top.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
}

#[test]
fn wrong_value_type_names_the_key() {
    let err = error_of("dns:\n  magic_dns: maybe\n");
    assert!(err.contains("dns.magic_dns: invalid type"), "{err}");
    assert!(err.contains("line 2"), "{err}");
    let err = error_of("derp:\n  server:\n    region_id: -1\n");
    assert!(err.contains("derp.server.region_id"), "{err}");
}

#[test]
fn yaml_syntax_error_is_a_parse_error() {
    match load_str("dns: [unclosed\n") {
        Err(Error::Parse { message, .. }) => assert!(message.contains("line"), "{message}"),
        other => panic!("expected a parse error, got {other:?}"),
    }
    // Keys outside a mapping document are a type error, not a panic.
    assert!(matches!(load_str("- a\n- b\n"), Err(Error::Parse { .. })));
    assert!(matches!(load_str("just text\n"), Err(Error::Parse { .. })));
}
