//! With replicas, the trail is also kept in the database (`state::audit_log`):
//! each batch of lines is stored there once it is in the file, before the
//! operations it records are acknowledged, and queries are answered from
//! the database and this replica's file together, so every replica sees
//! every replica's lines and its own that never reached the database.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Entry, Error, Query};
use crate::state::StateHandle;
use crate::state::audit_log::{AuditFilter, AuditRow};

/// How often a replica trims the shared trail to its budget.
pub(super) const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The shared trail as one replica's writer uses it.
pub(super) struct Shared {
    pub state: StateHandle,
    prune_every: Duration,
    last_prune: Option<Instant>,
    pruning: Arc<AtomicBool>,
}

impl Shared {
    pub fn new(state: StateHandle, prune_every: Duration) -> Shared {
        Shared {
            state,
            prune_every,
            last_prune: None,
            pruning: Arc::default(),
        }
    }

    /// Stores `entries`, then, at most once per `prune_every`, trims the
    /// trail to the newest `budget` bytes in the background: the files
    /// are bounded by rotation, the table by this. Any replica may trim;
    /// the deletion is the same whoever runs it.
    pub async fn store(&mut self, entries: &[Entry], budget: u64) {
        store(&self.state, entries).await;
        if self
            .last_prune
            .is_some_and(|t| t.elapsed() < self.prune_every)
            || self.pruning.swap(true, Ordering::AcqRel)
        {
            return;
        }
        self.last_prune = Some(Instant::now());
        let (state, pruning) = (self.state.clone(), self.pruning.clone());
        tokio::spawn(async move {
            match state.prune_shared_audit(budget).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(lines = n, budget, "oldest shared audit lines deleted"),
                Err(e) => tracing::warn!(error = %e, "the shared audit trail was not trimmed"),
            }
            pruning.store(false, Ordering::Release);
        });
    }
}

/// Stores `entries` in the shared trail; a failure is logged (the lines
/// are in this replica's file either way).
async fn store(state: &StateHandle, entries: &[Entry]) {
    let rows: Vec<AuditRow> = entries
        .iter()
        .filter_map(|e| {
            Some(AuditRow {
                time: e.time,
                actor: e.actor.clone(),
                object: e.object.clone(),
                entry: serde_json::to_string(e).ok()?,
            })
        })
        .collect();
    if let Err(e) = state.share_audit(&rows).await {
        tracing::error!(error = %e, lines = rows.len(),
            "audit lines not stored in the database (they are in this replica's file)");
    }
}

/// The shared trail's entries matching `q`, oldest first; `None` without
/// replicas.
pub(super) async fn query(state: &StateHandle, q: &Query) -> Option<Result<Vec<Entry>, Error>> {
    let filter = AuditFilter {
        since: q.since,
        actor: q.actor.clone(),
        object: q.object.clone(),
        limit: i64::try_from(q.limit()).unwrap_or(i64::MAX),
    };
    let lines = match state.shared_audit(&filter).await {
        Ok(lines) => lines?,
        Err(e) => return Some(Err(Error::Database(e.to_string()))),
    };
    // A line another version wrote in a shape this one cannot read is
    // skipped, as in the file.
    let entries = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Entry>(l).ok())
        .collect();
    Some(Ok(entries))
}

/// This replica's matching entries (`mine`, from its file) and the shared
/// trail's (`others`, its own among them) as one list: each entry once,
/// ordered by time (file order, then database order, among equal times),
/// the newest `limit`.
pub(super) fn merge(mine: Vec<Entry>, others: Vec<Entry>, limit: usize) -> Vec<Entry> {
    let key = |e: &Entry| serde_json::to_string(e).unwrap_or_default();
    let known: HashSet<String> = mine.iter().map(key).collect();
    let mut all = mine;
    all.extend(others.into_iter().filter(|e| !known.contains(&key(e))));
    all.sort_by_key(|e| e.time);
    let extra = all.len().saturating_sub(limit);
    all.drain(..extra);
    all
}
