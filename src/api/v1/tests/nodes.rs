//! `/api/v1/node` and `/api/v1/debug/node` against Headscale's behaviour.

use serde_json::{Value, json};

use super::{DELETE, GET, H, POST, norm, user_json};
use crate::admin::AuthId;
use crate::state::{RegisterInput, RegisterOutcome};
use crate::types::{MachinePublic, NodePublic, UserId};

impl H {
    /// Enrols a node for `user` with a fresh key carrying `tags`.
    async fn node(&self, user: UserId, host: &str, seed: u8, tags: &[&str]) -> i64 {
        let key = self.key(user, false, tags).await;
        let outcome = self
            .fx
            .state
            .register(RegisterInput {
                machine_key: MachinePublic([seed; 32]),
                node_key: NodePublic([seed.wrapping_add(100); 32]),
                old_node_key: None,
                auth_key: Some(key),
                expiry: None,
                hostinfo: json!({ "Hostname": host, "RoutableIPs": ["10.1.0.0/24", "0.0.0.0/0", "::/0"] }),
                ephemeral: false,
                version: 100,
            })
            .await
            .expect("register");
        match outcome {
            RegisterOutcome::Authorized { node, .. } => node.id.0,
            other => panic!("{other:?}"),
        }
    }
}

fn node_json(id: &str, host: &str, user: Value, key: Value, tags: Value) -> Value {
    json!({
        "id": id, "machineKey": "<secret>", "nodeKey": "<secret>", "discoKey": "<secret>",
        "ipAddresses": ["100.64.0.".to_string() + id, "fd7a:115c:a1e0::".to_string() + id],
        "name": host, "user": user, "lastSeen": null, "expiry": null, "preAuthKey": key,
        "createdAt": "<timestamp>", "registerMethod": "REGISTER_METHOD_AUTH_KEY",
        "givenName": host, "online": false, "approvedRoutes": [],
        "availableRoutes": ["0.0.0.0/0", "10.1.0.0/24", "::/0"], "subnetRoutes": [], "tags": tags,
    })
}

fn key_json(id: &str, user: Value, tags: Value) -> Value {
    json!({
        "user": user, "id": id, "key": "<secret>", "reusable": false, "ephemeral": false,
        "used": true, "expiration": null, "createdAt": "<timestamp>", "aclTags": tags,
    })
}

#[tokio::test]
async fn get_list_and_filters() {
    let h = H::new().await;
    assert_eq!(
        h.call(GET, "/api/v1/node", None).await.json(),
        json!({ "nodes": [] })
    );
    let alice = h.user("alice").await;
    let bob = h.user("bob").await;
    h.node(alice, "node-a", 1, &[]).await;
    h.node(bob, "node-b", 2, &["tag:initial"]).await;

    let a = user_json("1", "alice");
    let b = user_json("2", "bob");
    let r = h.call(GET, "/api/v1/node/1", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.norm(),
        json!({ "node": node_json("1", "node-a", a.clone(), key_json("1", a.clone(), json!([])), json!([])) })
    );
    // A tagged node belongs to its tags: no user on the single view.
    let r = h.call(GET, "/api/v1/node/2", None).await;
    assert_eq!(
        r.norm(),
        json!({ "node": node_json("2", "node-b", Value::Null, key_json("2", b.clone(), json!(["tag:initial"])), json!(["tag:initial"])) })
    );
    assert_eq!(h.call(GET, "/api/v1/node/99999", None).await.status, 404);
    assert_eq!(h.call(GET, "/api/v1/node/abc", None).await.status, 400);
    assert_eq!(
        h.call(GET, "/api/v1/node/9223372036854775808", None)
            .await
            .status,
        404,
        "beyond the database's range: cannot exist"
    );

    // The list shows tagged nodes under tagged-devices.
    let r = h.call(GET, "/api/v1/node", None).await;
    let nodes = r.norm()["nodes"].clone();
    assert_eq!(nodes.as_array().unwrap().len(), 2);
    assert_eq!(nodes[0]["user"], a);
    let mut td = norm(serde_json::to_value(super::super::model::User::tagged_devices()).unwrap());
    td["createdAt"] = json!("0001-01-01T00:00:00Z");
    assert_eq!(nodes[1]["user"], td);
    let r = h.call(GET, "/api/v1/node?user=alice", None).await;
    let ids: Vec<String> = r.json()["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["1"]);
    assert_eq!(
        h.call(GET, "/api/v1/node?user=nope", None).await.status,
        404
    );
}

#[tokio::test]
async fn mutations() {
    let h = H::new().await;
    let alice = h.user("alice").await;
    h.node(alice, "node-a", 1, &[]).await;
    h.node(alice, "node-b", 2, &[]).await;

    let r = h.call(POST, "/api/v1/node/1/expire", None).await;
    assert_eq!(r.status, 200);
    assert!(r.json()["node"]["expiry"].is_string());
    let r = h
        .call(
            POST,
            "/api/v1/node/1/expire",
            Some(r#"{"disableExpiry":true}"#),
        )
        .await;
    assert_eq!(r.json()["node"]["expiry"], Value::Null);
    let r = h
        .call(
            POST,
            "/api/v1/node/1/expire",
            Some(r#"{"expiry":"2099-01-01T00:00:00Z"}"#),
        )
        .await;
    assert_eq!(r.json()["node"]["expiry"], "2099-01-01T00:00:00Z");
    let both = r#"{"expiry":"2099-01-01T00:00:00Z","disableExpiry":true}"#;
    assert_eq!(
        h.call(POST, "/api/v1/node/1/expire", Some(both))
            .await
            .status,
        400
    );
    assert_eq!(
        h.call(POST, "/api/v1/node/99999/expire", None).await.status,
        404
    );
    assert_eq!(
        h.call(POST, "/api/v1/node/abc/expire", None).await.status,
        400
    );

    let r = h
        .call(POST, "/api/v1/node/1/rename/renamed-node", None)
        .await;
    assert_eq!(r.json()["node"]["givenName"], "renamed-node");
    assert_eq!(
        h.call(POST, "/api/v1/node/2/rename/renamed-node", None)
            .await
            .status,
        409
    );
    assert_eq!(
        h.call(POST, "/api/v1/node/1/rename/Not%20Valid", None)
            .await
            .status,
        400
    );
    assert_eq!(
        h.call(POST, "/api/v1/node/99999/rename/x", None)
            .await
            .status,
        404
    );
    assert_eq!(
        h.call(POST, "/api/v1/node/abc/rename/x", None).await.status,
        400
    );

    let tags = r#"{"tags":["tag:foo"]}"#;
    assert_eq!(
        h.call(POST, "/api/v1/node/99999/tags", Some(tags))
            .await
            .status,
        404
    );
    assert_eq!(
        h.call(POST, "/api/v1/node/abc/tags", Some(tags))
            .await
            .status,
        400
    );
    assert_eq!(
        h.call(POST, "/api/v1/node/1/tags", Some(r#"{"tags":[]}"#))
            .await
            .status,
        400
    );
    assert_eq!(
        h.call(POST, "/api/v1/node/1/tags", Some(r#"{"tags":["server"]}"#))
            .await
            .status,
        400
    );
    let r = h.call(POST, "/api/v1/node/2/tags", Some(tags)).await;
    assert_eq!(r.json()["node"]["tags"], json!(["tag:foo"]));
    assert_eq!(
        r.json()["node"]["user"],
        Value::Null,
        "now owned by its tag"
    );

    let r = h
        .call(
            POST,
            "/api/v1/node/1/approve_routes",
            Some(r#"{"routes":[]}"#),
        )
        .await;
    assert_eq!(r.json()["node"]["approvedRoutes"], json!([]));
    assert_eq!(r.json()["node"]["subnetRoutes"], json!([]));
    // One exit route approves both; subnetRoutes leaves exit routes out here.
    let r = h
        .call(
            POST,
            "/api/v1/node/1/approve_routes",
            Some(r#"{"routes":["10.1.0.0/24","0.0.0.0/0"]}"#),
        )
        .await;
    assert_eq!(
        r.json()["node"]["approvedRoutes"],
        json!(["0.0.0.0/0", "10.1.0.0/24", "::/0"])
    );
    assert_eq!(r.json()["node"]["subnetRoutes"], json!(["10.1.0.0/24"]));
    let listed = h.call(GET, "/api/v1/node", None).await.json();
    assert_eq!(
        listed["nodes"][0]["subnetRoutes"],
        json!(["0.0.0.0/0", "10.1.0.0/24", "::/0"]),
        "the list shows every served route"
    );
    let bad = r#"{"routes":["10.0.0.0/33"]}"#;
    assert_eq!(
        h.call(POST, "/api/v1/node/1/approve_routes", Some(bad))
            .await
            .status,
        400
    );
    let none = r#"{"routes":["10.0.0.0/24"]}"#;
    assert_eq!(
        h.call(POST, "/api/v1/node/99999/approve_routes", Some(none))
            .await
            .status,
        404
    );
    assert_eq!(
        h.call(POST, "/api/v1/node/abc/approve_routes", Some(none))
            .await
            .status,
        400
    );

    let r = h.call(DELETE, "/api/v1/node/2", None).await;
    assert_eq!((r.status, r.json()), (200, json!({})));
    assert_eq!(h.call(DELETE, "/api/v1/node/2", None).await.status, 404);
    assert_eq!(h.call(DELETE, "/api/v1/node/abc", None).await.status, 400);
}

#[tokio::test]
async fn register_backfill_and_debug_create() {
    let h = H::new().await;
    h.user("alice").await;
    let r = h
        .call(
            POST,
            "/api/v1/node/register?user=alice&key=invalidkey",
            None,
        )
        .await;
    assert_eq!(r.status, 400);
    let id = AuthId::generate();
    let path = format!("/api/v1/node/register?user=nope&key={id}");
    assert_eq!(h.call(POST, &path, None).await.status, 404);
    let path = format!("/api/v1/node/register?user=alice&key={id}");
    assert_eq!(
        h.call(POST, &path, None).await.status,
        404,
        "nothing pending"
    );

    let r = h
        .call(POST, "/api/v1/node/backfillips?confirmed=true", None)
        .await;
    assert_eq!((r.status, r.json()), (200, json!({ "changes": [] })));
    assert_eq!(
        h.call(POST, "/api/v1/node/backfillips", None).await.status,
        400
    );

    let body = |user: &str, key: &str| {
        json!({ "user": user, "key": key, "name": "dbgnode", "routes": ["10.0.0.0/24"] })
            .to_string()
    };
    assert_eq!(
        h.call(POST, "/api/v1/debug/node", Some(&body("nope", id.as_str())))
            .await
            .status,
        404
    );
    assert_eq!(
        h.call(POST, "/api/v1/debug/node", Some(&body("alice", "badkey")))
            .await
            .status,
        400
    );
    let r = h
        .call(
            POST,
            "/api/v1/debug/node",
            Some(&body("alice", id.as_str())),
        )
        .await;
    assert_eq!(r.status, 200);
    let echo = r.json()["node"].clone();
    assert_eq!(echo["name"], "dbgnode");
    assert_eq!(echo["availableRoutes"], json!(["10.0.0.0/24"]));
    assert_eq!(echo["preAuthKey"], Value::Null);
    // The echo is a pending registration; registering makes it a node.
    let r = h.call(POST, &path, None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["node"]["registerMethod"], "REGISTER_METHOD_CLI");
    assert_eq!(r.json()["node"]["name"], "dbgnode");
    let listed = h.call(GET, "/api/v1/node", None).await.json();
    assert_eq!(listed["nodes"].as_array().unwrap().len(), 1);
}

/// clawscale's `POST /api/v1/node/{id}/approve` (device approval) both
/// ways, audited; the node's state follows.
#[tokio::test]
async fn approve_and_revoke_a_node() {
    let h = H::new().await;
    let alice = h.user("alice").await;
    let id = h.node(alice, "web", 1, &[]).await;
    let node = |h: &H| {
        h.fx.state
            .world()
            .node(crate::types::NodeId(id))
            .cloned()
            .unwrap()
    };
    let r = h
        .call(
            POST,
            &format!("/api/v1/node/{id}/approve?approved=false"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert!(!node(&h).authorized);
    let r = h
        .call(POST, &format!("/api/v1/node/{id}/approve"), None)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert!(node(&h).authorized);
    let r = h.call(POST, "/api/v1/node/999/approve", None).await;
    assert_eq!(r.status, 404);
    let r = h
        .call(
            POST,
            &format!("/api/v1/node/{id}/approve?approved=maybe"),
            None,
        )
        .await;
    assert_eq!(r.status, 400);
}
