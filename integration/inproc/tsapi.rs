//! The `tailscale` PyPI package (Tailscale's API v2 client, pinned), a real
//! client of API v2: with an OAuth client's token it lists the devices of
//! an in-process server, creates, reads, lists and deletes keys, and is
//! refused what its scopes and tags do not allow (`tsapi_drive.py` asserts
//! the answers). The package has no base URL setting; the script hands it
//! an aiohttp session that sends its requests to this server.

use std::path::Path;

use anyhow::Context;
use clawscale::admin::{Caller, NewOAuthClient, Transport};
use clawscale::types::{Scope, ScopeSet};

use crate::client::SimNode;
use crate::server::{Store, TestServer};

const TAILSCALE_CLIENT: &str = "tailscale==1.0.0";

#[tokio::test]
async fn tailscale_python_client_lists_devices_and_manages_keys() -> anyhow::Result<()> {
    let python = crate::pyvenv::python_with("tsapi-venv", TAILSCALE_CLIENT, "tailscale")?;
    let dir = tempfile::tempdir()?;
    let srv = TestServer::start(dir.path(), &Store::Sqlite).await?;
    let carol = srv.create_user("carol").await?;
    let key = srv.key(carol, false).await?;
    let mut node = SimNode::new(&srv.url, "sim1");
    node.connect().await?;
    node.register_ts(&key).await?;
    let node_id = srv
        .state
        .world()
        .nodes
        .keys()
        .next()
        .context("the node registered")?
        .0;

    let local = Caller::local(Some(0), Transport::RestV1);
    let client = |scopes: &str, tags: &[&str]| NewOAuthClient {
        scopes: ScopeSet::parse([scopes]).expect("scopes"),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        description: "python".into(),
    };
    let (operator, secret) = srv
        .admin
        .create_oauth_client(&local, client("auth_keys devices:core", &["tag:k8s"]))
        .await?;
    let (_, keys_only) = srv
        .admin
        .create_oauth_client(&local, client("auth_keys", &["tag:k8s"]))
        .await?;
    let (_, api_key) = srv.state.create_api_key(Scope::Admin, None).await?;
    let api_key = api_key.replacen("cskey-api-", "tskey-api-", 1);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/inproc/tsapi_drive.py");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .env("TSAPI_SERVER", format!("http://{}", srv.addr))
        .env("OAUTH_CLIENT_ID", &operator.client_id)
        .env("OAUTH_CLIENT_SECRET", &secret)
        .env("KEYS_ONLY_SECRET", &keys_only)
        .env("API_KEY", &api_key)
        .env("NODE_ID", node_id.to_string())
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("all checks passed"),
        "tailscale client script failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // What it changed is on record as the OAuth client.
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl"))?;
    let actor = format!("\"actor\":\"oauth:{}\"", operator.client_id);
    let mine: Vec<&str> = audit.lines().filter(|l| l.contains(&actor)).collect();
    let ok = |action: &str, result: &str| {
        mine.iter().any(|l| {
            l.contains(&format!("\"action\":\"{action}\""))
                && l.contains(&format!("\"result\":\"{result}\""))
        })
    };
    assert!(ok("preauthkey.create", "ok"), "{audit}");
    assert!(ok("preauthkey.delete", "ok"), "{audit}");
    assert!(ok("preauthkey.create", "error"), "the refused key: {audit}");
    assert!(!audit.contains(&secret[secret.len() - 64..]));
    assert_eq!(srv.state.world().nodes.len(), 1, "nothing deleted");
    srv.stop().await;
    Ok(())
}

/// Access tokens are signed with a key derived from the server's Noise
/// key, so a token got before a restart still works after it (an OAuth
/// library keeps its token for the whole hour), while a deleted client's
/// does not.
#[tokio::test]
async fn access_tokens_survive_a_restart() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let srv = TestServer::start(dir.path(), &Store::Sqlite).await?;
    let local = Caller::local(Some(0), Transport::RestV1);
    let new = NewOAuthClient {
        scopes: ScopeSet::parse(["dns:read"]).expect("scopes"),
        ..Default::default()
    };
    let (client, secret) = srv.admin.create_oauth_client(&local, new).await?;
    let token = srv.admin.issue_token(&secret, None).await?.token;
    srv.stop().await;

    let srv = TestServer::start(dir.path(), &Store::Sqlite).await?;
    let caller = srv.admin.authenticate_token(&token).await?;
    assert_eq!(
        caller.actor.to_string(),
        format!("oauth:{}", client.client_id)
    );
    srv.admin
        .delete_oauth_client(&local, &client.client_id)
        .await?;
    assert!(srv.admin.authenticate_token(&token).await.is_err());
    srv.stop().await;
    Ok(())
}
