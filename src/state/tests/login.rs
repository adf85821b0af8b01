//! Logins under `node.expiry` and `node.require_approval`: interactive
//! registration keeps a known machine's node, tagged nodes never expire,
//! approval and preauthorized keys, and the expiry watcher telling the
//! tailnet when a key runs out.

use std::time::Duration;

use chrono::Utc;

use super::input;
use crate::state::testing::temp_state_login;
use crate::state::{LoginRules, PendingOwner, RegisterOutcome, StateHandle};
use crate::types::{Node, NodePublic, UserId};

async fn state(rules: LoginRules) -> (tempfile::TempDir, StateHandle, UserId) {
    let (dir, state) = temp_state_login(rules).await;
    let user = state.create_user("alice", "", "").await.expect("user").id;
    (dir, state, user)
}

async fn key(s: &StateHandle, user: UserId, tags: &[&str], preauthorized: bool) -> String {
    let new = crate::state::NewKey {
        user,
        reusable: true,
        ephemeral: false,
        expiration: None,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        description: String::new(),
        preauthorized,
    };
    s.create_key(new).await.expect("key").1
}

async fn authorized(s: &StateHandle, i: crate::state::RegisterInput) -> std::sync::Arc<Node> {
    match s.register(i).await.expect("register") {
        RegisterOutcome::Authorized { node, .. } => node,
        other => panic!("expected authorization, got {other:?}"),
    }
}

#[tokio::test]
async fn interactive_login_creates_then_keeps_the_node() {
    let (_d, s, user) = state(LoginRules::default()).await;
    let first = input(1, 1, None, "laptop");
    assert!(matches!(
        s.register(first.clone()).await.unwrap(),
        RegisterOutcome::NeedsLogin(_)
    ));
    let a = s
        .register_pending(first, PendingOwner::User(user))
        .await
        .unwrap();
    assert_eq!(a.user_id, user);
    assert!(a.authorized && a.expiry.is_none());
    // `--force-reauth`: a new node key, the old one as OldNodeKey.
    let mut again = input(1, 2, None, "laptop");
    again.old_node_key = Some(NodePublic([1; 32]));
    assert!(matches!(
        s.register(again.clone()).await.unwrap(),
        RegisterOutcome::NeedsLogin(_)
    ));
    let b = s
        .register_pending(again, PendingOwner::Existing)
        .await
        .unwrap();
    assert_eq!((b.id, b.ipv4, b.ipv6), (a.id, a.ipv4, a.ipv6));
    assert_eq!(b.node_key, NodePublic([2; 32]));
    // The same request again is just a refresh.
    authorized(&s, input(1, 2, None, "laptop")).await;
    assert_eq!(s.world().nodes.len(), 1);
}

#[tokio::test]
async fn node_expiry_applies_to_users_nodes_only_and_logins_renew_it() {
    let rules = LoginRules {
        node_expiry: Some(chrono::Duration::hours(1)),
        require_approval: false,
    };
    let (_d, s, user) = state(rules).await;
    let k = key(&s, user, &[], false).await;
    let a = authorized(&s, input(1, 1, Some(&k), "a")).await;
    let left = a.expiry.expect("expiry") - Utc::now();
    assert!(left > chrono::Duration::minutes(59) && left <= chrono::Duration::hours(1));
    let tagged = key(&s, user, &["tag:srv"], false).await;
    // Tags need an owner under a policy; without one anyone may tag.
    let t = authorized(&s, input(2, 2, Some(&tagged), "t")).await;
    assert_eq!(t.expiry, None, "tagged nodes never expire");
    let refused = s
        .set_node_expiry(t.id, Some(Utc::now() + chrono::Duration::hours(2)))
        .await;
    assert!(refused.is_err(), "{refused:?}");
}

#[tokio::test]
async fn approval_is_required_unless_the_key_is_preauthorized() {
    let rules = LoginRules {
        node_expiry: None,
        require_approval: true,
    };
    let (_d, s, user) = state(rules).await;
    let plain = key(&s, user, &[], false).await;
    let pre = key(&s, user, &[], true).await;
    let a = authorized(&s, input(1, 1, Some(&plain), "a")).await;
    assert!(!a.authorized && !a.is_active(Utc::now()));
    let b = authorized(&s, input(2, 2, Some(&pre), "b")).await;
    assert!(b.authorized);
    let a = s.set_node_authorized(a.id, true).await.unwrap();
    assert!(a.authorized);
    // A re-login keeps the approval.
    let mut again = input(1, 3, Some(&plain), "a");
    again.old_node_key = Some(NodePublic([1; 32]));
    assert!(authorized(&s, again).await.authorized);
    // Without approval required, new nodes are authorized.
    let (_d2, s2, user2) = state(LoginRules::default()).await;
    let k2 = key(&s2, user2, &[], false).await;
    assert!(
        authorized(&s2, input(1, 1, Some(&k2), "a"))
            .await
            .authorized
    );
}

#[tokio::test]
async fn the_tailnet_is_told_when_a_key_expires() {
    let (_d, s, user) = state(LoginRules::default()).await;
    let k = key(&s, user, &[], false).await;
    let a = authorized(&s, input(1, 1, Some(&k), "a")).await;
    let mut worlds = s.reader().subscribe();
    worlds.borrow_and_update();
    s.set_node_expiry(a.id, Some(Utc::now() + chrono::Duration::milliseconds(300)))
        .await
        .unwrap();
    let set_at = worlds.borrow_and_update().generation;
    // The watcher publishes again once the expiry passes, with no write.
    tokio::time::timeout(Duration::from_secs(5), worlds.changed())
        .await
        .expect("a World after the expiry")
        .unwrap();
    let w = worlds.borrow_and_update().clone();
    assert!(w.generation > set_at);
    assert!(w.node(a.id).unwrap().is_expired(Utc::now()));
}
