//! The authoritative DNS server (`dns.server.*`) wired to live state: the
//! record index is rebuilt from each new World and swapped in through the
//! server's watch channel, so answers never touch the database.
//!
//! Owns: deriving [`ZoneData`] from a World (node labels are given names,
//! services are the policy's `svc:NAME` hosts, extra records come from the
//! settings; the SOA serial is the World generation), keeping inputs that
//! the index cannot hold together out of it (a name conflict drops the
//! lesser record and logs it instead of failing the whole zone), and the
//! optional policy filter, and handing the server the live ACME challenges
//! (`certs`). Depends on `dns`, `state`, `config`, `certs`, `http::metrics`.
//!
//! Timing: a World change is picked up at once; rebuilds then pause for
//! [`COALESCE`], so a burst of joins costs one rebuild per window and a name
//! is served at most about `COALESCE` + one build after it changed. Worlds
//! that change nothing the zone shows (presence, endpoints) cost a cheap
//! comparison and no rebuild.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ipnet::IpNet;
use tokio::sync::{Semaphore, watch};

use crate::certs::Challenges;
use crate::config;
use crate::dns::{
    self, ExtraRecord, ExtraValue, NodeName, RecordIndex, ServerConfig, ServiceName, Visibility,
    ZoneData,
};
use crate::http::metrics::Metrics;
use crate::state::{Services, StateHandle, StateReader, World};

/// Pause between rebuilds: bounds rebuild work under churn, well under the
/// one-second freshness goal.
const COALESCE: Duration = Duration::from_millis(100);

/// Where the DNS server listens (both from the same bound port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsAddrs {
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
}

/// Starts the server when `dns.server.enabled`; returns its addresses.
/// `challenges`: the live ACME challenges to answer (`dns.certs`).
pub async fn start(
    cfg: &config::Config,
    state: &StateHandle,
    challenges: Option<(Arc<Challenges>, Arc<Metrics>)>,
) -> anyhow::Result<Option<DnsAddrs>> {
    let s = &cfg.dns.server;
    if !s.enabled {
        return Ok(None);
    }
    let reader = state.reader();
    // Subscribe before reading, so a World published in between is seen.
    let mut worlds = reader.subscribe();
    let world = worlds.borrow_and_update().clone();
    let first = build_index(&zone_data(&world, s.ttl))
        .context("building the DNS zone from the current state")?;
    let (tx, rx) = watch::channel(Arc::new(first));
    let tailnet: Vec<IpNet> = cfg
        .prefixes
        .v4
        .map(IpNet::V4)
        .into_iter()
        .chain(cfg.prefixes.v6.map(IpNet::V6))
        .collect();
    let visibility = s
        .policy_filter
        .then(|| policy_filter(reader.clone(), tailnet));
    let server_cfg = ServerConfig {
        listen: s.listen_addr,
        allow: s.allow.clone(),
        rate_limit_qps: s.rate_limit_qps,
        burst: s.rate_limit_burst,
        tcp_timeout: s.tcp_timeout,
    };
    let hooks = dns::Hooks {
        visibility,
        challenges: challenges.map(|(store, metrics)| {
            Arc::new(ChallengeAnswers {
                store,
                metrics,
                shared: state.is_replicated().then(|| state.clone()),
                reads: Semaphore::new(SHARED_READS),
            }) as Arc<dyn dns::ChallengeSource>
        }),
    };
    let handle = dns::serve(server_cfg, rx, hooks, std::future::pending())
        .await
        .with_context(|| format!("starting the DNS server on {}", s.listen_addr))?;
    let addrs = DnsAddrs {
        udp: handle.udp_addr(),
        tcp: handle.tcp_addr(),
    };
    tokio::spawn(async move {
        if let Err(e) = handle.join().await {
            tracing::error!(error = %e, "dns server stopped");
        }
    });
    tokio::spawn(follow(worlds, world, tx, s.ttl));
    Ok(Some(addrs))
}

/// Database reads of shared challenge values in flight at most: a flood of
/// challenge queries (each already rate-limited per source) cannot queue
/// up reads; past it, a query gets this replica's own values.
const SHARED_READS: usize = 8;
/// How long a query waits for the database before answering without it.
const SHARED_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// The DNS server's view of the live ACME challenges, counting answers.
struct ChallengeAnswers {
    store: Arc<Challenges>,
    metrics: Arc<Metrics>,
    /// With replicas: a CA may ask this replica for a value the client
    /// published through another, so the database is read too.
    shared: Option<StateHandle>,
    reads: Semaphore,
}

#[async_trait::async_trait]
impl dns::ChallengeSource for ChallengeAnswers {
    async fn txt(&self, owner: &str) -> Vec<String> {
        let mut values = self.store.txt(owner);
        let Some(state) = &self.shared else {
            return values;
        };
        let Ok(_permit) = self.reads.try_acquire() else {
            return values;
        };
        match tokio::time::timeout(SHARED_READ_TIMEOUT, state.shared_acme_challenge(owner)).await {
            Ok(Ok(shared)) => {
                for v in shared {
                    if !values.contains(&v) {
                        values.push(v);
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!(owner, error = %e, "shared ACME challenges unreadable"),
            Err(_) => tracing::warn!(owner, "shared ACME challenges: database too slow"),
        }
        values
    }

    fn served(&self) {
        self.metrics.acme_challenges_served.inc();
    }
}

/// Rebuilds the index whenever a World changes what the zone shows.
async fn follow(
    mut worlds: watch::Receiver<Arc<World>>,
    built_from: Arc<World>,
    tx: watch::Sender<Arc<RecordIndex>>,
    ttl: u32,
) {
    let mut built = Inputs::of(&built_from);
    while worlds.changed().await.is_ok() {
        let world = worlds.borrow_and_update().clone();
        let next = Inputs::of(&world);
        if next == built {
            continue;
        }
        let zone = zone_data(&world, ttl);
        match tokio::task::spawn_blocking(move || build_index(&zone)).await {
            Ok(Ok(index)) => {
                tx.send_replace(Arc::new(index));
                built = next;
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "dns: cannot rebuild the zone; still serving the old one")
            }
            Err(e) => tracing::error!(error = %e, "dns: zone rebuild task failed"),
        }
        tokio::time::sleep(COALESCE).await;
    }
}

/// What a zone was built from: the World, and its services (kept so a
/// comparison never recomputes an old World's services).
struct Inputs {
    world: Arc<World>,
    services: Services,
}

impl Inputs {
    fn of(world: &Arc<World>) -> Inputs {
        Inputs {
            world: world.clone(),
            services: world.services(),
        }
    }
}

impl PartialEq for Inputs {
    /// Same zone content: names, addresses, services, base domain, extra
    /// records. Presence, endpoints and the rest of a node do not count;
    /// unchanged nodes are shared `Arc`s, so this is mostly pointer checks.
    fn eq(&self, other: &Inputs) -> bool {
        let (a, b) = (&self.world, &other.world);
        let settings_same = Arc::ptr_eq(&a.settings, &b.settings)
            || (a.settings.base_domain == b.settings.base_domain
                && a.settings.dns.extra_records == b.settings.dns.extra_records);
        settings_same
            && (Arc::ptr_eq(&self.services, &other.services) || self.services == other.services)
            && a.nodes.len() == b.nodes.len()
            && a.nodes
                .iter()
                .zip(b.nodes.iter())
                .all(|((ia, na), (ib, nb))| {
                    ia == ib
                        && (Arc::ptr_eq(na, nb)
                            || (na.given_name == nb.given_name
                                && na.ipv4 == nb.ipv4
                                && na.ipv6 == nb.ipv6))
                })
    }
}

/// The zone for `world`. Inputs the index would reject as a whole are left
/// out here, each with a warning: a service named like a node or an extra
/// record (those win, as in the maps), an unparsable extra record, and a CNAME sharing its name with
/// other data (the CNAME goes).
pub(super) fn zone_data(world: &World, ttl: u32) -> ZoneData {
    let base = world
        .settings
        .base_domain
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let nodes: Vec<NodeName> = world
        .nodes
        .values()
        .map(|n| NodeName {
            id: n.id.0 as u64,
            label: n.given_name.as_str().to_string(),
            ipv4: n.ipv4,
            ipv6: n.ipv6,
        })
        .collect();
    let norm = |n: &str| n.trim_end_matches('.').to_ascii_lowercase();
    let record_names: HashSet<String> = world
        .settings
        .dns
        .extra_records
        .iter()
        .map(|r| norm(&r.name))
        .collect();
    let mut labels: HashSet<String> = nodes.iter().map(|n| n.label.clone()).collect();
    let mut services = Vec::new();
    for (name, addrs) in world.services().iter() {
        let label = name.to_ascii_lowercase();
        if !is_label(&label)
            || record_names.contains(&format!("{label}.{base}"))
            || !labels.insert(label.clone())
        {
            tracing::warn!(service = %name, "dns: service name is taken (node or extra record) or not a DNS label; not served");
            continue;
        }
        services.push(ServiceName {
            label,
            addrs: addrs.clone(),
        });
    }
    let owned: HashSet<String> = labels.iter().map(|l| format!("{l}.{base}")).collect();
    let mut extra: Vec<ExtraRecord> = Vec::new();
    for r in &world.settings.dns.extra_records {
        match ExtraRecord::parse(&r.name, &r.r#type, &r.value) {
            Ok(rec) => extra.push(rec),
            Err(e) => tracing::warn!(name = %r.name, error = %e, "dns: extra record not served"),
        }
    }
    let mut data_at: HashMap<String, usize> = HashMap::new();
    for r in &extra {
        *data_at.entry(norm(&r.name)).or_default() += 1;
    }
    let mut cname_seen: HashSet<String> = HashSet::new();
    extra.retain(|r| {
        let ExtraValue::Cname(_) = r.value else {
            return true;
        };
        let name = norm(&r.name);
        let alone = data_at.get(&name) == Some(&1) && !owned.contains(&name) && name != base;
        if !alone || !cname_seen.insert(name) {
            tracing::warn!(name = %r.name, "dns: a CNAME must be the only record at its name; not served");
            return false;
        }
        true
    });
    ZoneData {
        base_domain: base,
        serial: world.generation as u32,
        ttl,
        nodes,
        services,
        extra,
    }
}

/// Builds the index; if the data still cannot form a zone, retries without
/// the operator's extras, then without services, logging what was dropped.
fn build_index(zone: &ZoneData) -> Result<RecordIndex, dns::Error> {
    match RecordIndex::build(zone) {
        Ok(index) => return Ok(index),
        Err(e) => tracing::error!(error = %e, "dns: zone rejected; retrying without extra records"),
    }
    let mut reduced = zone.clone();
    reduced.extra.clear();
    match RecordIndex::build(&reduced) {
        Ok(index) => return Ok(index),
        Err(e) => tracing::error!(error = %e, "dns: zone rejected; retrying without services"),
    }
    reduced.services.clear();
    RecordIndex::build(&reduced)
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// `policy_filter`: a tailnet node learns its own name and those of the
/// peers its compiled policy shows it; an unknown address inside the tailnet
/// prefixes learns no node names; allow-listed sources outside the tailnet
/// (operators' machines) see every name. Without a policy everyone sees
/// everyone, as in the maps.
fn policy_filter(reader: StateReader, tailnet: Vec<IpNet>) -> Visibility {
    Arc::new(move |src: IpAddr, target: u64| {
        let world = reader.world();
        let Some(me) = world.node_by_ip(&src) else {
            return !tailnet.iter().any(|n| n.contains(&src));
        };
        let me = me.id.0 as u64;
        if me == target {
            return true;
        }
        let Some(compiled) = &world.policy.compiled else {
            return true;
        };
        // Computed once per node and policy version, then shared: a lookup.
        compiled
            .node_shared(me)
            .is_some_and(|o| o.peers.contains(target))
    })
}

#[cfg(test)]
mod tests;
