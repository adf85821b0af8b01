//! What replicas share besides the tables the World is built from: which
//! replica holds each node's map stream (presence), and each live
//! replica's relay as its own region in the DERP map.
//!
//! A node is online when this replica has a stream for it, or when the
//! `presence` table names another replica that is alive (heartbeat within
//! [`ReplicaOptions::timeout`]). A stream that opens claims the node for its
//! replica; one that closes drops only its own replica's claim, so a node
//! that moved stays online where it went. When a replica dies, its claims
//! stop counting once its heartbeat is older than the timeout, and its
//! relay leaves the map.
//!
//! [`ReplicaOptions::timeout`]: super::ReplicaOptions

use std::collections::BTreeSet;
use std::sync::Arc;

use super::change::{Change, PatchMask};
use super::writer::Core;
use super::{DerpMaps, World};
use crate::db::replicas::LiveReplica;
use crate::tailcfg::{DerpMap, DerpRegion};
use crate::types::NodeId;

impl Core {
    /// Records this replica's claim on node `id` (`local`: it has a stream
    /// here) and returns whether the node is online anywhere.
    pub(super) async fn share_presence(&mut self, id: NodeId, local: bool) -> bool {
        let Some(r) = self.replication.as_ref() else {
            return local;
        };
        let (name, timeout) = (r.name.clone(), self.opts.replica.timeout);
        if let Err(e) = self.db.set_stream_holder(id, &name, local).await {
            tracing::warn!(node = %id, error = %e, "cannot share the node's presence");
        }
        if local {
            return true;
        }
        match self
            .db
            .streaming_elsewhere(Some(&[id]), &name, timeout)
            .await
        {
            Ok(elsewhere) => elsewhere.contains(&id),
            Err(e) => {
                tracing::warn!(node = %id, error = %e, "cannot read the node's presence");
                false
            }
        }
    }

    /// Brings `w.online` in step with the shared presence of `ids` (every
    /// node for `None`).
    pub(super) async fn apply_presence(
        &mut self,
        w: &mut World,
        ids: Option<&[NodeId]>,
        change: &mut Change,
    ) -> super::Result<()> {
        let Some(r) = self.replication.as_ref() else {
            return Ok(());
        };
        let (name, timeout) = (r.name.clone(), self.opts.replica.timeout);
        let elsewhere = self.db.streaming_elsewhere(ids, &name, timeout).await?;
        let ids: Vec<NodeId> = match ids {
            Some(ids) => ids.to_vec(),
            None => w.nodes.keys().copied().collect(),
        };
        for id in ids {
            if w.node(id).is_none() {
                continue;
            }
            let online = self.sessions.count(id) > 0 || elsewhere.contains(&id);
            if online == w.online.contains(&id) {
                continue;
            }
            if online {
                w.online.insert(id);
            } else {
                w.online.remove(&id);
            }
            let mask = PatchMask {
                online: true,
                ..Default::default()
            };
            change.merge(Change::patch(id, mask));
        }
        Ok(())
    }

    /// Puts the live replicas' relays in the DERP map (and takes the dead
    /// ones' out).
    pub(super) fn apply_membership(
        &mut self,
        w: &mut World,
        live: &[LiveReplica],
        change: &mut Change,
    ) {
        let Some(r) = self.replication.as_mut() else {
            return;
        };
        r.regions = live
            .iter()
            .filter(|l| l.name != r.name)
            .filter_map(|l| {
                let json = l.derp_region.as_deref()?;
                serde_json::from_str::<DerpRegion>(json)
                    .inspect_err(|e| {
                        tracing::warn!(replica = %l.name, error = %e, "bad relay region");
                    })
                    .ok()
            })
            .collect();
        let base = self.without_replica_regions(w.settings.derp_map.map().clone());
        let map = self.with_replica_regions(base);
        if map != *w.settings.derp_map.map() {
            let mut settings = (*w.settings).clone();
            settings.derp_map = DerpMaps::new(map);
            w.settings = Arc::new(settings);
            change.merge(Change::settings());
        }
    }

    /// `map` (as configured) plus the other live replicas' relays; a region
    /// id the configuration already uses is left as configured.
    pub(super) fn with_replica_regions(&mut self, mut map: DerpMap) -> DerpMap {
        let Some(r) = self.replication.as_mut() else {
            return map;
        };
        let mut added = BTreeSet::new();
        for region in &r.regions {
            let key = region.region_id.to_string();
            if let std::collections::btree_map::Entry::Vacant(slot) = map.regions.entry(key) {
                added.insert(slot.key().clone());
                slot.insert(region.clone());
            }
        }
        r.added_regions = added;
        map
    }

    /// `map` without the regions [`Core::with_replica_regions`] added.
    fn without_replica_regions(&self, mut map: DerpMap) -> DerpMap {
        if let Some(r) = self.replication.as_ref() {
            for key in &r.added_regions {
                map.regions.remove(key);
            }
        }
        map
    }
}
