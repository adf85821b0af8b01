//! SSH rules for a destination node (`tailcfg.SSHPolicy`): principals are
//! the source nodes' addresses, `users` map to `sshUsers` (root denied with
//! `""` unless listed, `autogroup:nonroot` as `"*": "="`, `localpart:*@dom`
//! as one rule per matching source user), `check` as hold-and-delegate.

use std::collections::BTreeMap;

use super::alias::{Alias, node_ips};
use super::compile::Inner;
use super::model::SshRule;
use crate::tailcfg::{SshAction, SshPolicy, SshPrincipal, SshRule as WireRule};

/// URL template a `check` rule delegates to; `$SERVER` is filled by the server.
pub const CHECK_URL: &str =
    "https://unused/machine/ssh/action/$SRC_NODE_ID/to/$DST_NODE_ID?local_user=$LOCAL_USER";

impl Inner {
    fn ssh_dst_matches(&self, rule: &SshRule, d: usize) -> bool {
        let r = self.resolver();
        rule.dst.iter().any(|a| match a {
            Alias::SelfDevices => {
                self.topo.nodes[d].tags.is_empty() && self.topo.nodes[d].user.is_some()
            }
            _ => r.node_matches(a, d),
        })
    }

    /// Source nodes of an ssh rule as seen by destination `d`.
    fn ssh_src_nodes(&self, rule: &SshRule, d: usize) -> Vec<usize> {
        let r = self.resolver();
        let dn = &self.topo.nodes[d];
        let only_self = rule.dst.iter().all(|a| *a == Alias::SelfDevices);
        (0..self.topo.nodes.len())
            .filter(|&i| rule.src.iter().any(|a| r.node_matches(a, i)))
            .filter(|&i| {
                if !only_self {
                    return true;
                }
                let n = &self.topo.nodes[i];
                n.tags.is_empty() && n.user.is_some() && n.user == dn.user
            })
            .collect()
    }

    pub(crate) fn ssh_policy(&self, d: usize) -> Option<SshPolicy> {
        let mut rules = Vec::new();
        for rule in &self.doc.ssh {
            if !self.ssh_dst_matches(rule, d) {
                continue;
            }
            let srcs = self.ssh_src_nodes(rule, d);
            if srcs.is_empty() {
                continue;
            }
            let principals = |nodes: &[usize]| {
                let mut ips: Vec<String> = nodes
                    .iter()
                    .flat_map(|&i| node_ips(&self.topo.nodes[i]))
                    .map(|a| a.to_string())
                    .collect();
                ips.sort();
                ips.dedup();
                ips.into_iter()
                    .map(|ip| SshPrincipal {
                        node_ip: ip,
                        ..Default::default()
                    })
                    .collect::<Vec<_>>()
            };
            let action = if rule.check {
                SshAction {
                    hold_and_delegate: CHECK_URL.into(),
                    ..Default::default()
                }
            } else {
                SshAction {
                    accept: true,
                    allow_agent_forwarding: true,
                    allow_local_port_forwarding: true,
                    allow_remote_port_forwarding: true,
                    ..Default::default()
                }
            };
            let mut users = BTreeMap::new();
            let mut localparts = Vec::new();
            for u in &rule.users {
                if u == "autogroup:nonroot" {
                    users.insert("*".to_string(), "=".to_string());
                } else if let Some(dom) = u.strip_prefix("localpart:*@") {
                    localparts.push(dom.to_string());
                } else {
                    users.insert(u.clone(), u.clone());
                }
            }
            if !users.is_empty() {
                users.entry("root".to_string()).or_insert_with(String::new);
                rules.push(WireRule {
                    rule_expires: None,
                    principals: principals(&srcs),
                    ssh_users: users,
                    action: action.clone(),
                    accept_env: rule.accept_env.clone(),
                });
            }
            // One rule per source user whose login is in the domain.
            for dom in &localparts {
                let mut by_user: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
                for &i in &srcs {
                    if let Some(u) = self.topo.nodes[i].user
                        && self.topo.nodes[i].tags.is_empty()
                    {
                        by_user.entry(u).or_default().push(i);
                    }
                }
                for (uid, nodes) in by_user {
                    let Some(user) = self.topo.users.iter().find(|u| u.id == uid) else {
                        continue;
                    };
                    let Some((local, d2)) = user.login.rsplit_once('@') else {
                        continue;
                    };
                    if d2 != dom {
                        continue;
                    }
                    rules.push(WireRule {
                        rule_expires: None,
                        principals: principals(&nodes),
                        ssh_users: BTreeMap::from([(local.to_string(), local.to_string())]),
                        action: action.clone(),
                        accept_env: rule.accept_env.clone(),
                    });
                }
            }
        }
        Some(SshPolicy { rules })
    }
}
