//! With replicas, the trail is also kept in the database (`state::audit_log`):
//! each batch of lines is stored there once it is in the file, before the
//! operations it records are acknowledged, and queries are answered from
//! the database and this replica's file together, so every replica sees
//! every replica's lines and its own that never reached the database.

use std::collections::HashSet;

use super::{Entry, Error, Query};
use crate::state::StateHandle;
use crate::state::audit_log::{AuditFilter, AuditRow};

/// Stores `entries` in the shared trail; a failure is logged (the lines
/// are in this replica's file either way).
pub(super) async fn store(state: &StateHandle, entries: &[Entry]) {
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
