//! The live ACME DNS-01 challenge records: written by `/machine/set-dns`,
//! read by the authoritative DNS server on every `_acme-challenge.` query.
//!
//! Assumptions: writes are rare (one per certificate order), reads are few
//! and must see a write at once: the client tells the CA to validate as soon
//! as set-dns returns, without waiting for propagation (tailscaled 1.96
//! `getCertPEM` calls `ac.Accept` right after `SetDNS`), so the record
//! cannot go through the zone index, which is rebuilt asynchronously. Hence
//! a small map behind a mutex, never held across an await.
//!
//! Records are not persisted: one lives [`Challenges::lifetime`] (a CA
//! validates within seconds to a minute), and after a restart the client
//! simply orders again. Memory is bounded: only names a node may prove
//! (see `certs::authorize`), at most [`MAX_VALUES_PER_NAME`] values each,
//! and expired entries are dropped on every write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

use crate::clock::Clock;

/// Values kept per name: an order for `*.x` and `x` proves both at
/// `_acme-challenge.x`, and a retried order adds one; older ones go first.
pub const MAX_VALUES_PER_NAME: usize = 4;

#[derive(Debug, Clone)]
struct Entry {
    value: String,
    expires: DateTime<Utc>,
}

#[derive(Debug)]
pub struct Challenges {
    clock: Arc<dyn Clock>,
    lifetime: Duration,
    records: Mutex<HashMap<String, Vec<Entry>>>,
}

impl Challenges {
    pub fn new(clock: Arc<dyn Clock>, lifetime: Duration) -> Self {
        Challenges {
            clock,
            lifetime,
            records: Mutex::default(),
        }
    }

    /// How long a published value is answered.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Publishes `value` at `owner` (lower-case, no trailing dot) for
    /// [`Challenges::lifetime`] from now; the same value again only renews it.
    pub fn put(&self, owner: &str, value: &str) {
        let now = self.clock.now();
        let expires = now + self.lifetime;
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        records.retain(|_, entries| {
            entries.retain(|e| e.expires > now);
            !entries.is_empty()
        });
        let entries = records.entry(owner.to_string()).or_default();
        entries.retain(|e| e.value != value);
        entries.push(Entry {
            value: value.to_string(),
            expires,
        });
        if entries.len() > MAX_VALUES_PER_NAME {
            let extra = entries.len() - MAX_VALUES_PER_NAME;
            entries.drain(..extra);
        }
    }

    /// The values live at `owner` (any case, trailing dot optional), oldest
    /// first; empty when none.
    pub fn txt(&self, owner: &str) -> Vec<String> {
        let key = owner.trim_end_matches('.').to_ascii_lowercase();
        let now = self.clock.now();
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        records
            .get(&key)
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e.expires > now)
                    .map(|e| e.value.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Names with at least one live value (for tests and diagnostics).
    pub fn len(&self) -> usize {
        let now = self.clock.now();
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        records
            .values()
            .filter(|entries| entries.iter().any(|e| e.expires > now))
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
