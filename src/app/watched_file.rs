//! A configuration file the server follows while running: its new text is
//! delivered when it changes on disk or when the process gets SIGHUP.
//!
//! The watch is on the file's directory, not the file: editors save by
//! renaming a new file over the old one and Kubernetes swaps a symlink, and
//! both replace the inode a file watch would hold. Bursts of events (an
//! editor's truncate, write, rename) are settled into one reading, and text
//! identical to the last delivery is not delivered again, so an unchanged
//! file (good or broken) is not re-applied or re-reported on every
//! unrelated event in the directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Editors write in bursts; wait this long for quiet before reading.
const SETTLE: Duration = Duration::from_millis(100);

pub struct WatchedFile {
    path: PathBuf,
    pokes: mpsc::Receiver<()>,
    last: Option<String>,
    // Held so the watch lives as long as this value.
    _watcher: notify::RecommendedWatcher,
}

impl WatchedFile {
    /// Starts following `path`; `what` names the file in logs. `current`
    /// is the text already in force (not delivered again if unchanged).
    pub fn start(
        path: PathBuf,
        what: &'static str,
        current: Option<String>,
    ) -> anyhow::Result<Self> {
        let (tx, pokes) = mpsc::channel::<()>(1);
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
                // A full channel already holds a pending reading.
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
                tracing::info!("SIGHUP: reloading the {what}");
                if tx.send(()).await.is_err() {
                    break;
                }
            }
        });
        Ok(WatchedFile {
            path,
            pokes,
            last: current,
            _watcher: watcher,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the file's next new text.
    pub async fn next_text(&mut self) -> Option<String> {
        loop {
            self.pokes.recv().await?;
            tokio::time::sleep(SETTLE).await;
            while self.pokes.try_recv().is_ok() {}
            let text = match tokio::fs::read_to_string(&self.path).await {
                Ok(t) => t,
                Err(e) => {
                    // Mid-rename the file can be briefly absent; the rename's
                    // own event triggers another reading.
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot read the file");
                    continue;
                }
            };
            if self.last.as_deref() == Some(text.as_str()) {
                continue;
            }
            self.last = Some(text.clone());
            return Some(text);
        }
    }
}
