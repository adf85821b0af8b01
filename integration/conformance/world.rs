//! The case topology as a clawscale `World` (users, nodes with their
//! addresses and tags, the compiled policy in force), so whois answers go
//! through the same pure function the whois endpoint serves
//! (`clawscale::whois::answer::whois`).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use clawscale::policy::{Compiled, Policy};
use clawscale::state::policy::PolicyState;
use clawscale::state::{Settings, World};
use clawscale::types::{DnsLabel, MachinePublic, Node, NodeId, NodePublic, User, UserId};

use crate::case::Case;

pub fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// `ids` as from `Case::topology` (node ids in name order).
pub fn build(c: &Case, ids: &BTreeMap<String, u64>, policy: Policy, compiled: Compiled) -> World {
    let users: Vec<User> = c
        .topology
        .users
        .iter()
        .map(|u| User {
            id: UserId(u.id as i64),
            name: u.name.clone(),
            display_name: u.name.clone(),
            email: u.email.clone(),
            created_at: epoch(),
            oidc: None,
            profile_pic_url: String::new(),
            groups: vec![],
        })
        .collect();
    let nodes: Vec<Node> = c
        .topology
        .nodes
        .iter()
        .filter_map(|(name, n)| {
            let id = *ids.get(name)?;
            let user = n
                .user
                .as_ref()
                .and_then(|un| c.topology.users.iter().find(|u| &u.name == un))
                .map(|u| u.id as i64)
                .unwrap_or(0);
            let mut tags = n.tags.clone();
            tags.sort();
            tags.dedup();
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&id.to_be_bytes());
            Some(Node {
                id: NodeId(id as i64),
                machine_key: MachinePublic(key),
                node_key: NodePublic(key),
                disco_key: Default::default(),
                hostname: n.hostname.clone(),
                given_name: DnsLabel::parse(name).unwrap_or_else(|_| DnsLabel::from_hostname(name)),
                user_id: UserId(user),
                tags,
                ipv4: n.ipv4.as_ref().and_then(|s| s.parse().ok()),
                ipv6: n.ipv6.as_ref().and_then(|s| s.parse().ok()),
                approved_routes: n
                    .approved_routes
                    .iter()
                    .filter_map(|s| s.parse().ok())
                    .collect(),
                endpoints: vec![],
                home_derp: 0,
                hostinfo:
                    serde_json::json!({"Hostname": n.hostname, "RoutableIPs": n.routable_ips})
                        .into(),
                expiry: None,
                authorized: true,
                ephemeral: false,
                auth_key_id: None,
                cap_version: 0,
                created_at: epoch(),
                last_seen: None,
            })
        })
        .collect();
    let settings = Settings {
        base_domain: "example.ts.net".into(),
        derp_map: Default::default(),
        dns: Default::default(),
        domain: "example.ts.net".into(),
        certs: Default::default(),
        login_url: String::new(),
    };
    let mut w = World::new(settings, users, nodes);
    w.policy = Arc::new(PolicyState {
        text: None,
        policy: Some(policy),
        compiled: Some(compiled),
        updated_at: None,
    });
    w
}
