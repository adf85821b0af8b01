//! Any byte string fed to the policy parser either parses or is rejected
//! with an error; it must never panic. Accepted policies are also compiled
//! against a small topology (deny rules included) and explained, strict
//! parsing must agree with the list of extensions, and every error
//! carrying a position must point inside the input.
#![no_main]

use clawscale::policy::{Policy, TopoNode, TopoUser, Topology};
use libfuzzer_sys::fuzz_target;

fn topology() -> Topology {
    let users = vec![
        TopoUser { id: 1, name: "alice".into(), login: "alice@example.com".into(), groups: vec![] },
        TopoUser { id: 2, name: "bob".into(), login: "bob@example.com".into(), groups: vec![] },
    ];
    let node = |id: u64, user: Option<u64>, tags: &[&str]| TopoNode {
        id,
        name: format!("n{id}"),
        hostname: format!("n{id}"),
        user,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ipv4: Some(format!("100.64.0.{id}").parse().unwrap()),
        ipv6: Some(format!("fd7a:115c:a1e0::{id}").parse().unwrap()),
        routable_ips: if id == 3 { vec!["10.0.0.0/8".parse().unwrap()] } else { vec![] },
        approved_routes: if id == 3 { vec!["10.0.0.0/8".parse().unwrap()] } else { vec![] },
        primary_routes: None,
    };
    Topology::new(
        users,
        vec![node(1, Some(1), &[]), node(2, Some(2), &[]), node(3, None, &["tag:router"])],
    )
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Policy::parse(text) {
        Ok(policy) => {
            let topo = topology();
            let _ = policy.check(&topo);
            let compiled = policy.compile(&topo);
            for n in &topo.nodes {
                let _ = compiled.node(n.id);
            }
            let _ = compiled.explain(1, 3, 22, None);
            let strict = Policy::parse_strict(text);
            assert_eq!(strict.is_ok(), policy.extensions().is_empty(), "strict disagrees");
        }
        Err(e) => {
            if let Some((line, col)) = e.position {
                let lines = text.split('\n').count();
                assert!(line >= 1 && line <= lines, "line {line} outside 1..={lines}: {e}");
                assert!(col >= 1, "column {col}: {e}");
            }
        }
    }
});
