//! The election through a real writer: map sessions of a client see the
//! failover as a delta that moves the route from one router to the other.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::{LAN, net};
use crate::mapper::build::{Delta, SentState, build_delta, build_full};
use crate::mapper::sessions::Session;
use crate::state::testing::temp_state;
use crate::state::{RegisterInput, RegisterOutcome, StateHandle};
use crate::tailcfg::MapResponse;
use crate::types::{MachinePublic, Node, NodeId, NodePublic};

struct Net {
    _dir: tempfile::TempDir,
    state: StateHandle,
    r1: NodeId,
    r2: NodeId,
    client: NodeId,
}

async fn register(state: &StateHandle, key: &str, i: u8, host: &str, routes: &[&str]) -> NodeId {
    let input = RegisterInput {
        machine_key: MachinePublic([i; 32]),
        node_key: NodePublic([i; 32]),
        old_node_key: None,
        auth_key: Some(key.to_string()),
        expiry: None,
        hostinfo: json!({ "Hostname": host, "RoutableIPs": routes }),
        ephemeral: false,
        version: 133,
    };
    match state.register(input).await.expect("register") {
        RegisterOutcome::Authorized { node, .. } => node.id,
        other => panic!("expected authorization, got {other:?}"),
    }
}

/// A reusable pre-auth key of `user` with `tags`.
async fn key(state: &StateHandle, user: crate::types::UserId, tags: Vec<String>) -> String {
    state
        .create_preauth_key(user, true, false, None, tags)
        .await
        .expect("key")
        .1
}

/// Two routers advertising `LAN` (approved by an operator unless `policy`
/// auto-approves it) and a client.
async fn tailnet(policy: Option<&str>) -> Net {
    let (dir, state) = temp_state(Duration::from_secs(1800)).await;
    let user = state.create_user("alice", "", "").await.expect("user").id;
    if let Some(p) = policy {
        state.set_policy(p.into()).await.expect("policy");
    }
    let tags = if policy.is_some() {
        vec!["tag:router".to_string()]
    } else {
        vec![]
    };
    let router_key = key(&state, user, tags).await;
    let plain_key = key(&state, user, vec![]).await;
    let r1 = register(&state, &router_key, 1, "r1", &[LAN]).await;
    let r2 = register(&state, &router_key, 2, "r2", &[LAN]).await;
    let client = register(&state, &plain_key, 3, "client", &[]).await;
    if policy.is_none() {
        for r in [r1, r2] {
            state
                .set_approved_routes(r, vec![net(LAN)])
                .await
                .expect("approve");
        }
    }
    Net {
        _dir: dir,
        state,
        r1,
        r2,
        client,
    }
}

impl Net {
    async fn connect(&self, id: NodeId) -> Arc<Session> {
        let s = self.state.sessions().open(id);
        self.state.refresh_presence(id).await.expect("online");
        s
    }

    async fn disconnect(&self, s: &Session) {
        self.state.sessions().close(s);
        self.state.refresh_presence(s.node).await.expect("offline");
    }

    fn primary(&self) -> Option<NodeId> {
        self.state.world().primaries.primary(&net(LAN))
    }
}

/// What the client's session sends for everything merged into its mailbox.
fn delta(state: &StateHandle, me: &Session, sent: &mut SentState) -> Option<MapResponse> {
    let change = me.take();
    match build_delta(&state.world(), me.node, &change, sent, state.now()) {
        Delta::Frame(r) => Some(*r),
        Delta::Nothing => None,
        Delta::SelfRemoved(_) => panic!("client removed"),
    }
}

/// (AllowedIPs, PrimaryRoutes) a frame gives peer `id`, if it names it.
fn routes_of(r: &MapResponse, id: NodeId) -> Option<(Vec<String>, Vec<String>)> {
    r.peers_changed
        .iter()
        .chain(r.peers.iter().flatten())
        .find(|p| p.id == id.0)
        .map(|p| {
            (
                p.allowed_ips.clone().unwrap_or_default(),
                p.primary_routes.clone(),
            )
        })
}

fn has_lan(v: &(Vec<String>, Vec<String>)) -> bool {
    v.0.contains(&LAN.to_string()) && v.1 == vec![LAN.to_string()]
}

async fn failover_reaches_the_client(t: Net) {
    let r1 = t.connect(t.r1).await;
    assert_eq!(
        t.primary(),
        Some(t.r1),
        "the first router online is primary"
    );
    let r2 = t.connect(t.r2).await;
    let me = t.connect(t.client).await;
    let mut sent = SentState::default();
    let full = build_full(&t.state.world(), t.client, &mut sent, t.state.now()).expect("map");
    assert!(has_lan(&routes_of(&full, t.r1).expect("r1 in map")));
    assert!(!has_lan(&routes_of(&full, t.r2).expect("r2 in map")));
    let _ = me.take();

    // The primary goes offline: the standby takes the route, and the
    // client is told about both routers.
    t.disconnect(&r1).await;
    assert_eq!(t.primary(), Some(t.r2));
    let d = delta(&t.state, &me, &mut sent).expect("a delta");
    let (r1_routes, r2_routes) = (routes_of(&d, t.r1), routes_of(&d, t.r2));
    assert!(
        r1_routes
            .as_ref()
            .is_some_and(|r| !r.0.contains(&LAN.to_string()) && r.1.is_empty()),
        "r1 loses the route: {r1_routes:?}"
    );
    assert!(
        r2_routes.as_ref().is_some_and(has_lan),
        "r2 gains it: {r2_routes:?}"
    );

    // The old primary comes back: nothing moves.
    let r1_again = t.connect(t.r1).await;
    assert_eq!(t.primary(), Some(t.r2), "no steal-back");
    let d = delta(&t.state, &me, &mut sent);
    assert!(
        d.as_ref().is_none_or(|d| d.peers_changed.is_empty()),
        "only r1's presence changes: {d:?}"
    );
    drop((r2, r1_again));
}

#[tokio::test]
async fn failover_reaches_peers_without_a_policy() {
    failover_reaches_the_client(tailnet(None).await).await;
}

#[tokio::test]
async fn failover_reaches_peers_through_the_policy() {
    let policy = r#"{
      "tagOwners": {"tag:router": ["alice@"]},
      "autoApprovers": {"routes": {"10.214.0.0/16": ["tag:router"]}},
      "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
    }"#;
    failover_reaches_the_client(tailnet(Some(policy)).await).await;
}

#[tokio::test]
async fn presence_of_nodes_serving_nothing_leaves_the_election_alone() {
    let t = tailnet(None).await;
    let _r1 = t.connect(t.r1).await;
    let watcher = t.state.sessions().open(t.r2);
    let before = t.state.world().primaries.clone();
    let me = t.connect(t.client).await;
    let change = watcher.take();
    assert!(change.routes.is_empty(), "{change:?}");
    assert_eq!(t.state.world().primaries, before);
    t.disconnect(&me).await;
    assert!(watcher.take().routes.is_empty());
}

#[tokio::test]
async fn revoking_approval_moves_the_route_and_the_self_node_learns_it() {
    let t = tailnet(None).await;
    let _r1 = t.connect(t.r1).await;
    let r2 = t.connect(t.r2).await;
    let mut sent = SentState::default();
    let full = build_full(&t.state.world(), t.r2, &mut sent, t.state.now()).expect("map");
    assert!(full.node.expect("self").primary_routes.is_empty());
    let _ = r2.take();
    t.state
        .set_approved_routes(t.r1, vec![])
        .await
        .expect("revoke");
    assert_eq!(t.primary(), Some(t.r2));
    let d = delta(&t.state, &r2, &mut sent).expect("a delta");
    assert_eq!(
        d.node.expect("self re-sent").primary_routes,
        vec![LAN.to_string()]
    );
}

/// `n` served `LAN` (helper for readability of the restart test).
fn serves(n: &Node) -> bool {
    n.served_routes().contains(&net(LAN))
}

#[tokio::test]
async fn after_a_restart_the_first_router_to_connect_is_primary() {
    let (dir, db, state) =
        crate::state::testing::temp_state_with_db(Duration::from_secs(1800)).await;
    let user = state.create_user("alice", "", "").await.expect("user").id;
    let key = key(&state, user, vec![]).await;
    let r1 = register(&state, &key, 1, "r1", &[LAN]).await;
    let r2 = register(&state, &key, 2, "r2", &[LAN]).await;
    for r in [r1, r2] {
        state
            .set_approved_routes(r, vec![net(LAN)])
            .await
            .expect("approve");
    }
    let s1 = state.sessions().open(r1);
    state.refresh_presence(r1).await.expect("online");
    assert_eq!(state.world().primaries.primary(&net(LAN)), Some(r1));
    drop(s1);
    drop(state);

    let state = crate::state::testing::restart(&dir, db).await;
    let w = state.world();
    assert!(w.nodes.values().filter(|n| serves(n)).count() == 2);
    assert_eq!(w.primaries.primary(&net(LAN)), None, "nobody online yet");
    assert_eq!(w.primaries.served(r1), &[net(LAN)]);
    let _s2 = state.sessions().open(r2);
    state.refresh_presence(r2).await.expect("online");
    assert_eq!(state.world().primaries.primary(&net(LAN)), Some(r2));
    let _s1 = state.sessions().open(r1);
    state.refresh_presence(r1).await.expect("online");
    assert_eq!(state.world().primaries.primary(&net(LAN)), Some(r2));
}
