//! DNS settings operations (API v2's nameservers, search paths and MagicDNS
//! preference): the values in force, and changes that the state writer
//! stores and publishes to every map (`state::dns`). `None` in a
//! [`DnsChange`] leaves a setting alone; [`Setting::FromFile`] returns it
//! to the config file's value.

use std::net::IpAddr;

use serde_json::json;

use super::{Admin, Caller, Done, Error, Mutation, Resource, Result};
pub use crate::state::dns::DnsView;
use crate::types::DnsLabel;

/// A new value for one setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setting<T> {
    Set(T),
    /// Back to the config file's value.
    FromFile,
}

/// What to change; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsChange {
    pub nameservers: Option<Setting<Vec<String>>>,
    pub search_paths: Option<Setting<Vec<String>>>,
    pub magic_dns: Option<Setting<bool>>,
}

fn view_json(v: &DnsView) -> serde_json::Value {
    json!({
        "nameservers": v.nameservers,
        "search_paths": v.search_paths,
        "magic_dns": v.magic_dns,
    })
}

/// Nameservers are IP addresses, as Tailscale's are (the config file also
/// takes DoH URLs, which API v2 does not carry).
fn check_nameservers(list: &[String]) -> Result<Vec<String>> {
    list.iter()
        .map(|s| {
            s.trim()
                .parse::<IpAddr>()
                .map(|a| a.to_string())
                .map_err(|_| {
                    Error::InvalidArgument(format!("nameserver {s:?} is not an IP address"))
                })
        })
        .collect()
}

/// Search paths are DNS names: dot-separated labels, no trailing dot kept.
fn check_search_paths(list: &[String]) -> Result<Vec<String>> {
    list.iter()
        .map(|s| {
            let name = s.trim().trim_end_matches('.').to_ascii_lowercase();
            let ok = !name.is_empty()
                && name.len() <= 253
                && name.split('.').all(|l| DnsLabel::parse(l).is_ok());
            if ok {
                Ok(name)
            } else {
                Err(Error::InvalidArgument(format!(
                    "search path {s:?} is not a DNS name"
                )))
            }
        })
        .collect()
}

impl Admin {
    /// The DNS settings in force (the config file's, with API changes).
    pub async fn dns(&self, caller: &Caller) -> Result<DnsView> {
        self.read(caller, Resource::Dns)?;
        Ok(self.state().dns_settings().await?)
    }

    /// Changes the DNS settings; every map gets the new `DNSConfig`.
    pub async fn set_dns(&self, caller: &Caller, change: DnsChange) -> Result<DnsView> {
        let before = self.state().dns_settings().await.ok();
        let m = Mutation::new(Resource::Dns, "dns.set")
            .on("dns".into())
            .before(before.as_ref().map(view_json));
        self.mutate(caller, m, async {
            let nameservers = match change.nameservers {
                Some(Setting::Set(l)) => Some(Some(check_nameservers(&l)?)),
                Some(Setting::FromFile) => Some(None),
                None => None,
            };
            let search_paths = match change.search_paths {
                Some(Setting::Set(l)) => Some(Some(check_search_paths(&l)?)),
                Some(Setting::FromFile) => Some(None),
                None => None,
            };
            let magic_dns = change.magic_dns.map(|s| match s {
                Setting::Set(b) => Some(b),
                Setting::FromFile => None,
            });
            let view = self
                .state()
                .update_dns(move |o| {
                    if let Some(v) = nameservers {
                        o.nameservers = v;
                    }
                    if let Some(v) = search_paths {
                        o.search_paths = v;
                    }
                    if let Some(v) = magic_dns {
                        o.magic_dns = v;
                    }
                })
                .await?;
            let after = view_json(&view);
            Ok(Done::new(view).after(after))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked() {
        assert_eq!(
            check_nameservers(&[" 1.1.1.1".into(), "2606:4700::1111".into()]).unwrap(),
            ["1.1.1.1", "2606:4700::1111"]
        );
        assert!(check_nameservers(&["https://dns.example/q".into()]).is_err());
        assert!(check_nameservers(&["".into()]).is_err());
        assert_eq!(
            check_search_paths(&["Corp.Example.".into()]).unwrap(),
            ["corp.example"]
        );
        for bad in ["", "a..b", "has space.example", "-x.example"] {
            assert!(check_search_paths(&[bad.into()]).is_err(), "{bad:?}");
        }
    }
}
