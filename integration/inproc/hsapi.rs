//! hsapi-client (PyPI, pinned), a real client of Headscale's REST API,
//! drives users, pre-auth keys, nodes and policy of an in-process server
//! (`hsapi_drive.py` asserts the answers).
//!
//! The client lives in a virtualenv under `target/hsapi-venv`, created here
//! when `.ci/run` has not already: hsapi-client needs Python 3.12 or newer
//! (CI's machines carry it under pyenv next to Debian's 3.11).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::client::SimNode;
use crate::server::{Store, TestServer};

const HSAPI_CLIENT: &str = "hsapi-client==0.9.9";

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn python_at_least_3_12(python: &Path) -> bool {
    Command::new(python)
        .args([
            "-c",
            "import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)",
        ])
        .status()
        .is_ok_and(|s| s.success())
}

/// A Python ≥ 3.12 to build the virtualenv from.
fn base_python() -> anyhow::Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = ["python3.13", "python3.12", "python3"]
        .iter()
        .map(PathBuf::from)
        .collect();
    if let Ok(dir) = std::fs::read_dir("/root/.pyenv/versions") {
        let mut versions: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        versions.sort();
        versions.reverse();
        candidates.extend(versions.into_iter().map(|v| v.join("bin/python3")));
    }
    candidates
        .into_iter()
        .find(|p| python_at_least_3_12(p))
        .context("hsapi-client needs Python >= 3.12 and none was found")
}

/// The virtualenv's python with hsapi-client installed.
fn hsapi_python() -> anyhow::Result<PathBuf> {
    let venv = target_dir().join("hsapi-venv");
    let python = venv.join("bin/python");
    let ready = |p: &Path| {
        Command::new(p)
            .args(["-c", "import hsapi_client"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if ready(&python) {
        return Ok(python);
    }
    let base = base_python()?;
    let status = Command::new(&base)
        .args(["-m", "venv"])
        .arg(&venv)
        .status()?;
    if !status.success() {
        bail!("{} -m venv {} failed", base.display(), venv.display());
    }
    let status = Command::new(&python)
        .args(["-m", "pip", "install", "-q", HSAPI_CLIENT])
        .status()?;
    if !status.success() || !ready(&python) {
        bail!("installing {HSAPI_CLIENT} into {} failed", venv.display());
    }
    Ok(python)
}

#[tokio::test]
async fn hsapi_client_manages_users_keys_nodes_and_policy() -> anyhow::Result<()> {
    let python = hsapi_python()?;
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
