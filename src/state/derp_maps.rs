//! The DERP map in force, in one variant per client capability class.
//!
//! Two things changed at capability version 115 (tailscale 1.82):
//! - a `CertName: "sha256-raw:<hex>"` pin is verified by hash; older
//!   clients take it for a host name and the TLS handshake fails, so they
//!   cannot relay at all. They get the map without such pins and verify the
//!   node's `HostName` against their trust store (which works once the
//!   operator gives the relay a certificate they trust, see README);
//! - `DERPRegion.NoMeasureNoHome` exists; older clients ignore it and may
//!   make such a region their home, so they get it as `Avoid` ("only used
//!   if a peer is there"), which they honour.
//!
//! Both variants are built once per map change, never per frame; a map
//! needing no change shares one `Arc`.

use std::sync::Arc;

use crate::tailcfg::{CAPVER_DERP_CERT_PIN, CERT_PIN_PREFIX, DerpMap};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DerpMaps {
    /// As configured: what current clients get.
    current: Arc<DerpMap>,
    /// For viewers below capver 115.
    legacy: Arc<DerpMap>,
}

impl DerpMaps {
    pub fn new(map: DerpMap) -> DerpMaps {
        let current = Arc::new(map);
        let mut legacy = (*current).clone();
        for region in legacy.regions.values_mut() {
            region.avoid |= region.no_measure_no_home;
            for node in &mut region.nodes {
                if node.cert_name.starts_with(CERT_PIN_PREFIX) {
                    node.cert_name.clear();
                }
            }
        }
        let legacy = if legacy == *current {
            current.clone()
        } else {
            Arc::new(legacy)
        };
        DerpMaps { current, legacy }
    }

    /// The map as configured.
    pub fn map(&self) -> &DerpMap {
        &self.current
    }

    /// The variant a client of capability version `capver` can use.
    pub fn for_capver(&self, capver: i32) -> &Arc<DerpMap> {
        if capver >= CAPVER_DERP_CERT_PIN {
            &self.current
        } else {
            &self.legacy
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tailcfg::{DerpNode, DerpRegion};

    fn map(cert_name: &str) -> DerpMap {
        let node = DerpNode {
            name: "999a".into(),
            region_id: 999,
            host_name: "derp.example".into(),
            cert_name: cert_name.into(),
            ..Default::default()
        };
        let mut m = DerpMap::default();
        m.regions.insert(
            "999".into(),
            DerpRegion {
                region_id: 999,
                nodes: vec![node],
                ..Default::default()
            },
        );
        m
    }

    #[test]
    fn clients_before_capver_115_get_no_pin() {
        let maps = DerpMaps::new(map("sha256-raw:abcd"));
        assert_eq!(
            maps.for_capver(133).regions["999"].nodes[0].cert_name,
            "sha256-raw:abcd"
        );
        assert_eq!(
            maps.for_capver(115).regions["999"].nodes[0].cert_name,
            "sha256-raw:abcd"
        );
        let old = maps.for_capver(109);
        assert_eq!(old.regions["999"].nodes[0].cert_name, "");
        assert_eq!(old.regions["999"].nodes[0].host_name, "derp.example");
        assert_eq!(**maps.for_capver(114), **old);
    }

    #[test]
    fn clients_before_capver_115_are_told_to_avoid_no_home_regions() {
        let mut m = map("derp.example");
        m.regions.get_mut("999").unwrap().no_measure_no_home = true;
        let maps = DerpMaps::new(m);
        let old = &maps.for_capver(109).regions["999"];
        assert!(old.avoid && old.no_measure_no_home);
        let new = &maps.for_capver(115).regions["999"];
        assert!(!new.avoid && new.no_measure_no_home);
    }

    #[test]
    fn a_map_without_pins_is_shared() {
        let maps = DerpMaps::new(map("derp.example"));
        assert!(Arc::ptr_eq(maps.for_capver(109), maps.for_capver(133)));
        assert_eq!(
            maps.for_capver(109).regions["999"].nodes[0].cert_name,
            "derp.example"
        );
    }
}
