//! Identity-provider groups in the policy (clawscale extension): a group
//! member `oidc:NAME` holds every user whose OpenID Connect groups claim
//! had NAME at their last login.

use super::node;
use crate::policy::{Policy, TopoUser, Topology};

fn topo(alice_groups: &[&str]) -> Topology {
    let user = |id: u64, name: &str, groups: &[&str]| TopoUser {
        id,
        name: name.into(),
        login: format!("{name}@example.com"),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    };
    Topology::new(
        vec![
            user(1, "alice", alice_groups),
            user(2, "bob", &["developers"]),
        ],
        vec![
            node(1, Some(1), &[]),
            node(2, Some(2), &[]),
            node(3, None, &["tag:mcp-server"]),
        ],
    )
}

const POLICY: &str = r#"{
  "groups": {"group:mcp-admins": ["oidc:mcp-admins"]},
  "tagOwners": {"tag:mcp-server": []},
  "services": {"svc:mcp": {"hosts": ["tag:mcp-server"], "ports": ["tcp:443"]}},
  "acls": [{"action": "accept", "src": ["group:mcp-admins"], "dst": ["svc:mcp:443"]}],
}"#;

#[test]
fn oidc_group_members_follow_the_users_groups() {
    let p = Policy::parse(POLICY).expect("parses");
    let c = p.compile(&topo(&["mcp-admins"]));
    assert!(
        c.explain(1, 3, 443, Some(6)).allowed,
        "alice is in mcp-admins"
    );
    assert!(!c.explain(2, 3, 443, Some(6)).allowed, "bob is not");
    let server = c.node(3).expect("server");
    assert!(server.peers.contains(1) && !server.peers.contains(2));

    // Alice's next login drops the group: the recompiled policy drops her.
    let c = p.compile(&topo(&[]));
    assert!(!c.explain(1, 3, 443, Some(6)).allowed);
    assert!(c.node(3).expect("server").peers.is_empty());
}

#[test]
fn oidc_members_are_an_extension_refused_in_strict_mode() {
    let p = Policy::parse(POLICY).expect("parses");
    assert!(
        p.extensions()
            .iter()
            .any(|(what, at)| what.contains("oidc:mcp-admins") && at.is_some()),
        "{:?}",
        p.extensions()
    );
    let text = r#"{"groups": {"group:a": ["oidc:a"]}, "acls": []}"#;
    let e = Policy::parse_strict(text).expect_err("strict refuses oidc:");
    assert!(
        e.message.contains("oidc:a") && e.message.contains("strict"),
        "{e}"
    );
    let e = Policy::parse(r#"{"groups": {"group:a": ["oidc:"]}}"#).expect_err("empty");
    assert!(e.message.contains("identity provider"), "{e}");
}
