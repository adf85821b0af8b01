//! API v2 with a real client: the server in the hub namespace, an OAuth
//! client made with `clawscale oauth-clients create`, its token and a
//! tagged pre-auth key obtained over `/api/v2` from a host namespace (curl,
//! as any HTTP client), the key enrolling a stock tailscaled 1.96.4, which
//! then shows in both APIs' device lists (`/api/v1/node` and
//! `/api/v2/tailnet/-/devices`); the audit trail names the OAuth client,
//! and the server's log holds none of the secrets.

use std::time::Duration;

use serde_json::Value;

use crate::harness::process::run;
use crate::harness::{
    ClientVersion, Netns, Server, Tailscaled, Topology, skip_real_clients, wait_for,
};

const JOIN: Duration = Duration::from_secs(90);

/// `curl` in `ns`: (status, body).
fn curl(
    ns: &Netns,
    method: &str,
    url: &str,
    headers: &[String],
    body: Option<&str>,
) -> (u16, String) {
    let mut cmd = ns.command("curl");
    cmd.args(["-sS", "-X", method, "-w", "\n%{http_code}", url]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(b) = body {
        cmd.args(["--data-binary", b]);
    }
    let out = run(&mut cmd, Duration::from_secs(30));
    assert!(out.success(), "curl {method} {url}:\n{out}");
    let (body, code) = out.stdout.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status"), body.to_string())
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[test]
fn an_api_v2_key_enrolls_tailscaled_which_both_apis_list() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(2);
    let server = Server::start(&topo);
    let out = server.cli_ok(&[
        "oauth-clients",
        "create",
        "--scopes",
        "auth_keys,devices:core",
        "--tags",
        "tag:k8s-operator",
        "-o",
        "json",
    ]);
    let created = json(out.stdout.trim());
    let client_id = created["id"].as_str().expect("id").to_owned();
    let secret = created["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("tskey-client-"), "{secret}");
    let listed = server.cli_ok(&["oauth-clients", "list", "-o", "json"]);
    assert!(listed.stdout.contains(&client_id));
    assert!(
        !listed.stdout.contains(&secret[30..]),
        "no secret in the list"
    );

    let ns = topo.host(0);
    let url = server.url();
    let (status, body) = curl(
        ns,
        "POST",
        &format!("{url}/api/v2/oauth/token"),
        &[],
        Some(&format!("client_id={client_id}&client_secret={secret}")),
    );
    assert_eq!(status, 200, "{body}");
    let token = json(&body)["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let auth = vec![format!("Authorization: Bearer {token}")];

    let (status, body) = curl(
        ns,
        "POST",
        &format!("{url}/api/v2/tailnet/-/keys"),
        &auth,
        Some(
            r#"{"capabilities":{"devices":{"create":{"reusable":false,"ephemeral":false,
                "preauthorized":true,"tags":["tag:k8s-operator"]}}},"expirySeconds":3600,
                "description":"operator"}"#,
        ),
    );
    assert_eq!(status, 200, "{body}");
    let key = json(&body)["key"].as_str().expect("key").to_owned();

    let node = Tailscaled::start(topo.host(1), "proxy", ClientVersion::V1_96_4);
    node.up_ok(&url, &key, "proxy");
    node.wait_state("Running", JOIN);

    // API v2, with the OAuth token.
    let device = wait_for("the device listed online over API v2", JOIN, || {
        let (status, body) = curl(
            ns,
            "GET",
            &format!("{url}/api/v2/tailnet/-/devices?fields=all"),
            &auth,
            None,
        );
        if status != 200 {
            return Err(format!("{status}: {body}"));
        }
        let v = json(&body);
        let d = v["devices"]
            .as_array()
            .and_then(|a| a.iter().find(|d| d["hostname"] == "proxy").cloned())
            .ok_or_else(|| format!("proxy not listed: {v}"))?;
        if d["connectedToControl"] == true {
            Ok(d)
        } else {
            Err(format!("not connected yet: {d}"))
        }
    });
    assert_eq!(device["tags"], serde_json::json!(["tag:k8s-operator"]));
    assert_eq!(device["user"], "tagged-devices");
    assert_eq!(device["addresses"].as_array().map(Vec::len), Some(2));
    assert!(
        device["clientVersion"]
            .as_str()
            .unwrap_or_default()
            .starts_with("1.96.4")
    );

    // REST v1, with an API key.
    let out = server.cli_ok(&["apikeys", "create", "--scope", "admin:read", "-o", "json"]);
    let api_key = json(out.stdout.trim())["api_key"]
        .as_str()
        .expect("key")
        .to_owned();
    let (status, body) = curl(
        ns,
        "GET",
        &format!("{url}/api/v1/node"),
        &[format!("Authorization: Bearer {api_key}")],
        None,
    );
    assert_eq!(status, 200, "{body}");
    let v1 = json(&body);
    let n = v1["nodes"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["name"] == "proxy").cloned())
        .unwrap_or_else(|| panic!("not in /api/v1/node: {v1}"));
    assert_eq!(n["id"], device["id"]);
    assert_eq!(n["tags"], device["tags"]);
    assert_eq!(n["online"], true);

    // An auth_keys-and-devices:core token may not touch the policy.
    let (status, body) = curl(
        ns,
        "GET",
        &format!("{url}/api/v2/tailnet/-/acl"),
        &auth,
        None,
    );
    assert_eq!(status, 403, "{body}");
    assert!(json(&body)["message"].is_string());

    // Who did what, and no secret in the server's log.
    let audit = server.cli_ok(&["audit", "list", "-o", "json"]);
    let entries = json(audit.stdout.trim());
    let entries = entries.as_array().expect("entries");
    let key_line = entries
        .iter()
        .find(|e| e["action"] == "preauthkey.create" && e["transport"] == "rest-v2")
        .unwrap_or_else(|| panic!("no API v2 key creation in {entries:?}"));
    assert_eq!(key_line["actor"], format!("oauth:{client_id}"));
    let log = server.log();
    for s in [&secret, &token, &key] {
        let tail = &s[s.len() - 40..];
        assert!(!log.contains(tail), "a secret in the server log");
        assert!(!audit.stdout.contains(tail), "a secret in the audit log");
    }

    // Deleting the client revokes its token at once.
    server.cli_ok(&["oauth-clients", "delete", &client_id]);
    let (status, body) = curl(
        ns,
        "GET",
        &format!("{url}/api/v2/tailnet/-/devices"),
        &auth,
        None,
    );
    assert_eq!(status, 401, "{body}");
    let listed = server.cli_ok(&["oauth-clients", "list", "-o", "json"]);
    assert!(!listed.stdout.contains(&client_id), "{}", listed.stdout);
}

/// `tailscale up --auth-key tskey-client-…`: the stock CLI trades an OAuth
/// client's secret for a token at `/api/v2/oauth/token` and creates its own
/// tagged key over `/api/v2/tailnet/-/keys` (Tailscale's `oauthkey`
/// feature), then joins with it.
#[test]
fn tailscale_up_with_an_oauth_client_secret_joins() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(1);
    let server = Server::start(&topo);
    let out = server.cli_ok(&[
        "oauth-clients",
        "create",
        "--scopes",
        "auth_keys",
        "--tags",
        "tag:k8s-operator",
        "-o",
        "json",
    ]);
    let created = json(out.stdout.trim());
    let client_id = created["id"].as_str().expect("id").to_owned();
    let secret = created["secret"].as_str().expect("secret").to_owned();
    let url = server.url();
    let node = Tailscaled::start(topo.host(0), "oauthnode", ClientVersion::V1_96_4);
    let key = format!("{secret}?ephemeral=false&preauthorized=true&baseURL={url}");
    let out = node.up_with(
        &url,
        &key,
        "oauthnode",
        &["--advertise-tags=tag:k8s-operator"],
    );
    if !out.success() {
        node.dump_log();
        server.dump_log();
        panic!("tailscale up with an OAuth secret failed:\n{out}");
    }
    node.wait_state("Running", JOIN);
    let n = server
        .nodes()
        .into_iter()
        .find(|n| n.name() == "oauthnode")
        .expect("joined");
    assert_eq!(n.raw["tags"], serde_json::json!(["tag:k8s-operator"]));
    let audit = server.cli_ok(&["audit", "list", "-o", "json"]);
    assert!(
        audit.stdout.contains(&format!("\"oauth:{client_id}\"")),
        "the key it made is on record as the client"
    );
    assert!(!server.log().contains(&secret[secret.len() - 40..]));
}
