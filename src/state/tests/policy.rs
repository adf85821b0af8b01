//! The policy inside state: installing and refusing policies, tag ownership
//! at registration, and the compiled policy following node changes.

use std::time::Duration;

use serde_json::json;

use super::{Fixture, fixture, input};
use crate::state::Error;
use crate::types::NodeId;

const POLICY: &str = r#"// alice owns tag:web; alice may reach tag:web on 443
{
  "tagOwners": {"tag:web": ["alice@"]},
  "acls": [
    {"action": "accept", "src": ["alice@"], "dst": ["tag:web:443"]},
  ],
}"#;

async fn with_policy() -> Fixture {
    let f = fixture(Duration::from_secs(1800)).await;
    f.state
        .set_policy(POLICY.to_string())
        .await
        .expect("valid policy");
    f
}

#[tokio::test]
async fn a_rejected_policy_leaves_the_previous_one_serving() {
    let f = with_policy().await;
    let broken = "{\n  \"acls\": [\n    {\"action\": \"accept\", \"src\": [\"group:nope\"], \"dst\": [\"*:*\"]},\n  ],\n}";
    let err = f.state.set_policy(broken.into()).await.unwrap_err();
    let Error::InvalidArgument(msg) = err else {
        panic!("want InvalidArgument, got {err:?}")
    };
    assert!(msg.contains("line 3"), "error must carry a position: {msg}");
    let syntax = f
        .state
        .set_policy("{ \"acls\": [".into())
        .await
        .unwrap_err();
    assert!(syntax.to_string().contains("line 1"), "{syntax}");
    let w = f.state.world();
    assert_eq!(w.policy.text.as_deref(), Some(POLICY));
    assert!(w.policy.compiled.is_some());
    // CheckPolicy validates without installing.
    assert!(f.state.check_policy(broken).is_err());
    f.state.check_policy(POLICY).expect("valid");
}

#[tokio::test]
async fn strict_mode_refuses_clawscale_extensions() {
    let deny = r#"{"acls": [
        {"action": "deny", "src": ["*"], "dst": ["*:22"]},
        {"action": "accept", "src": ["*"], "dst": ["*:*"]}]}"#;
    let (_dir, strict) =
        crate::state::testing::temp_state_with(Duration::from_secs(1800), true).await;
    let err = strict.set_policy(deny.into()).await.unwrap_err();
    let Error::InvalidArgument(msg) = err else {
        panic!("want InvalidArgument, got {err:?}")
    };
    assert!(msg.contains("strict") && msg.contains("line 2"), "{msg}");
    assert!(strict.check_policy(deny).is_err());
    strict
        .set_policy(POLICY.into())
        .await
        .expect("no extension");
    // Without `policy.strict` the same policy is accepted.
    let f = fixture(Duration::from_secs(1800)).await;
    f.state
        .set_policy(deny.into())
        .await
        .expect("deny rules accepted");
    // A policy file with an extension stops a strict server at boot.
    let boot = |strict| {
        crate::state::testing::try_temp_state(Duration::from_secs(1800), strict, Some(deny.into()))
    };
    let (_d, _, refused) = boot(true).await;
    let err = refused.err().expect("strict boot refuses the file");
    assert!(err.to_string().contains("strict"), "{err}");
    let (_d, _, started) = boot(false).await;
    assert!(started.is_ok());
}

#[tokio::test]
async fn tags_must_be_owned_by_the_keys_user() {
    let f = with_policy().await;
    let owned = f.key(true, false, &["tag:web"]).await;
    let node = f.authorized(input(1, 1, Some(&owned), "web")).await;
    assert_eq!(node.tags, vec!["tag:web".to_string()]);

    let unowned = f.key(true, false, &["tag:db"]).await;
    let msg = f.refused(input(2, 2, Some(&unowned), "db")).await;
    assert!(
        msg.contains("not permitted") && msg.contains("tag:db"),
        "{msg}"
    );

    // `tailscale up --advertise-tags` arrives as Hostinfo.RequestTags.
    let plain = f.key(true, false, &[]).await;
    let mut req = input(3, 3, Some(&plain), "laptop");
    req.hostinfo = json!({"Hostname": "laptop", "RequestTags": ["tag:db"]});
    let msg = f.refused(req).await;
    assert!(msg.contains("tag:db"), "{msg}");
    let mut req = input(4, 4, Some(&plain), "web2");
    req.hostinfo = json!({"Hostname": "web2", "RequestTags": ["tag:web"]});
    let node = f.authorized(req).await;
    assert_eq!(
        node.tags,
        vec!["tag:web".to_string()],
        "requested tag taken"
    );
    assert_eq!(
        f.state.world().nodes.len(),
        2,
        "refusals registered nothing"
    );
}

#[tokio::test]
async fn without_a_policy_only_operator_set_key_tags_are_trusted() {
    let f = fixture(Duration::from_secs(1800)).await;
    let tagged = f.key(true, false, &["tag:any"]).await;
    f.authorized(input(1, 1, Some(&tagged), "a")).await;
    let plain = f.key(true, false, &[]).await;
    let mut req = input(2, 2, Some(&plain), "b");
    req.hostinfo = json!({"Hostname": "b", "RequestTags": ["tag:any"]});
    let msg = f.refused(req).await;
    assert!(msg.contains("no policy"), "{msg}");
}

#[tokio::test]
async fn the_compiled_policy_follows_joins_tag_changes_and_deletions() {
    let f = with_policy().await;
    let plain = f.key(true, false, &[]).await;
    let laptop = f.authorized(input(1, 1, Some(&plain), "laptop")).await;
    let web_key = f.key(true, false, &["tag:web"]).await;
    let web = f.authorized(input(2, 2, Some(&web_key), "web")).await;
    let other = f.authorized(input(3, 3, Some(&plain), "other")).await;

    let peers = |id: NodeId| -> Vec<u64> {
        let w = f.state.world();
        let out = w
            .policy
            .compiled
            .as_ref()
            .unwrap()
            .node(id.0 as u64)
            .unwrap();
        out.peers.ids().collect()
    };
    // alice's laptops reach web; web sees them back; the two laptops do not
    // see each other (no rule between them).
    assert_eq!(peers(laptop.id), vec![web.id.0 as u64]);
    assert_eq!(peers(web.id), vec![laptop.id.0 as u64, other.id.0 as u64]);
    let w = f.state.world();
    let filter = &w
        .policy
        .compiled
        .as_ref()
        .unwrap()
        .node(web.id.0 as u64)
        .unwrap()
        .packet_filter;
    assert!(
        filter
            .iter()
            .any(|r| r.dst_ports.iter().any(|d| d.ports.first == 443)),
        "web's filter admits 443: {filter:?}"
    );

    // Untagging web makes it alice's plain node: nobody reaches it any more.
    f.state.set_tags(web.id, vec![]).await.expect("untag");
    assert!(peers(web.id).is_empty());
    assert!(peers(laptop.id).is_empty());
    // A tag outside tagOwners is refused.
    assert!(
        f.state
            .set_tags(web.id, vec!["tag:db".into()])
            .await
            .is_err()
    );
    f.state
        .set_tags(web.id, vec!["tag:web".into()])
        .await
        .expect("retag");
    assert_eq!(peers(laptop.id), vec![web.id.0 as u64]);

    f.state.delete_node(web.id).await.expect("delete");
    assert!(peers(laptop.id).is_empty());
    assert!(
        f.state
            .world()
            .policy
            .compiled
            .as_ref()
            .unwrap()
            .node(web.id.0 as u64)
            .is_none()
    );
}

#[tokio::test]
async fn auto_approvers_approve_advertised_routes_at_registration_and_later() {
    let f = fixture(Duration::from_secs(1800)).await;
    let policy = r#"{
      "tagOwners": {"tag:router": ["alice@"]},
      "autoApprovers": {"routes": {"10.0.0.0/8": ["tag:router"]}},
      "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
    }"#;
    f.state.set_policy(policy.into()).await.expect("policy");
    let key = f.key(true, false, &["tag:router"]).await;
    let mut req = input(1, 1, Some(&key), "router");
    req.hostinfo = json!({"Hostname": "router", "RoutableIPs": ["10.1.0.0/16", "192.168.0.0/24"]});
    let router = f.authorized(req).await;
    assert_eq!(
        router.approved_routes,
        vec!["10.1.0.0/16".parse::<ipnet::IpNet>().unwrap()],
        "only the route under an autoApprovers prefix is approved"
    );
    assert_eq!(router.served_routes(), router.approved_routes);

    // A route advertised later (map request Hostinfo) is approved too.
    let update = crate::state::MapUpdate {
        hostinfo: Some(
            json!({"Hostname": "router", "RoutableIPs": ["10.1.0.0/16", "10.2.0.0/16"]}),
        ),
        ..Default::default()
    };
    f.state
        .update_from_map(router.id, update)
        .await
        .expect("update");
    let w = f.state.world();
    let n = w.node(router.id).unwrap();
    let want: Vec<ipnet::IpNet> = vec![
        "10.1.0.0/16".parse().unwrap(),
        "10.2.0.0/16".parse().unwrap(),
    ];
    assert_eq!(n.approved_routes, want);
    assert_eq!(n.served_routes(), want);

    // A plain node's advertisement is not auto-approved.
    let plain = f.key(true, false, &[]).await;
    let mut req = input(2, 2, Some(&plain), "laptop");
    req.hostinfo = json!({"Hostname": "laptop", "RoutableIPs": ["10.3.0.0/16"]});
    assert!(f.authorized(req).await.approved_routes.is_empty());
}

#[tokio::test]
async fn a_join_rebuilds_only_its_own_node_and_no_user_of_the_compiled_topology() {
    let f = with_policy().await;
    let plain = f.key(true, false, &[]).await;
    let laptop = f.authorized(input(1, 1, Some(&plain), "laptop")).await;
    let other = f.authorized(input(2, 2, Some(&plain), "other")).await;
    let before = f.state.world().policy.compiled.clone().expect("compiled");

    let joined = f.authorized(input(3, 3, Some(&plain), "phone")).await;
    f.state
        .set_tags(other.id, vec![])
        .await
        .expect("no-op tags");
    let w = f.state.world();
    let after = w.policy.compiled.as_ref().expect("compiled");
    // What the policy was compiled for is the World's topology...
    assert_eq!(*after.topology(), crate::state::policy::topology(&w));
    // ...with the nodes the join did not touch shared, not rebuilt.
    for id in [laptop.id, other.id] {
        let (a, b) = (
            before.topology().node(id.0 as u64),
            after.topology().node(id.0 as u64),
        );
        assert!(
            std::sync::Arc::ptr_eq(a.expect("before"), b.expect("after")),
            "node {id} was rebuilt"
        );
    }
    assert!(after.topology().node(joined.id.0 as u64).is_some());
    // The users did not change: their list is shared too.
    assert!(
        std::sync::Arc::ptr_eq(&before.topology().users, &after.topology().users),
        "the user list was copied"
    );
}

#[tokio::test]
async fn renaming_a_user_whose_login_stays_reaches_the_compiled_topology() {
    let f = with_policy().await;
    // With an e-mail the login is the e-mail, so a rename changes no
    // selector, yet the topology must still name the user as the World does.
    let carol = f
        .state
        .create_user("carol", "Carol", "carol@example.com")
        .await
        .expect("user");
    f.state
        .rename_user(carol.id, "caroline")
        .await
        .expect("rename");
    let w = f.state.world();
    let compiled = w.policy.compiled.as_ref().expect("compiled");
    assert_eq!(*compiled.topology(), crate::state::policy::topology(&w));
    assert!(
        compiled
            .topology()
            .users
            .iter()
            .any(|u| u.name == "caroline")
    );
}
