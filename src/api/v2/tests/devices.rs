//! Keys and devices: what Terraform's `tailscale_tailnet_key`,
//! `tailscale_device_*` resources and the Kubernetes operator read back.

use serde_json::{Value, json};

use super::{DELETE, GET, H, POST};
use crate::types::Scope;

#[tokio::test]
async fn keys_are_created_read_listed_and_deleted() {
    let h = H::new().await;
    let t = h.oauth("auth_keys", &["tag:k8s"]).await;
    let body = json!({
        "capabilities": { "devices": { "create": {
            "reusable": true, "ephemeral": true, "preauthorized": true, "tags": ["tag:k8s"],
        }}},
        "expirySeconds": 3600,
        "description": "operator",
    })
    .to_string();
    let r = h
        .call(POST, "/api/v2/tailnet/-/keys", &t, Some(&body))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let k = r.json();
    let secret = k["key"].as_str().unwrap().to_string();
    assert!(secret.starts_with("cskey-auth-"), "{secret}");
    assert_eq!(k["keyType"], "auth");
    assert_eq!(k["description"], "operator");
    assert_eq!(k["expirySeconds"], 3600);
    assert_eq!(k["invalid"], false);
    assert_eq!(k["userId"], "", "owned by tags");
    assert_eq!(
        k["capabilities"],
        json!({ "devices": { "create": {
            "reusable": true, "ephemeral": true, "preauthorized": true, "tags": ["tag:k8s"],
        }}})
    );
    let created = chrono::DateTime::parse_from_rfc3339(k["created"].as_str().unwrap()).unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(k["expires"].as_str().unwrap()).unwrap();
    assert!(
        (expires - created - chrono::Duration::seconds(3600))
            .num_seconds()
            .abs()
            <= 1
    );
    let id = k["id"].as_str().unwrap().to_string();

    // Read back without the secret, as Terraform does after creating.
    let r = h
        .call(GET, &format!("/api/v2/tailnet/-/keys/{id}"), &t, None)
        .await;
    assert_eq!(r.status, 200);
    let mut read = r.json();
    assert!(read.get("key").is_none(), "{read}");
    read["key"] = Value::String(secret.clone());
    assert_eq!(read, k);

    let r = h
        .call(GET, "/api/v2/tailnet/-/keys?all=true", &t, None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["keys"].as_array().unwrap().len(), 1);
    assert!(!r.text().contains(&secret[20..]), "no secret in the list");

    // Default expiry: Tailscale's 90 days; keyType other than auth refused.
    let r = h
        .call(
            POST,
            "/api/v2/tailnet/-/keys",
            &t,
            Some(r#"{"capabilities":{"devices":{"create":{"tags":["tag:k8s"]}}}}"#),
        )
        .await;
    assert_eq!(r.json()["expirySeconds"], 90 * 24 * 3600);
    let r = h
        .call(
            POST,
            "/api/v2/tailnet/-/keys",
            &t,
            Some(r#"{"keyType":"client","scopes":["all"]}"#),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.message().contains("keyType"));
    let r = h
        .call(
            POST,
            "/api/v2/tailnet/-/keys",
            &t,
            Some(r#"{"expirySeconds":-5}"#),
        )
        .await;
    assert_eq!(r.status, 400);

    let path = format!("/api/v2/tailnet/-/keys/{id}");
    let r = h.call(DELETE, &path, &t, None).await;
    assert_eq!((r.status, r.body.len()), (200, 0));
    let r = h.call(GET, &path, &t, None).await;
    assert_eq!(r.status, 404);
    assert!(!r.message().is_empty());
    assert_eq!(h.call(DELETE, &path, &t, None).await.status, 404);
    assert_eq!(
        h.call(GET, "/api/v2/tailnet/-/keys/kXYZ", &t, None)
            .await
            .status,
        404
    );

    // An API key (admin) may create an untagged key only for a user, which
    // API v2 cannot name: refused with the reason.
    let api = h.api_key(Scope::Admin).await;
    let r = h
        .call(POST, "/api/v2/tailnet/-/keys", &api, Some("{}"))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.message().contains("user or tags"), "{}", r.message());
}

#[tokio::test]
async fn devices_are_listed_read_and_changed() {
    let h = H::new().await;
    let id = h.node(1, &[]).await;
    let tagged = h.node(2, &["tag:k8s"]).await;
    let t = h.oauth("devices:core devices:routes", &["tag:k8s"]).await;

    let r = h.call(GET, "/api/v2/tailnet/-/devices", &t, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let list = r.json();
    let devices = list["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2);
    let d = &devices[0];
    assert_eq!(d["id"], id.0.to_string());
    assert_eq!(d["nodeId"], format!("n{}", id.0));
    assert_eq!(d["hostname"], "host1");
    assert_eq!(d["name"], "host1.clawql.local");
    assert_eq!(d["user"], "user1@example.com");
    assert_eq!(d["os"], "linux");
    assert_eq!(d["clientVersion"], "1.96.4");
    assert_eq!(d["authorized"], true);
    assert_eq!(d["keyExpiryDisabled"], true);
    assert_eq!(d["expires"], "0001-01-01T00:00:00Z");
    assert_eq!(d["connectedToControl"], false);
    assert_eq!(d["addresses"].as_array().unwrap().len(), 2);
    assert!(d["machineKey"].as_str().unwrap().starts_with("mkey:"));
    assert!(d["nodeKey"].as_str().unwrap().starts_with("nodekey:"));
    assert_eq!(d["tags"], json!([]));
    for f in ["enabledRoutes", "advertisedRoutes", "clientConnectivity"] {
        assert!(d.get(f).is_none(), "{f} only with fields=all");
    }
    assert_eq!(devices[1]["user"], "tagged-devices");
    assert_eq!(devices[1]["tags"], json!(["tag:k8s"]));

    let r = h
        .call(GET, "/api/v2/tailnet/-/devices?fields=all", &t, None)
        .await;
    let d = &r.json()["devices"][0];
    assert_eq!(d["advertisedRoutes"], json!(["10.1.0.0/24"]));
    assert_eq!(d["enabledRoutes"], json!([]));
    assert_eq!(d["clientConnectivity"]["clientSupports"]["udp"], true);
    assert_eq!(d["clientConnectivity"]["mappingVariesByDestIP"], false);

    // By either id form.
    for key in [id.0.to_string(), format!("n{}", id.0)] {
        let r = h
            .call(GET, &format!("/api/v2/device/{key}?fields=all"), &t, None)
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["nodeId"], format!("n{}", id.0));
    }
    assert_eq!(
        h.call(GET, "/api/v2/device/n999", &t, None).await.status,
        404
    );
    assert_eq!(
        h.call(GET, "/api/v2/device/bogus", &t, None).await.status,
        400
    );

    // Routes: enabled before or after being advertised.
    let dev = format!("/api/v2/device/{}", id.0);
    let r = h
        .call(
            POST,
            &format!("{dev}/routes"),
            &t,
            Some(r#"{"routes":["10.1.0.0/24","192.168.9.0/24"]}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({ "advertisedRoutes": ["10.1.0.0/24"], "enabledRoutes": ["10.1.0.0/24", "192.168.9.0/24"] })
    );
    let r = h.call(GET, &format!("{dev}/routes"), &t, None).await;
    assert_eq!(r.json()["enabledRoutes"].as_array().unwrap().len(), 2);
    let r = h
        .call(
            POST,
            &format!("{dev}/routes"),
            &t,
            Some(r#"{"routes":["x"]}"#),
        )
        .await;
    assert_eq!(r.status, 400);

    // Tags: the client's own only.
    let r = h
        .call(
            POST,
            &format!("{dev}/tags"),
            &t,
            Some(r#"{"tags":["tag:k8s"]}"#),
        )
        .await;
    assert_eq!((r.status, r.body.len()), (200, 0), "{}", r.text());
    let r = h.call(GET, &dev, &t, None).await;
    assert_eq!(r.json()["tags"], json!(["tag:k8s"]));
    assert_eq!(r.json()["user"], "tagged-devices");
    let r = h
        .call(
            POST,
            &format!("{dev}/tags"),
            &t,
            Some(r#"{"tags":["tag:prod"]}"#),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());

    let r = h
        .call(
            POST,
            &format!("{dev}/authorized"),
            &t,
            Some(r#"{"authorized":true}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = h
        .call(
            POST,
            &format!("{dev}/authorized"),
            &t,
            Some(r#"{"authorized":false}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = h.call(GET, &dev, &t, None).await;
    assert_eq!(r.json()["authorized"], false);
    let r = h
        .call(
            POST,
            &format!("{dev}/authorized"),
            &t,
            Some(r#"{"authorized":true}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = h.call(GET, &dev, &t, None).await;
    assert_eq!(r.json()["authorized"], true);
    let r = h
        .call(POST, &format!("{dev}/authorized"), &t, Some("{}"))
        .await;
    assert_eq!(r.status, 400);

    let r = h.call(POST, &format!("{dev}/expire"), &t, None).await;
    assert_eq!(r.status, 200);
    let r = h.call(GET, &dev, &t, None).await;
    assert_eq!(r.json()["keyExpiryDisabled"], false);
    let expires = r.json()["expires"].as_str().unwrap().to_string();
    assert_ne!(expires, "0001-01-01T00:00:00Z");

    let r = h
        .call(DELETE, &format!("/api/v2/device/n{}", tagged.0), &t, None)
        .await;
    assert_eq!((r.status, r.body.len()), (200, 0));
    let r = h.call(GET, "/api/v2/tailnet/-/devices", &t, None).await;
    assert_eq!(r.json()["devices"].as_array().unwrap().len(), 1);
    assert_eq!(
        h.call(DELETE, &format!("/api/v2/device/{}", tagged.0), &t, None)
            .await
            .status,
        404
    );
}
