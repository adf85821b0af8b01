//! The policy file as the policy source (`policy.mode: file`): read at boot,
//! then reloaded when it changes on disk or on SIGHUP (`WatchedFile`). A
//! reload that fails to
//! parse, validate or pass its own tests leaves the previous policy serving;
//! the rejection is logged with its line:column and counted in
//! `clawscale_policy_reloads_total{result="rejected"}`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use super::watched_file::WatchedFile;
use crate::admin::Admin;
use crate::config;
use crate::http::metrics::Metrics;
use crate::state::StateHandle;
use crate::state::policy::PolicyStore;

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

/// Starts following `path`; reloads go through the admin operations (which
/// audit them as actor `policy-file`) to the state writer.
pub fn watch(
    path: PathBuf,
    admin: Admin,
    state: StateHandle,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    let current = state.world().policy.text.as_deref().map(str::to_string);
    let mut file = WatchedFile::start(path, "policy file", current)?;
    tokio::spawn(async move {
        while let Some(text) = file.next_text().await {
            let path = file.path().display();
            match admin.reload_policy_file(text).await {
                Ok(_) => {
                    tracing::info!(%path, "policy reloaded");
                    metrics.policy_reload(true);
                }
                Err(e) => {
                    tracing::error!(
                        %path,
                        error = %e,
                        "policy file rejected; the previous policy stays in force"
                    );
                    metrics.policy_reload(false);
                }
            }
        }
    });
    Ok(())
}
