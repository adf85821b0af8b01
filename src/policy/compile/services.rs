//! The hosts of each `svc:NAME` (our services extension) resolved to
//! addresses, for DNS `NAME.<base_domain>`.

use std::net::IpAddr;

use crate::policy::model::{Alias, Doc, Topology};
use crate::policy::resolve::alias::{Resolver, node_ips};

/// Each service with the addresses of the nodes hosting it.
pub fn addrs(doc: &Doc, topo: &Topology) -> Vec<(String, Vec<IpAddr>)> {
    let r = Resolver { doc, topo };
    doc.services
        .keys()
        .map(|name| {
            let alias = Alias::Service(name.clone());
            let mut ips: Vec<IpAddr> = (0..topo.nodes.len())
                .filter(|&i| r.node_matches(&alias, i))
                .flat_map(|i| node_ips(&topo.nodes[i]))
                .collect();
            ips.sort();
            (name.clone(), ips)
        })
        .collect()
}
