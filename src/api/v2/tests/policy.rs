//! The policy file (ETag, If-Match, HuJSON or JSON, validate) and the DNS
//! settings, as Terraform's `tailscale_acl` and `tailscale_dns_*` use them.

use serde_json::json;

use super::{GET, H, POST};

const POLICY: &str = r#"{
  // Who may reach what.
  "acls": [{ "action": "accept", "src": ["*"], "dst": ["*:22"] }],
}"#;

#[tokio::test]
async fn the_policy_is_read_and_replaced_with_etags() {
    let h = H::new().await;
    let t = h.oauth("policy_file", &[]).await;
    let auth = super::bearer(&t);
    let acl = "/api/v2/tailnet/-/acl";

    // No policy set: Tailscale's default, ETag "ts-default".
    let r = h.call(GET, acl, &t, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["etag"], "\"ts-default\"");
    assert_eq!(r.json()["acls"][0]["dst"], json!(["*:*"]));

    // Terraform's create: only if still the default.
    let r = h
        .send(
            POST,
            acl,
            Some(POLICY),
            &[
                ("authorization", &auth),
                ("if-match", "\"ts-default\""),
                ("content-type", "application/hujson"),
                ("accept", "application/hujson"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), POLICY, "HuJSON back as written");
    assert_eq!(r.headers["content-type"], "application/hujson");
    let etag = r.headers["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"') && etag.len() == 66, "{etag}");

    // JSON form: comments and trailing commas gone.
    let r = h.call(GET, acl, &t, None).await;
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["etag"].to_str().unwrap(), etag);
    assert_eq!(
        r.json(),
        json!({ "acls": [{ "action": "accept", "src": ["*"], "dst": ["*:22"] }] })
    );

    // A stale ETag (or ts-default now) is refused with 412; the policy stays.
    let other = r#"{"acls":[{"action":"accept","src":["*"],"dst":["*:80"]}]}"#;
    for stale in ["\"ts-default\"", "\"0000\""] {
        let r = h
            .send(
                POST,
                acl,
                Some(other),
                &[("authorization", &auth), ("if-match", stale)],
            )
            .await;
        assert_eq!(r.status, 412, "{stale}: {}", r.text());
        assert!(r.message().contains("If-Match"));
    }
    let r = h
        .send(
            POST,
            acl,
            Some(other),
            &[("authorization", &auth), ("if-match", &etag)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_ne!(r.headers["etag"].to_str().unwrap(), etag);

    // An invalid policy is a 400 and changes nothing; validate says why
    // with 200 (Tailscale's shape) and stores nothing.
    let r = h.call(POST, acl, &t, Some(r#"{"acls": [1]}"#)).await;
    assert_eq!(r.status, 400);
    let validate = "/api/v2/tailnet/-/acl/validate";
    let r = h.call(POST, validate, &t, Some(r#"{"acls": [1]}"#)).await;
    assert_eq!(r.status, 200);
    assert!(!r.message().is_empty());
    let r = h.call(POST, validate, &t, Some(POLICY)).await;
    assert_eq!((r.status, r.json()), (200, json!({})));
    let r = h.call(GET, acl, &t, None).await;
    assert_eq!(r.json()["acls"][0]["dst"], json!(["*:80"]));

    // An empty body (Terraform's destroy) puts the open policy back.
    let r = h.call(POST, acl, &t, Some("")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["acls"][0]["dst"], json!(["*:*"]));

    // policy_file:read reads but does not write.
    let ro = h.oauth("policy_file:read", &[]).await;
    assert_eq!(h.call(GET, acl, &ro, None).await.status, 200);
    assert_eq!(h.call(POST, acl, &ro, Some(POLICY)).await.status, 403);
}

#[tokio::test]
async fn dns_settings_are_read_and_changed() {
    let h = H::new().await;
    let t = h.oauth("dns", &[]).await;
    let ns = "/api/v2/tailnet/-/dns/nameservers";
    let sp = "/api/v2/tailnet/-/dns/searchpaths";
    let pref = "/api/v2/tailnet/-/dns/preferences";

    assert_eq!(h.call(GET, ns, &t, None).await.json(), json!({ "dns": [] }));
    let r = h
        .call(POST, ns, &t, Some(r#"{"dns":["9.9.9.9","2620:fe::fe"]}"#))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({ "dns": ["9.9.9.9", "2620:fe::fe"], "magicDNS": false })
    );
    let world = h.fx.state.world();
    let addrs: Vec<_> = world
        .dns_config()
        .fallback_resolvers
        .iter()
        .map(|r| r.addr.clone())
        .collect();
    assert_eq!(addrs, ["9.9.9.9", "2620:fe::fe"], "in the maps");
    assert_eq!(
        h.call(GET, ns, &t, None).await.json(),
        json!({ "dns": ["9.9.9.9", "2620:fe::fe"] })
    );
    let r = h
        .call(POST, ns, &t, Some(r#"{"dns":["dns.example"]}"#))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.message().contains("IP address"));

    let r = h
        .call(POST, sp, &t, Some(r#"{"searchPaths":["corp.example"]}"#))
        .await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({ "searchPaths": ["corp.example"] }))
    );
    assert_eq!(h.fx.state.world().dns_config().domains, ["corp.example"]);
    let r = h
        .call(POST, sp, &t, Some(r#"{"searchPaths":["not a name"]}"#))
        .await;
    assert_eq!(r.status, 400);

    assert_eq!(
        h.call(GET, pref, &t, None).await.json(),
        json!({ "magicDNS": false })
    );
    // The test server's config has no base domain: MagicDNS cannot go on.
    let r = h.call(POST, pref, &t, Some(r#"{"magicDNS":true}"#)).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.message().contains("base_domain"));

    // null: back to the config file's value.
    let r = h.call(POST, ns, &t, Some(r#"{"dns":null}"#)).await;
    assert_eq!(r.json()["dns"], json!([]));
    assert!(
        h.fx.state
            .world()
            .dns_config()
            .fallback_resolvers
            .is_empty()
    );

    let ro = h.oauth("dns:read", &[]).await;
    assert_eq!(h.call(GET, sp, &ro, None).await.status, 200);
    assert_eq!(
        h.call(POST, sp, &ro, Some(r#"{"searchPaths":[]}"#))
            .await
            .status,
        403
    );
}
