//! Transitions of the reloadable settings every map carries: the operator's
//! DNS extra records (`dns.extra_records_path`) and the DERP map
//! (`derp.urls`/`derp.paths` refreshes).
//!
//! Settings are not stored in the database: they come from configuration,
//! so a change is published straight into the next World and reaches every
//! session as a `Change::settings()` delta (the mapper re-sends DNSConfig
//! only where it differs from what the client holds).

use std::sync::Arc;

use super::change::Change;
use super::{DerpMaps, Result, Settings, StateHandle};
use crate::tailcfg::{DerpMap, DnsRecord};

impl StateHandle {
    /// Replaces the DNS extra records (every type; maps get the A/AAAA ones,
    /// the authoritative DNS server all). Returns whether anything changed;
    /// an identical list publishes nothing.
    pub async fn set_dns_extra_records(&self, records: Vec<DnsRecord>) -> Result<bool> {
        self.run(move |core| {
            Box::pin(async move {
                if core.world.settings.dns.extra_records == records {
                    return Ok(false);
                }
                let mut settings: Settings = (*core.world.settings).clone();
                settings.dns.extra_records = records;
                let mut w = core.draft();
                w.settings = Arc::new(settings);
                core.publish(w, Change::settings());
                Ok(true)
            })
        })
        .await
    }

    /// Replaces the DERP map. Returns whether anything changed; an
    /// identical map publishes nothing, so a periodic refresh that finds
    /// the same regions costs the sessions nothing.
    pub async fn set_derp_map(&self, map: DerpMap) -> Result<bool> {
        self.run(move |core| {
            Box::pin(async move {
                let map = core.with_replica_regions(map);
                if *core.world.settings.derp_map.map() == map {
                    return Ok(false);
                }
                let mut settings: Settings = (*core.world.settings).clone();
                settings.derp_map = DerpMaps::new(map);
                let mut w = core.draft();
                w.settings = Arc::new(settings);
                core.publish(w, Change::settings());
                Ok(true)
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testing;

    fn rec(name: &str, kind: &str, value: &str) -> DnsRecord {
        DnsRecord {
            name: name.into(),
            r#type: kind.into(),
            value: value.into(),
        }
    }

    #[tokio::test]
    async fn extra_records_replace_settings_and_notify_sessions() {
        let (_dir, state) = testing::temp_state(std::time::Duration::from_secs(3600)).await;
        let session = state.sessions().open(crate::types::NodeId(1));
        let before = state.world().generation;
        let records = vec![
            rec("grafana.clawql.local", "A", "100.64.0.9"),
            rec("info.clawql.local", "TXT", "hello"),
        ];
        assert!(state.set_dns_extra_records(records.clone()).await.unwrap());
        let w = state.world();
        assert_eq!(w.settings.dns.extra_records, records);
        assert!(w.generation > before);
        assert!(session.take().settings, "sessions are told");
        // The map gets the A record only.
        assert_eq!(
            w.dns_config().extra_records,
            vec![rec("grafana.clawql.local", "A", "100.64.0.9")]
        );
        // Same list again: nothing published.
        assert!(!state.set_dns_extra_records(records).await.unwrap());
        assert_eq!(state.world().generation, w.generation);
        assert!(session.take().is_empty());
    }

    #[tokio::test]
    async fn derp_map_replaces_settings_and_notifies_sessions() {
        let (_dir, state) = testing::temp_state(std::time::Duration::from_secs(3600)).await;
        let session = state.sessions().open(crate::types::NodeId(1));
        let mut map = DerpMap::default();
        map.regions.insert(
            "900".into(),
            crate::tailcfg::DerpRegion {
                region_id: 900,
                ..Default::default()
            },
        );
        assert!(state.set_derp_map(map.clone()).await.unwrap());
        let w = state.world();
        assert_eq!(*w.settings.derp_map.map(), map);
        assert!(session.take().settings, "sessions are told");
        assert!(!state.set_derp_map(map).await.unwrap());
        assert_eq!(state.world().generation, w.generation);
        assert!(session.take().is_empty());
    }
}
