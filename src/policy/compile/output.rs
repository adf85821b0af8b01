//! Per-node outputs, computed on first use and then shared: the packet
//! filter (`filter`), peers (`peers`), SSH policy (`ssh`) and CapMap
//! (`node_attrs`) of one node.

use std::sync::Arc;
use std::time::Duration;

use super::inner::Inner;
use super::ssh::SshIndex;
use super::types::NodeOutput;
use crate::policy::resolve::alias::node_ips;
use crate::tailcfg::SshPolicy;

impl Inner {
    /// The output of node `i`, computed on first use.
    pub(crate) fn output(&self, i: usize) -> Arc<NodeOutput> {
        self.output_ref(i).clone()
    }

    pub(crate) fn output_ref(&self, i: usize) -> &Arc<NodeOutput> {
        self.outputs[i].get_or_init(|| Arc::new(self.node_output(i)))
    }

    pub(crate) fn node_output(&self, d: usize) -> NodeOutput {
        NodeOutput {
            packet_filter: self.render_filter(d),
            peers: self.peers_of(d),
            ssh_policy: self.ssh_policy(d),
            cap_map: self.cap_map(d),
        }
    }

    /// Built on first use, once per compiled policy: the rules' sources do
    /// not depend on the destination.
    fn ssh_index(&self) -> &SshIndex {
        self.ssh
            .get_or_init(|| SshIndex::build(&self.doc, &self.topo))
    }

    pub(crate) fn ssh_policy(&self, d: usize) -> Option<SshPolicy> {
        if self.doc.ssh.is_empty() {
            return Some(SshPolicy::default());
        }
        Some(self.ssh_index().policy(&self.topo, d))
    }

    /// See [`SshIndex::check_period`]; `src` is the source node's index.
    pub(crate) fn ssh_check_period(&self, src: usize, d: usize, local: &str) -> Option<Duration> {
        if self.doc.ssh.is_empty() {
            return None;
        }
        let ips = node_ips(&self.topo.nodes[src]);
        self.ssh_index().check_period(&self.topo, d, &ips, local)
    }
}
