//! State transitions against a real writer on a temporary SQLite database:
//! registration paths, key rotation, logout, ephemeral clean-up, presence.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::{RegisterInput, RegisterOutcome, StateHandle};
use crate::types::{Node, NodePublic, Owner, UserId};

mod batch;
mod durability;
mod login;
mod replicas;

struct Fixture {
    _dir: tempfile::TempDir,
    state: StateHandle,
    user: UserId,
}

async fn fixture(ephemeral_timeout: Duration) -> Fixture {
    let (dir, state) = super::testing::temp_state(ephemeral_timeout).await;
    let user = state.create_user("alice", "", "").await.expect("user").id;
    Fixture {
        _dir: dir,
        state,
        user,
    }
}

use super::testing::register_input as input;

impl Fixture {
    async fn key(&self, reusable: bool, ephemeral: bool, tags: &[&str]) -> String {
        let tags = tags.iter().map(|t| t.to_string()).collect();
        self.state
            .create_preauth_key(self.user, reusable, ephemeral, None, tags)
            .await
            .expect("key")
            .1
    }

    async fn register(&self, i: RegisterInput) -> RegisterOutcome {
        self.state.register(i).await.expect("register")
    }

    async fn authorized(&self, i: RegisterInput) -> Arc<Node> {
        match self.register(i).await {
            RegisterOutcome::Authorized { node, .. } => node,
            other => panic!("expected authorization, got {other:?}"),
        }
    }

    async fn refused(&self, i: RegisterInput) -> String {
        match self.register(i).await {
            RegisterOutcome::Refused(msg) => msg,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn single_use_key_registers_once_and_refreshes_without_consuming() {
    let f = fixture(Duration::from_secs(1800)).await;
    let key = f.key(false, false, &[]).await;
    assert!(
        !f.state
            .world()
            .is_live_node_key(&NodePublic([1; 32]), Utc::now())
    );
    let a = f.authorized(input(1, 1, Some(&key), "web")).await;
    assert!(
        f.state
            .world()
            .is_live_node_key(&NodePublic([1; 32]), Utc::now())
    );
    assert_eq!(a.given_name.as_str(), "web");
    assert_eq!(a.ipv4.unwrap().to_string(), "100.64.0.1");
    // The same machine repeating its key (container restart) is a refresh.
    let again = f.authorized(input(1, 1, Some(&key), "web")).await;
    assert_eq!(again.id, a.id);
    // Restart without a key: still the same node.
    assert_eq!(f.authorized(input(1, 1, None, "web")).await.id, a.id);
    // Another machine cannot use the key.
    let msg = f.refused(input(2, 2, Some(&key), "web")).await;
    assert!(msg.contains("already used"), "{msg}");
    assert_eq!(f.state.world().nodes.len(), 1);
}

#[tokio::test]
async fn names_are_unique_and_key_bad_forms_are_refused() {
    let f = fixture(Duration::from_secs(1800)).await;
    let key = f.key(true, false, &[]).await;
    let a = f.authorized(input(1, 1, Some(&key), "web")).await;
    let b = f.authorized(input(2, 2, Some(&key), "Web")).await;
    assert_eq!(
        (a.given_name.as_str(), b.given_name.as_str()),
        ("web", "web-1")
    );
    assert_ne!(a.ipv4, b.ipv4);
    assert_ne!(a.ipv6, b.ipv6);
    let msg = f
        .refused(input(3, 3, Some("cskey-auth-nonsense"), "x"))
        .await;
    assert_eq!(msg, "invalid pre-auth key");
    // No key at all: an interactive login.
    assert!(matches!(
        f.register(input(3, 3, None, "x")).await,
        RegisterOutcome::NeedsLogin(_)
    ));
    // A node key already registered to another machine is refused.
    let msg = f.refused(input(3, 1, Some(&key), "x")).await;
    assert!(msg.contains("different machine"), "{msg}");
}

#[tokio::test]
async fn expired_key_is_refused() {
    let f = fixture(Duration::from_secs(1800)).await;
    let (k, secret) = f
        .state
        .create_preauth_key(
            f.user,
            true,
            false,
            Some(Utc::now() + chrono::Duration::hours(1)),
            vec![],
        )
        .await
        .unwrap();
    f.state.expire_preauth_key(k.id).await.unwrap();
    let msg = f.refused(input(1, 1, Some(&secret), "web")).await;
    assert_eq!(msg, "pre-auth key expired");
}

#[tokio::test]
async fn node_key_rotation_with_old_node_key_keeps_the_node() {
    let f = fixture(Duration::from_secs(1800)).await;
    let key = f.key(false, false, &[]).await;
    let a = f.authorized(input(1, 1, Some(&key), "web")).await;
    let mut rotate = input(1, 9, None, "web");
    rotate.old_node_key = Some(NodePublic([1; 32]));
    // A new node key without an auth key is a re-login (`--force-reauth`):
    // it needs an interactive login, which keeps the node.
    assert!(matches!(
        f.register(rotate.clone()).await,
        RegisterOutcome::NeedsLogin(_)
    ));
    let b = f
        .state
        .register_pending(rotate, super::PendingOwner::Existing)
        .await
        .expect("re-login");
    assert_eq!((b.id, b.ipv4, b.ipv6), (a.id, a.ipv4, a.ipv6));
    assert_eq!(b.node_key, NodePublic([9; 32]));
    let w = f.state.world();
    assert!(w.node_by_node_key(&NodePublic([1; 32])).is_none());
    assert_eq!(w.node_by_node_key(&NodePublic([9; 32])).unwrap().id, a.id);
    // A different machine cannot rotate someone else's key.
    let mut steal = input(2, 10, None, "x");
    steal.old_node_key = Some(NodePublic([9; 32]));
    assert!(matches!(
        f.register(steal.clone()).await,
        RegisterOutcome::NeedsLogin(_)
    ));
    let steal_existing = f
        .state
        .register_pending(steal, super::PendingOwner::Existing)
        .await;
    assert!(steal_existing.is_err(), "{steal_existing:?}");
    assert_eq!(f.state.world().nodes.len(), 1);
}

#[tokio::test]
async fn logout_expires_and_a_new_key_brings_the_same_node_back() {
    let f = fixture(Duration::from_secs(1800)).await;
    let key = f.key(true, false, &[]).await;
    let a = f.authorized(input(1, 1, Some(&key), "web")).await;
    let mut logout = input(1, 1, None, "web");
    logout.expiry = Some(chrono::DateTime::from_timestamp(123, 0).unwrap());
    assert!(matches!(
        f.register(logout).await,
        RegisterOutcome::LoggedOut
    ));
    let n = f.state.world().node(a.id).cloned().unwrap();
    assert!(n.is_expired(Utc::now()), "logout must expire the node");
    // ... and the DERP server stops admitting its key.
    assert!(
        !f.state
            .world()
            .is_live_node_key(&NodePublic([1; 32]), Utc::now())
    );
    // Without a key it stays logged out until it logs in again.
    match f.register(input(1, 1, None, "web")).await {
        RegisterOutcome::NeedsLogin(msg) => assert!(msg.contains("expired or logged out"), "{msg}"),
        other => panic!("expected NeedsLogin, got {other:?}"),
    }
    // The client logs in again with a fresh node key and a key.
    let back = f.authorized(input(1, 5, Some(&key), "web")).await;
    assert_eq!((back.id, back.ipv4, back.ipv6), (a.id, a.ipv4, a.ipv6));
    assert!(!back.is_expired(Utc::now()));
}

#[tokio::test]
async fn tagged_key_makes_a_tag_owned_node() {
    let f = fixture(Duration::from_secs(1800)).await;
    let key = f.key(false, false, &["tag:mcp-server", "tag:a"]).await;
    let n = f.authorized(input(1, 1, Some(&key), "srv")).await;
    assert_eq!(
        n.owner(),
        Owner::Tags(vec!["tag:a".into(), "tag:mcp-server".into()])
    );
}

async fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn ephemeral_nodes_go_on_logout_and_after_inactivity() {
    let f = fixture(Duration::from_millis(200)).await;
    let key = f.key(true, true, &[]).await;
    let a = f.authorized(input(1, 1, Some(&key), "eph-a")).await;
    assert!(a.ephemeral);
    let mut logout = input(1, 1, None, "eph-a");
    logout.expiry = Some(chrono::DateTime::from_timestamp(123, 0).unwrap());
    f.register(logout).await;
    assert!(
        f.state.world().node(a.id).is_none(),
        "logout deletes ephemeral nodes"
    );

    // Online, then offline: removed once the inactivity timeout passes.
    let b = f.authorized(input(2, 2, Some(&key), "eph-b")).await;
    let session = f.state.sessions().open(b.id);
    f.state.refresh_presence(b.id).await.unwrap();
    assert!(f.state.world().is_online(b.id));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        f.state.world().node(b.id).is_some(),
        "online nodes are kept"
    );
    f.state.sessions().close(&session);
    f.state.refresh_presence(b.id).await.unwrap();
    let st = f.state.clone();
    wait_until("the offline ephemeral node to be removed", || {
        st.world().node(b.id).is_none()
    })
    .await;
}

#[tokio::test]
async fn an_old_stream_closing_after_a_reconnect_keeps_the_node_online() {
    let f = fixture(Duration::from_secs(1800)).await;
    let key = f.key(false, false, &[]).await;
    let n = f.authorized(input(1, 1, Some(&key), "web")).await;
    let sessions = f.state.sessions().clone();
    let old = sessions.open(n.id);
    f.state.refresh_presence(n.id).await.unwrap();
    let new = sessions.open(n.id);
    f.state.refresh_presence(n.id).await.unwrap();
    sessions.close(&old);
    f.state.refresh_presence(n.id).await.unwrap();
    assert!(
        f.state.world().is_online(n.id),
        "the new stream is still live"
    );
    sessions.close(&new);
    f.state.refresh_presence(n.id).await.unwrap();
    let w = f.state.world();
    assert!(!w.is_online(n.id));
    assert!(w.node(n.id).unwrap().last_seen.is_some());
}

mod policy;
