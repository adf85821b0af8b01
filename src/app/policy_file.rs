//! The policy file as the policy source (`policy.mode: file`): read at boot,
//! then reloaded when it changes on disk or on SIGHUP.
//!
//! The watch is on the file's directory, not the file: editors save by
//! renaming a new file over the old one and Kubernetes swaps a symlink, and
//! both replace the inode a file watch would hold. A reload that fails to
//! parse, validate or pass its own tests leaves the previous policy serving;
//! the rejection is logged with its line:column and counted in
//! `clawscale_policy_reloads_total{result="rejected"}`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::config;
use crate::http::metrics::Metrics;
use crate::state::StateHandle;
use crate::state::policy::PolicyStore;

/// Editors write in bursts (truncate, write, rename); wait for quiet.
const SETTLE: Duration = Duration::from_millis(100);

/// The policy source from configuration, and the file's text at boot.
pub fn initial(cfg: &config::Policy) -> anyhow::Result<(PolicyStore, Option<String>)> {
    match cfg.mode {
        config::PolicyMode::Database => Ok((PolicyStore::Database, None)),
        config::PolicyMode::File => {
            let Some(path) = &cfg.path else {
                return Ok((PolicyStore::File, None));
            };
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the policy file {}", path.display()))?;
            Ok((PolicyStore::File, Some(text)))
        }
    }
}

/// Starts watching `path`; reloads go through the state writer.
pub fn watch(path: PathBuf, state: StateHandle, metrics: Arc<Metrics>) -> anyhow::Result<()> {
    let (tx, rx) = mpsc::channel::<()>(1);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let name = path.file_name().map(|n| n.to_os_string());
    let poke = tx.clone();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        let Ok(ev) = ev else { return };
        if ev.paths.iter().any(|p| p.file_name() == name.as_deref()) {
            // A full channel already holds a pending reload.
            let _ = poke.try_send(());
        }
    })
    .context("creating a file watcher")?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .with_context(|| format!("watching {}", dir.display()))?;

    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the policy file");
            let _ = tx.send(()).await;
        }
    });
    let last = state.world().policy.text.clone();
    tokio::spawn(reload_loop(path, state, metrics, rx, watcher, last));
    Ok(())
}

async fn reload_loop(
    path: PathBuf,
    state: StateHandle,
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<()>,
    // Held so the watch lives as long as the loop.
    _watcher: notify::RecommendedWatcher,
    mut last: Option<Arc<str>>,
) {
    while rx.recv().await.is_some() {
        tokio::time::sleep(SETTLE).await;
        while rx.try_recv().is_ok() {}
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(t) => t,
            Err(e) => {
                // Mid-rename the file can be briefly absent; the rename's own
                // event triggers another attempt.
                tracing::warn!(path = %path.display(), error = %e, "cannot read the policy file");
                continue;
            }
        };
        if last.as_deref() == Some(text.as_str()) {
            continue;
        }
        match state.reload_policy_file(text.clone()).await {
            Ok(()) => {
                tracing::info!(path = %path.display(), "policy reloaded");
                metrics.policy_reload(true);
                last = Some(text.into());
            }
            Err(e) => {
                tracing::error!(
                    path = %path.display(),
                    error = %e,
                    "policy file rejected; the previous policy stays in force"
                );
                metrics.policy_reload(false);
                // Remember the rejected text so an unchanged broken file is
                // not re-reported on every unrelated event.
                last = Some(text.into());
            }
        }
    }
}
