//! The tailnet's DNS settings as maps carry them (`tailcfg.DNSConfig`): the
//! config file's `dns` section ([`DnsBase`], fixed at start-up) combined
//! with what API v2 changed ([`DnsOverrides`], stored in the database so a
//! restart keeps it).
//!
//! Each of the three settings API v2 manages (global nameservers, search
//! paths, MagicDNS) is either unchanged (the file's value) or replaced as a
//! whole by the API's; the rest of the section (split DNS, whether the
//! nameservers override local DNS, extra records) stays the file's. The
//! mapping onto `DNSConfig` is Headscale's.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::change::Change;
use super::{Error, Result, Settings, StateHandle};
pub use crate::db::DnsOverrides;
use crate::tailcfg::{DnsConfig, Resolver};

/// The config file's `dns` section, as far as maps use it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsBase {
    pub magic_dns: bool,
    /// Empty only when MagicDNS is off in the file and no base domain was
    /// given; MagicDNS cannot be turned on then.
    pub base_domain: String,
    pub override_local_dns: bool,
    pub nameservers: Vec<String>,
    pub split: BTreeMap<String, Vec<String>>,
    pub search_domains: Vec<String>,
    /// Reverse zones of the tailnet prefixes, routed to MagicDNS with it.
    pub reverse_zones: Vec<String>,
}

/// The settings in force, the file's and the API's combined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsView {
    pub nameservers: Vec<String>,
    pub search_paths: Vec<String>,
    pub magic_dns: bool,
}

fn resolvers(addrs: &[String]) -> Vec<Resolver> {
    addrs.iter().map(|a| Resolver { addr: a.clone() }).collect()
}

impl DnsBase {
    pub fn view(&self, o: &DnsOverrides) -> DnsView {
        DnsView {
            nameservers: o.nameservers.clone().unwrap_or(self.nameservers.clone()),
            search_paths: o
                .search_paths
                .clone()
                .unwrap_or(self.search_domains.clone()),
            magic_dns: o.magic_dns.unwrap_or(self.magic_dns),
        }
    }

    /// The `DNSConfig` for these settings, without extra records (those
    /// come from `dns.extra_records*` and are kept as they are).
    pub fn build(&self, o: &DnsOverrides) -> DnsConfig {
        let v = self.view(o);
        let mut out = DnsConfig {
            proxied: v.magic_dns,
            ..Default::default()
        };
        if self.override_local_dns {
            out.resolvers = resolvers(&v.nameservers);
        } else {
            out.fallback_resolvers = resolvers(&v.nameservers);
        }
        for (suffix, servers) in &self.split {
            out.routes.insert(suffix.clone(), resolvers(servers));
        }
        if v.magic_dns {
            out.domains.push(self.base_domain.clone());
            for zone in &self.reverse_zones {
                // `[]`, never null: the client's clone drops nil route values.
                out.routes.entry(zone.clone()).or_default();
            }
        }
        out.domains.extend(v.search_paths);
        out
    }

    /// Refuses overrides the maps cannot carry.
    fn check(&self, o: &DnsOverrides) -> Result<()> {
        if o.magic_dns == Some(true) && self.base_domain.is_empty() {
            return Err(Error::FailedPrecondition(
                "MagicDNS needs dns.base_domain, which the config file does not set".into(),
            ));
        }
        Ok(())
    }
}

/// `settings` with its `DNSConfig` rebuilt from `base` and `o` (extra
/// records kept).
pub(super) fn apply(settings: &Settings, base: &DnsBase, o: &DnsOverrides) -> Settings {
    let mut next = settings.clone();
    let records = std::mem::take(&mut next.dns.extra_records);
    next.dns = base.build(o);
    next.dns.extra_records = records;
    next
}

impl StateHandle {
    /// The DNS settings in force.
    pub async fn dns_settings(&self) -> Result<DnsView> {
        self.run(|core| Box::pin(async move { Ok(core.opts.dns.view(&core.dns_overrides)) }))
            .await
    }

    /// Applies `change` to the stored overrides, stores them and publishes
    /// the maps' new `DNSConfig` (nothing when it is unchanged). Returns the
    /// settings in force afterwards.
    pub async fn update_dns(
        &self,
        change: impl FnOnce(&mut DnsOverrides) + Send + 'static,
    ) -> Result<DnsView> {
        self.run(move |core| {
            Box::pin(async move {
                let mut next = core.dns_overrides.clone();
                change(&mut next);
                core.opts.dns.check(&next)?;
                if next != core.dns_overrides {
                    core.db.save_dns_overrides(&next, core.now()).await?;
                    core.dns_overrides = next;
                    let settings = apply(&core.world.settings, &core.opts.dns, &core.dns_overrides);
                    if settings != *core.world.settings {
                        let mut w = core.draft();
                        w.settings = Arc::new(settings);
                        core.publish(w, Change::settings());
                    }
                }
                Ok(core.opts.dns.view(&core.dns_overrides))
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests;
