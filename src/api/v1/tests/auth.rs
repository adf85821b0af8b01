//! `/api/v1/auth/*`: deciding pending registrations.

use serde_json::{Value, json};

use super::{H, POST, user_json};
use crate::admin::AuthId;

#[tokio::test]
async fn auth_decisions() {
    let h = H::new().await;
    h.user("alice").await;
    let unknown = AuthId::generate();
    for path in ["/api/v1/auth/approve", "/api/v1/auth/reject"] {
        let r = h
            .call(POST, path, Some(r#"{"authId":"not-a-valid-auth-id"}"#))
            .await;
        assert_eq!(r.status, 400, "{path}");
        let body = json!({ "authId": unknown.to_string() }).to_string();
        assert_eq!(h.call(POST, path, Some(&body)).await.status, 404, "{path}");
    }
    let reg = |user: &str, id: &str| json!({ "user": user, "authId": id }).to_string();
    let r = h
        .call(
            POST,
            "/api/v1/auth/register",
            Some(&reg("alice", "not-a-valid-auth-id")),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = h
        .call(
            POST,
            "/api/v1/auth/register",
            Some(&reg("ghost", unknown.as_str())),
        )
        .await;
    assert_eq!(r.status, 404, "unknown user");
    let r = h
        .call(
            POST,
            "/api/v1/auth/register",
            Some(&reg("alice", unknown.as_str())),
        )
        .await;
    assert_eq!(r.status, 404, "no pending session");

    // A waiting client, as the login flow will leave one.
    let pending = crate::state::RegisterInput {
        machine_key: crate::types::MachinePublic([7; 32]),
        node_key: crate::types::NodePublic([8; 32]),
        old_node_key: None,
        auth_key: None,
        expiry: None,
        hostinfo: json!({ "Hostname": "regnode" }),
        ephemeral: false,
        version: 100,
    };
    let id = AuthId::generate();
    let wait =
        h.fx.admin
            .registrations()
            .insert(id.clone(), Some(pending))
            .unwrap();
    let r = h
        .call(
            POST,
            "/api/v1/auth/register",
            Some(&reg("alice", id.as_str())),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let node = r.norm()["node"].clone();
    assert_eq!(node["id"], "1");
    assert_eq!(node["name"], "regnode");
    assert_eq!(node["registerMethod"], "REGISTER_METHOD_CLI");
    assert_eq!(node["expiry"], Value::Null);
    assert_eq!(node["preAuthKey"], Value::Null);
    assert_eq!(node["subnetRoutes"], json!([]));
    assert_eq!(node["user"], user_json("1", "alice"));
    match wait.await.expect("verdict") {
        crate::admin::registrations::Verdict::Approved(Some(n)) => assert_eq!(n.id.0, 1),
        other => panic!("{other:?}"),
    }

    // Approve and reject finish a waiting request with their verdict.
    for (path, approved) in [
        ("/api/v1/auth/approve", true),
        ("/api/v1/auth/reject", false),
    ] {
        let id = AuthId::generate();
        let wait = h.fx.admin.registrations().insert(id.clone(), None).unwrap();
        let body = json!({ "authId": id.to_string() }).to_string();
        let r = h.call(POST, path, Some(&body)).await;
        assert_eq!((r.status, r.json()), (200, json!({})));
        let verdict = wait.await.expect("verdict");
        assert_eq!(
            matches!(verdict, crate::admin::registrations::Verdict::Approved(_)),
            approved
        );
        assert_eq!(
            h.call(POST, path, Some(&body)).await.status,
            404,
            "used once"
        );
    }
}
