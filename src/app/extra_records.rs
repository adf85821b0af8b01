//! `dns.extra_records_path`: the JSON file of DNS extra records, read at
//! boot and reloaded when it changes on disk or on SIGHUP.
//!
//! Like the policy file, the watch is on the directory (editors replace the
//! file by renaming; Kubernetes swaps a symlink). A reload that fails to
//! read or parse keeps the records in force and logs why. Accepted records
//! replace the World's settings, so clients get a DNSConfig delta and the
//! authoritative server rebuilds its zone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::config;
use crate::state::StateHandle;
use crate::tailcfg::DnsRecord;

/// Editors write in bursts (truncate, write, rename); wait for quiet.
const SETTLE: Duration = Duration::from_millis(100);

/// The records the map starts with: `dns.extra_records`, or the file's.
pub fn initial(dns: &config::Dns) -> anyhow::Result<Vec<DnsRecord>> {
    let records = match &dns.extra_records_path {
        None => dns.extra_records.clone(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading dns.extra_records_path {}", path.display()))?;
            config::parse_extra_records_json(&text)
                .with_context(|| format!("in dns.extra_records_path {}", path.display()))?
        }
    };
    Ok(to_wire(records))
}

fn to_wire(records: Vec<config::ExtraRecord>) -> Vec<DnsRecord> {
    records
        .into_iter()
        .map(|r| DnsRecord {
            name: r.name,
            r#type: r.r#type,
            value: r.value,
        })
        .collect()
}

/// Starts watching `path`; accepted contents go to the state writer.
pub fn watch(path: PathBuf, state: StateHandle) -> anyhow::Result<()> {
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
            tracing::info!("SIGHUP: reloading the DNS extra records file");
            let _ = tx.send(()).await;
        }
    });
    tokio::spawn(reload_loop(path, state, rx, watcher));
    Ok(())
}

async fn reload_loop(
    path: PathBuf,
    state: StateHandle,
    mut rx: mpsc::Receiver<()>,
    // Held so the watch lives as long as the loop.
    _watcher: notify::RecommendedWatcher,
) {
    let mut last: Option<String> = None;
    while rx.recv().await.is_some() {
        tokio::time::sleep(SETTLE).await;
        while rx.try_recv().is_ok() {}
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(t) => t,
            Err(e) => {
                // Mid-rename the file can be briefly absent; the rename's own
                // event triggers another attempt.
                tracing::warn!(path = %path.display(), error = %e, "cannot read the DNS extra records file");
                continue;
            }
        };
        if last.as_deref() == Some(text.as_str()) {
            continue;
        }
        match config::parse_extra_records_json(&text) {
            Ok(records) => match state.set_dns_extra_records(to_wire(records)).await {
                Ok(changed) => {
                    tracing::info!(path = %path.display(), changed, "DNS extra records reloaded")
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot apply DNS extra records")
                }
            },
            Err(e) => tracing::error!(
                path = %path.display(),
                error = %e,
                "DNS extra records file rejected; the previous records stay in force"
            ),
        }
        // Remember rejected text too, so an unchanged broken file is not
        // re-reported on every unrelated event in the directory.
        last = Some(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_reads_the_file_or_the_inline_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut dns = config::Config::embedded(dir.path()).dns;
        dns.extra_records = vec![config::ExtraRecord {
            name: "a.clawql.local".into(),
            r#type: "A".into(),
            value: "100.64.0.1".into(),
        }];
        assert_eq!(initial(&dns).unwrap()[0].name, "a.clawql.local");
        let path = dir.path().join("records.json");
        std::fs::write(
            &path,
            r#"[{"name": "b.clawql.local", "type": "TXT", "value": "hi"}]"#,
        )
        .unwrap();
        dns.extra_records.clear();
        dns.extra_records_path = Some(path.clone());
        let r = initial(&dns).unwrap();
        assert_eq!(
            (r[0].name.as_str(), r[0].r#type.as_str()),
            ("b.clawql.local", "TXT")
        );
        std::fs::write(&path, "[{").unwrap();
        let err = format!("{:#}", initial(&dns).unwrap_err());
        assert!(err.contains("dns.extra_records_path"), "{err}");
    }
}
