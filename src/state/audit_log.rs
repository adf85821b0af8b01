//! The audit trail shared by replicas: every replica's lines in the
//! database, so any of them answers audit queries with the whole trail and
//! a lost machine takes none of it along. Without replicas the trail is the
//! audit file alone (`admin::audit`) and these calls do nothing.

use super::{Result, StateHandle};
pub use crate::db::audit_log::{AuditFilter, AuditRow};

impl StateHandle {
    /// With replicas, appends `rows` to the shared trail; false without.
    pub async fn share_audit(&self, rows: &[AuditRow]) -> Result<bool> {
        match &self.shared {
            Some(db) => {
                db.append_audit(rows).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// With replicas, deletes the shared trail's oldest lines beyond the
    /// newest `budget` bytes; returns how many went (0 without replicas).
    pub async fn prune_shared_audit(&self, budget: u64) -> Result<u64> {
        match &self.shared {
            Some(db) => Ok(db.prune_audit(budget).await?),
            None => Ok(0),
        }
    }

    /// With replicas, the shared trail's lines matching `f`, oldest first;
    /// `None` without replicas.
    pub async fn shared_audit(&self, f: &AuditFilter) -> Result<Option<Vec<String>>> {
        match &self.shared {
            Some(db) => Ok(Some(db.audit_lines(f).await?)),
            None => Ok(None),
        }
    }
}
