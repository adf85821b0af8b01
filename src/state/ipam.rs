//! Tailnet address allocation from the configured IPv4/IPv6 pools.
//!
//! Addresses are unique while their node exists (the World's IP index is the
//! source of "taken"); a deleted node's address may be handed out again.
//! Reserved: the network and broadcast addresses of the pool, Tailscale's
//! MagicDNS service addresses (100.100.100.100, fd7a:115c:a1e0::53) and the
//! 100.100.100.0/24 block Tailscale keeps for its own services.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Sequential,
    Random,
}

#[derive(Debug, Clone)]
pub struct Ipam {
    pub v4: Option<Ipv4Net>,
    pub v6: Option<Ipv6Net>,
    pub strategy: Strategy,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the {0} address pool is exhausted")]
pub struct Exhausted(pub &'static str);

const QUAD100_BLOCK: Ipv4Net = match Ipv4Net::new(Ipv4Addr::new(100, 100, 100, 0), 24) {
    Ok(n) => n,
    Err(_) => panic!("valid constant"),
};
const MAGICDNS_V6: Ipv6Addr = Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, 0x53);

/// Random probing gives up and scans after this many collisions.
const RANDOM_TRIES: usize = 64;

impl Ipam {
    /// Picks a free IPv4 address, if a v4 pool is configured. `floor`: no
    /// pool address below it is free (see [`Floor`]), so the walk for the
    /// lowest free one starts there.
    pub fn next_v4(
        &self,
        floor: Option<Ipv4Addr>,
        taken: impl Fn(&IpAddr) -> bool,
    ) -> Result<Option<Ipv4Addr>, Exhausted> {
        let Some(net) = self.v4 else { return Ok(None) };
        let first = u32::from(net.network()) as u64 + 1;
        let from = first.max(floor.map_or(0, |f| u32::from(f) as u64));
        let last = u32::from(net.broadcast()) as u64; // exclusive
        let ok = |n: u64| {
            let a = Ipv4Addr::from(n as u32);
            !QUAD100_BLOCK.contains(&a) && !taken(&IpAddr::V4(a))
        };
        self.pick(first, from, last, ok)
            .map(|n| Some(Ipv4Addr::from(n as u32)))
            .ok_or(Exhausted("IPv4"))
    }

    /// Picks a free IPv6 address, if a v6 pool is configured. Only the low 64
    /// bits are walked: no pool needs more addresses than that. `floor` as
    /// for [`Ipam::next_v4`].
    pub fn next_v6(
        &self,
        floor: Option<Ipv6Addr>,
        taken: impl Fn(&IpAddr) -> bool,
    ) -> Result<Option<Ipv6Addr>, Exhausted> {
        let Some(net) = self.v6 else { return Ok(None) };
        let base = u128::from(net.network());
        let from = floor
            .map(|f| u128::from(f).saturating_sub(base))
            .map_or(1, |o| u64::try_from(o).unwrap_or(u64::MAX).max(1));
        let host_bits = 128 - u32::from(net.prefix_len());
        let span: u64 = if host_bits >= 64 {
            u64::MAX
        } else {
            (1u64 << host_bits) - 1
        };
        let ok = |n: u64| {
            let a = Ipv6Addr::from(base + n as u128);
            a != MAGICDNS_V6 && !taken(&IpAddr::V6(a))
        };
        self.pick(1, from, span, ok)
            .map(|n| Some(Ipv6Addr::from(base + n as u128)))
            .ok_or(Exhausted("IPv6"))
    }

    /// Finds an offset in `[first, end)` accepted by `ok`; none below
    /// `from` is.
    fn pick(&self, first: u64, from: u64, end: u64, ok: impl Fn(u64) -> bool) -> Option<u64> {
        if first >= end {
            return None;
        }
        if self.strategy == Strategy::Random {
            let mut rng = rand::thread_rng();
            for _ in 0..RANDOM_TRIES {
                let n = rng.gen_range(first..end);
                if ok(n) {
                    return Some(n);
                }
            }
        }
        // Sequential: the lowest free address. The walk is bounded by the
        // number of taken addresses (plus reserved ones) before a free one.
        (from..end).find(|&n| ok(n))
    }
}

/// Per family, an address below which no pool address is free: the
/// sequential walk for the lowest free address starts there, so enrolling
/// the n-th node costs O(1) probes instead of O(n). Kept in the World
/// (persistent, rolled back with it): raised past an address the sequential
/// allocator just handed out (it was the lowest free one), lowered to any
/// address a node gives up. `None`: start at the pool's start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Floor {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

impl Floor {
    /// `ip` is free again (`None` already starts at the pool's start).
    pub fn lower(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(a) => self.v4 = self.v4.map(|f| f.min(a)),
            IpAddr::V6(a) => self.v6 = self.v6.map(|f| f.min(a)),
        }
    }

    /// `v4`/`v6` were the lowest free addresses and are now taken.
    pub fn taken_lowest(&mut self, v4: Option<Ipv4Addr>, v6: Option<Ipv6Addr>) {
        if let Some(a) = v4 {
            self.v4 = Some(Ipv4Addr::from(u32::from(a).saturating_add(1)));
        }
        if let Some(a) = v6 {
            self.v6 = Some(Ipv6Addr::from(u128::from(a).saturating_add(1)));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn ipam(v4: &str, v6: &str, strategy: Strategy) -> Ipam {
        Ipam {
            v4: Some(v4.parse().unwrap()),
            v6: Some(v6.parse().unwrap()),
            strategy,
        }
    }

    #[test]
    fn sequential_takes_lowest_free() {
        let p = ipam("100.64.0.0/10", "fd7a:115c:a1e0::/48", Strategy::Sequential);
        let mut taken: HashSet<IpAddr> = HashSet::new();
        let a = p.next_v4(None, |ip| taken.contains(ip)).unwrap().unwrap();
        assert_eq!(a, Ipv4Addr::new(100, 64, 0, 1));
        taken.insert(a.into());
        let b = p.next_v4(None, |ip| taken.contains(ip)).unwrap().unwrap();
        assert_eq!(b, Ipv4Addr::new(100, 64, 0, 2));
        let v6 = p.next_v6(None, |ip| taken.contains(ip)).unwrap().unwrap();
        assert_eq!(v6, "fd7a:115c:a1e0::1".parse::<Ipv6Addr>().unwrap());
    }

    /// The floor only skips taken addresses: the walk from it finds the
    /// same lowest free address as a walk from the pool's start, also after
    /// an address below it was freed.
    #[test]
    fn floor_skips_only_taken_addresses() {
        let p = ipam("100.64.0.0/10", "fd7a:115c:a1e0::/48", Strategy::Sequential);
        let mut taken: HashSet<IpAddr> = HashSet::new();
        let mut floor = Floor::default();
        for _ in 0..50 {
            let v4 = p.next_v4(floor.v4, |ip| taken.contains(ip)).unwrap();
            let v6 = p.next_v6(floor.v6, |ip| taken.contains(ip)).unwrap();
            assert_eq!(v4, p.next_v4(None, |ip| taken.contains(ip)).unwrap());
            assert_eq!(v6, p.next_v6(None, |ip| taken.contains(ip)).unwrap());
            taken.extend([IpAddr::from(v4.unwrap()), IpAddr::from(v6.unwrap())]);
            floor.taken_lowest(v4, v6);
        }
        assert_eq!(floor.v4, Some(Ipv4Addr::new(100, 64, 0, 51)));
        let freed: IpAddr = Ipv4Addr::new(100, 64, 0, 7).into();
        taken.remove(&freed);
        floor.lower(freed);
        assert_eq!(
            p.next_v4(floor.v4, |ip| taken.contains(ip)).unwrap(),
            Some(Ipv4Addr::new(100, 64, 0, 7))
        );
    }

    #[test]
    fn small_pool_exhausts_and_skips_reserved() {
        let p = ipam(
            "100.100.100.96/29",
            "fd7a:115c:a1e0::50/124",
            Strategy::Sequential,
        );
        // Every host address of this /29 lies in the reserved 100.100.100.0/24.
        assert_eq!(p.next_v4(None, |_| false), Err(Exhausted("IPv4")));
        let p = ipam(
            "100.64.0.0/30",
            "fd7a:115c:a1e0::50/124",
            Strategy::Sequential,
        );
        let mut taken: HashSet<IpAddr> = HashSet::new();
        for _ in 0..2 {
            let a = p.next_v4(None, |ip| taken.contains(ip)).unwrap().unwrap();
            assert!(taken.insert(a.into()));
        }
        assert_eq!(
            p.next_v4(None, |ip| taken.contains(ip)),
            Err(Exhausted("IPv4"))
        );
        // ::51..::5e minus ::53 (MagicDNS) leaves 13 addresses.
        let mut taken6: HashSet<IpAddr> = HashSet::new();
        for _ in 0..13 {
            let a = p.next_v6(None, |ip| taken6.contains(ip)).unwrap().unwrap();
            assert_ne!(a, MAGICDNS_V6);
            assert!(taken6.insert(a.into()));
        }
        assert_eq!(
            p.next_v6(None, |ip| taken6.contains(ip)),
            Err(Exhausted("IPv6"))
        );
    }

    #[test]
    fn random_allocations_are_unique_and_in_pool() {
        let p = ipam("100.64.0.0/24", "fd7a:115c:a1e0::/48", Strategy::Random);
        let net: Ipv4Net = "100.64.0.0/24".parse().unwrap();
        let mut taken: HashSet<IpAddr> = HashSet::new();
        for _ in 0..254 {
            let a = p.next_v4(None, |ip| taken.contains(ip)).unwrap().unwrap();
            assert!(net.contains(&a) && a != net.network() && a != net.broadcast());
            assert!(taken.insert(a.into()), "duplicate {a}");
        }
        assert_eq!(
            p.next_v4(None, |ip| taken.contains(ip)),
            Err(Exhausted("IPv4"))
        );
    }

    #[test]
    fn no_pool_means_no_address() {
        let p = Ipam {
            v4: None,
            v6: None,
            strategy: Strategy::Sequential,
        };
        assert_eq!(p.next_v4(None, |_| false), Ok(None));
        assert_eq!(p.next_v6(None, |_| false), Ok(None));
    }
}
