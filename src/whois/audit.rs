//! The authorize audit log: one JSON object per line, appended to a file.
//! Requests never wait for the disk: records go through a bounded channel
//! to a writer task, and when it is full the record is dropped and counted
//! (`clawscale_whois_audit_dropped_total`).
//!
//! Line format: `{"time","src","node","user","tags","tool","server",
//! "decision":"allow"|"deny","rule","reason","policy_revision"}` (absent
//! values are `null`). `policy_revision` names the policy that decided
//! (`state::policy::revision`, as in the admin audit trail); the writer
//! task computes it, once per policy text, so requests only hand over the
//! text they were decided with.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::Error;
use crate::http::metrics::Metrics;

/// Records waiting for the writer before new ones are dropped.
const QUEUE: usize = 8192;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Record {
    pub time: DateTime<Utc>,
    pub src: Option<IpAddr>,
    pub node: Option<String>,
    pub user: Option<String>,
    pub tags: Vec<String>,
    pub tool: Option<String>,
    pub server: Option<String>,
    pub decision: &'static str,
    pub rule: Option<String>,
    pub reason: String,
    /// Filled in by the writer from `policy_text`.
    pub policy_revision: Option<String>,
    /// The text of the policy that decided (shared, not copied).
    #[serde(skip)]
    pub policy_text: Option<std::sync::Arc<str>>,
}

/// Handle to the writer task.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Record>,
    metrics: Arc<Metrics>,
}

impl AuditLog {
    /// Opens `path` for appending (mode 0600 when created) and starts the
    /// writer task.
    pub async fn open(path: &Path, metrics: Arc<Metrics>) -> Result<AuditLog, Error> {
        let io = |source| Error::Audit {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .await
            .map_err(io)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_loop(file, rx, path.display().to_string()));
        Ok(AuditLog { tx, metrics })
    }

    /// Queues a record; never waits.
    pub fn record(&self, r: Record) {
        if self.tx.try_send(r).is_err() {
            self.metrics.whois_audit_dropped.inc();
        }
    }
}

async fn write_loop(file: tokio::fs::File, mut rx: mpsc::Receiver<Record>, name: String) {
    let mut out = tokio::io::BufWriter::new(file);
    let mut line = Vec::with_capacity(512);
    // The last policy seen and its revision: policies change rarely.
    let mut memo: Option<(std::sync::Arc<str>, String)> = None;
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        // Drain what is queued, then flush once.
        while let Some(mut r) = next {
            if let Some(text) = r.policy_text.take() {
                let rev = match &memo {
                    Some((t, rev)) if std::sync::Arc::ptr_eq(t, &text) || **t == *text => {
                        rev.clone()
                    }
                    _ => {
                        let rev = crate::state::policy::revision(&text);
                        memo = Some((text, rev.clone()));
                        rev
                    }
                };
                r.policy_revision = Some(rev);
            }
            line.clear();
            if serde_json::to_writer(&mut line, &r).is_ok() {
                line.push(b'\n');
                if let Err(e) = out.write_all(&line).await {
                    tracing::warn!(file = %name, error = %e, "whois audit log write failed");
                }
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = out.flush().await {
            tracing::warn!(file = %name, error = %e, "whois audit log flush failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u32) -> Record {
        Record {
            time: Utc::now(),
            src: Some("100.64.0.1".parse().unwrap()),
            node: Some(format!("n{i}")),
            user: Some("alice@example.com".into()),
            tags: vec![],
            tool: Some("search".into()),
            server: None,
            decision: "allow",
            rule: Some("clawql.dev/cap/mcp[0]".into()),
            reason: "allowed".into(),
            policy_revision: None,
            policy_text: (i == 2).then(|| std::sync::Arc::from("{\"acls\":[]}")),
        }
    }

    #[tokio::test]
    async fn appends_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/audit.jsonl");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "{\"old\":1}\n").unwrap();
        let log = AuditLog::open(&path, Metrics::new()).await.unwrap();
        for i in 0..3 {
            log.record(rec(i));
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&path).unwrap();
            if text.lines().count() == 4 {
                let lines: Vec<serde_json::Value> = text
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect();
                assert_eq!(lines[0]["old"], 1, "existing content kept");
                assert_eq!(lines[3]["node"], "n2");
                // The policy that decided, by revision.
                assert_eq!(
                    lines[3]["policy_revision"],
                    crate::state::policy::revision("{\"acls\":[]}")
                );
                assert!(lines[1]["policy_revision"].is_null());
                assert!(lines[3].get("policy_text").is_none());
                assert_eq!(lines[1]["decision"], "allow");
                assert_eq!(lines[1]["src"], "100.64.0.1");
                assert!(lines[1]["time"].as_str().is_some());
                break;
            }
            assert!(std::time::Instant::now() < deadline, "lines: {text}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn full_queue_drops_and_counts() {
        // A writer that never runs (current-thread runtime, no yield) lets
        // the queue fill up.
        let dir = tempfile::tempdir().unwrap();
        let metrics = Metrics::new();
        let log = AuditLog::open(&dir.path().join("a.jsonl"), metrics.clone())
            .await
            .unwrap();
        for i in 0..(QUEUE as u32 + 5) {
            log.record(rec(i));
        }
        assert!(metrics.whois_audit_dropped.get() >= 5);
    }
}
