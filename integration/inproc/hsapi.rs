//! hsapi-client (PyPI, pinned), a real client of Headscale's REST API,
//! drives users, pre-auth keys, nodes and policy of an in-process server
//! (`hsapi_drive.py` asserts the answers).
//!
//! The client lives in a virtualenv under `target/hsapi-venv` (`pyvenv`).

use std::path::Path;

use anyhow::Context;

use crate::client::SimNode;
use crate::server::{Store, TestServer};

const HSAPI_CLIENT: &str = "hsapi-client==0.9.9";

#[tokio::test]
async fn hsapi_client_manages_users_keys_nodes_and_policy() -> anyhow::Result<()> {
    let python = crate::pyvenv::python_with("hsapi-venv", HSAPI_CLIENT, "hsapi_client")?;
    let dir = tempfile::tempdir()?;
    let mut cfg = crate::server::config(dir.path(), &Store::Sqlite);
    cfg.policy.mode = clawscale::config::PolicyMode::Database;
    let srv = TestServer::start_with(cfg).await?;
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
    let (_, api_key) = srv
        .state
        .create_api_key(clawscale::types::Scope::Admin, None)
        .await?;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/inproc/hsapi_drive.py");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .env("HSAPI_SERVER", format!("http://{}", srv.addr))
        .env("HSAPI_API_TOKEN", &api_key)
        .env("NODE_ID", node_id.to_string())
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("all checks passed"),
        "hsapi-client script failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // What the script did is on record, as the key that did it.
    let prefix = &api_key["cskey-api-".len()..][..12];
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl"))?;
    let by_key = audit
        .lines()
        .filter(|l| l.contains(&format!("\"actor\":\"apikey:{prefix}\"")))
        .count();
    assert!(
        by_key >= 12,
        "{by_key} audit lines by the script's key:\n{audit}"
    );
    srv.stop().await;
    Ok(())
}
