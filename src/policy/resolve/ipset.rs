//! Sets of IP addresses as sorted, merged ranges per family. Used to resolve
//! policy aliases and to print `SrcIPs` the way Tailscale does: a single
//! address bare, an aligned block as CIDR, anything else as `first-last`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct IpSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

fn merge<T: Copy + Ord + num::One>(mut r: Vec<(T, T)>) -> Vec<(T, T)> {
    r.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(r.len());
    for (a, b) in r {
        if let Some(last) = out.last_mut() {
            // Adjacent or overlapping ranges collapse into one.
            if a <= last.1 || a == num::succ(last.1) {
                if b > last.1 {
                    last.1 = b;
                }
                continue;
            }
        }
        out.push((a, b));
    }
    out
}

mod num {
    pub trait One: Sized {
        fn succ_sat(self) -> Self;
    }
    pub trait Pred: Sized {
        fn pred_sat(self) -> Self;
    }
    impl One for u32 {
        fn succ_sat(self) -> Self {
            self.saturating_add(1)
        }
    }
    impl One for u128 {
        fn succ_sat(self) -> Self {
            self.saturating_add(1)
        }
    }
    impl Pred for u32 {
        fn pred_sat(self) -> Self {
            self.saturating_sub(1)
        }
    }
    impl Pred for u128 {
        fn pred_sat(self) -> Self {
            self.saturating_sub(1)
        }
    }
    pub fn succ<T: One>(v: T) -> T {
        v.succ_sat()
    }
    pub fn pred<T: Pred>(v: T) -> T {
        v.pred_sat()
    }
}

fn intersects<T: Copy + Ord>(a: &[(T, T)], b: &[(T, T)]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].1 < b[j].0 {
            i += 1;
        } else if b[j].1 < a[i].0 {
            j += 1;
        } else {
            return true;
        }
    }
    false
}

fn intersect<T: Copy + Ord>(a: &[(T, T)], b: &[(T, T)]) -> Vec<(T, T)> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        let lo = a[i].0.max(b[j].0);
        let hi = a[i].1.min(b[j].1);
        if lo <= hi {
            out.push((lo, hi));
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// `a` minus `b`, both merged and sorted.
fn subtract<T: Copy + Ord + num::One + num::Pred>(a: &[(T, T)], b: &[(T, T)]) -> Vec<(T, T)> {
    let mut out = Vec::new();
    let mut j = 0;
    for &(lo, hi) in a {
        let mut lo = lo;
        // Skip the ranges of b wholly below this one.
        while j < b.len() && b[j].1 < lo {
            j += 1;
        }
        let mut k = j;
        let mut done = false;
        while k < b.len() && b[k].0 <= hi {
            if b[k].0 > lo {
                out.push((lo, num::pred(b[k].0)));
            }
            if b[k].1 >= hi {
                done = true;
                break;
            }
            lo = num::succ(b[k].1);
            k += 1;
        }
        if !done {
            out.push((lo, hi));
        }
    }
    out
}

fn covers<T: Copy + Ord>(a: &[(T, T)], b: &[(T, T)]) -> bool {
    // Every range of b lies inside one range of a (both merged).
    b.iter()
        .all(|&(lo, hi)| a.iter().any(|&(x, y)| x <= lo && hi <= y))
}

impl IpSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_nets<'a>(nets: impl IntoIterator<Item = &'a IpNet>) -> Self {
        let mut s = IpSet::new();
        for n in nets {
            s.push_net(n);
        }
        s.normalize();
        s
    }

    pub fn from_addrs(addrs: impl IntoIterator<Item = IpAddr>) -> Self {
        let mut s = IpSet::new();
        for a in addrs {
            s.push_addr(a);
        }
        s.normalize();
        s
    }

    /// A node's own addresses: at most one per family, so already normal,
    /// and no more allocated than they need (one per node per compile).
    pub fn of_node(v4: Option<Ipv4Addr>, v6: Option<Ipv6Addr>) -> Self {
        IpSet {
            v4: v4.map(|a| vec![(a.into(), a.into())]).unwrap_or_default(),
            v6: v6.map(|a| vec![(a.into(), a.into())]).unwrap_or_default(),
        }
    }

    /// Room for `v4` and `v6` more entries before `normalize`.
    pub fn reserve(&mut self, v4: usize, v6: usize) {
        self.v4.reserve(v4);
        self.v6.reserve(v6);
    }

    /// Adds without re-normalising; call `normalize` afterwards.
    pub fn push_net(&mut self, n: &IpNet) {
        match n {
            IpNet::V4(n) => self
                .v4
                .push((u32::from(n.network()), u32::from(n.broadcast()))),
            IpNet::V6(n) => self
                .v6
                .push((u128::from(n.network()), u128::from(n.broadcast()))),
        }
    }

    pub fn push_addr(&mut self, a: IpAddr) {
        match a {
            IpAddr::V4(a) => self.v4.push((a.into(), a.into())),
            IpAddr::V6(a) => self.v6.push((a.into(), a.into())),
        }
    }

    pub fn push_range_v4(&mut self, a: u32, b: u32) {
        self.v4.push((a, b));
    }

    pub fn push_range_v6(&mut self, a: u128, b: u128) {
        self.v6.push((a, b));
    }

    pub fn normalize(&mut self) {
        self.v4 = merge(std::mem::take(&mut self.v4));
        self.v6 = merge(std::mem::take(&mut self.v6));
    }

    pub fn extend(&mut self, o: &IpSet) {
        self.append(o);
        self.normalize();
    }

    /// Adds without re-normalising; call `normalize` afterwards.
    pub fn append(&mut self, o: &IpSet) {
        self.v4.extend_from_slice(&o.v4);
        self.v6.extend_from_slice(&o.v6);
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    pub fn intersects(&self, o: &IpSet) -> bool {
        intersects(&self.v4, &o.v4) || intersects(&self.v6, &o.v6)
    }

    pub fn intersection(&self, o: &IpSet) -> IpSet {
        IpSet {
            v4: intersect(&self.v4, &o.v4),
            v6: intersect(&self.v6, &o.v6),
        }
    }

    /// Addresses of `self` not in `o`.
    pub fn difference(&self, o: &IpSet) -> IpSet {
        IpSet {
            v4: subtract(&self.v4, &o.v4),
            v6: subtract(&self.v6, &o.v6),
        }
    }

    /// Every IPv4 and IPv6 address.
    pub fn full() -> IpSet {
        IpSet {
            v4: vec![(0, u32::MAX)],
            v6: vec![(0, u128::MAX)],
        }
    }

    /// The set as the fewest CIDR prefixes that cover exactly it.
    pub fn to_nets(&self) -> Vec<IpNet> {
        let mut out = Vec::new();
        for &(a, b) in &self.v4 {
            cidrs(u128::from(a), u128::from(b), 32, &mut |base, len| {
                let addr = Ipv4Addr::from(base as u32);
                out.push(IpNet::V4(
                    ipnet::Ipv4Net::new(addr, len).expect("valid length"),
                ));
            });
        }
        for &(a, b) in &self.v6 {
            cidrs(a, b, 128, &mut |base, len| {
                let addr = Ipv6Addr::from(base);
                out.push(IpNet::V6(
                    ipnet::Ipv6Net::new(addr, len).expect("valid length"),
                ));
            });
        }
        out
    }

    /// Is every address of `o` in `self`?
    pub fn covers(&self, o: &IpSet) -> bool {
        covers(&self.v4, &o.v4) && covers(&self.v6, &o.v6)
    }

    pub fn contains(&self, a: IpAddr) -> bool {
        fn find<T: Copy + Ord>(r: &[(T, T)], x: T) -> bool {
            // Ranges are sorted and disjoint: the candidate is the last
            // range starting at or before `x`.
            let i = r.partition_point(|&(lo, _)| lo <= x);
            i > 0 && x <= r[i - 1].1
        }
        match a {
            IpAddr::V4(a) => find(&self.v4, u32::from(a)),
            IpAddr::V6(a) => find(&self.v6, u128::from(a)),
        }
    }

    /// Removes a v4 range (used for Tailscale's reserved 100.115.92.0/23).
    pub fn remove_v4(&mut self, a: u32, b: u32) {
        let mut out = Vec::new();
        for &(lo, hi) in &self.v4 {
            if hi < a || lo > b {
                out.push((lo, hi));
                continue;
            }
            if lo < a {
                out.push((lo, a - 1));
            }
            if hi > b {
                out.push((b + 1, hi));
            }
        }
        self.v4 = out;
    }

    /// Tailscale's textual form, sorted as strings like the hosted plane.
    pub fn to_strings(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .v4
            .iter()
            .map(|&(a, b)| {
                fmt_range(
                    IpAddr::V4(Ipv4Addr::from(a)),
                    IpAddr::V4(Ipv4Addr::from(b)),
                    32,
                    (b - a) as u128,
                )
            })
            .chain(self.v6.iter().map(|&(a, b)| {
                fmt_range(
                    IpAddr::V6(Ipv6Addr::from(a)),
                    IpAddr::V6(Ipv6Addr::from(b)),
                    128,
                    b - a,
                )
            }))
            .collect();
        out.sort();
        out
    }

    pub fn ranges_v4(&self) -> &[(u32, u32)] {
        &self.v4
    }

    pub fn ranges_v6(&self) -> &[(u128, u128)] {
        &self.v6
    }

    /// Parses one `SrcIPs`-style element: IP, CIDR or `a-b` (not `*`).
    pub fn parse_element(s: &str) -> Option<IpSet> {
        let mut set = IpSet::new();
        if let Some((a, b)) = s.split_once('-') {
            match (a.parse::<IpAddr>().ok()?, b.parse::<IpAddr>().ok()?) {
                (IpAddr::V4(a), IpAddr::V4(b)) => set.v4.push((a.into(), b.into())),
                (IpAddr::V6(a), IpAddr::V6(b)) => set.v6.push((a.into(), b.into())),
                _ => return None,
            }
        } else if let Ok(n) = s.parse::<IpNet>() {
            set.push_net(&n.trunc());
        } else {
            set.push_addr(s.parse().ok()?);
        }
        set.normalize();
        Some(set)
    }
}

/// Calls `f(base, prefix_len)` for each of the aligned blocks that exactly
/// cover `lo..=hi` in a space of `bits` bits, largest blocks first.
fn cidrs(lo: u128, hi: u128, bits: u8, f: &mut dyn FnMut(u128, u8)) {
    let mut lo = lo;
    loop {
        // The largest block starting at `lo` that stays within `hi`.
        let mut host = if lo == 0 {
            u32::from(bits)
        } else {
            lo.trailing_zeros().min(u32::from(bits))
        };
        while host > 0 {
            let last = if host >= 128 {
                u128::MAX
            } else {
                lo | ((1u128 << host) - 1)
            };
            if last <= hi {
                break;
            }
            host -= 1;
        }
        f(lo, bits - host as u8);
        let last = if host >= 128 {
            u128::MAX
        } else {
            lo | ((1u128 << host) - 1)
        };
        if last >= hi {
            return;
        }
        lo = last + 1;
    }
}

fn fmt_range(a: IpAddr, b: IpAddr, bits: u32, span: u128) -> String {
    if span == 0 {
        return a.to_string();
    }
    // An aligned power-of-two block prints as a prefix.
    let size = span.wrapping_add(1);
    if size.is_power_of_two() || (bits == 128 && span == u128::MAX) {
        let host_bits = if span == u128::MAX {
            128
        } else {
            size.trailing_zeros()
        };
        let start: u128 = match a {
            IpAddr::V4(x) => u32::from(x) as u128,
            IpAddr::V6(x) => u128::from(x),
        };
        let aligned = host_bits >= 128 || start & ((1u128 << host_bits) - 1) == 0;
        if aligned && host_bits <= bits {
            return format!("{a}/{}", bits - host_bits);
        }
    }
    format!("{a}-{b}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> IpSet {
        let mut s = IpSet::new();
        for i in items {
            s.extend(&IpSet::parse_element(i).unwrap());
        }
        s
    }

    #[test]
    fn a_node_set_is_the_set_of_its_addresses() {
        let v4 = Ipv4Addr::new(100, 64, 0, 7);
        let v6: Ipv6Addr = "fd7a:115c:a1e0::7".parse().unwrap();
        for (a, b) in [
            (Some(v4), Some(v6)),
            (Some(v4), None),
            (None, Some(v6)),
            (None, None),
        ] {
            let addrs = a.map(IpAddr::V4).into_iter().chain(b.map(IpAddr::V6));
            assert_eq!(IpSet::of_node(a, b), IpSet::from_addrs(addrs));
        }
    }

    #[test]
    fn prints_like_tailscale() {
        let mut s = set(&["100.64.0.0/10", "fd7a:115c:a1e0::/48", "10.33.0.0/16"]);
        s.remove_v4(
            u32::from(Ipv4Addr::new(100, 115, 92, 0)),
            u32::from(Ipv4Addr::new(100, 115, 93, 255)),
        );
        assert_eq!(
            s.to_strings(),
            vec![
                "10.33.0.0/16",
                "100.115.94.0-100.127.255.255",
                "100.64.0.0-100.115.91.255",
                "fd7a:115c:a1e0::/48"
            ]
        );
        assert_eq!(
            set(&["1.2.3.4", "1.2.3.5"]).to_strings(),
            vec!["1.2.3.4/31"]
        );
        assert_eq!(
            set(&["1.2.3.5", "1.2.3.6"]).to_strings(),
            vec!["1.2.3.5-1.2.3.6"]
        );
        assert_eq!(set(&["0.0.0.0/0"]).to_strings(), vec!["0.0.0.0/0"]);
        assert_eq!(set(&["::/0"]).to_strings(), vec!["::/0"]);
    }

    #[test]
    fn cidr_decomposition_is_exact() {
        for items in [
            &["1.2.3.5-1.2.3.6"][..],
            &["0.0.0.0/0", "::/0"],
            &["10.0.0.1-10.0.3.7", "fd7a::5-fd7a::1:0"],
            &["100.64.0.0-100.115.91.255", "255.255.255.255"],
        ] {
            let s = set(items);
            let back = IpSet::from_nets(&s.to_nets());
            assert_eq!(back, s, "{items:?}");
        }
        assert_eq!(
            set(&["1.2.3.5-1.2.3.6"]).to_nets(),
            vec![
                "1.2.3.5/32".parse::<IpNet>().unwrap(),
                "1.2.3.6/32".parse().unwrap()
            ]
        );
        assert_eq!(IpSet::full().to_nets().len(), 2);
    }

    #[test]
    fn set_algebra() {
        let a = set(&["10.0.0.0/8"]);
        let b = set(&["10.33.0.0/16", "192.168.0.1"]);
        assert!(a.intersects(&b));
        assert!(!a.covers(&b));
        assert!(a.covers(&set(&["10.33.0.0/16"])));
        assert_eq!(a.intersection(&b), set(&["10.33.0.0/16"]));
        assert!(b.contains("192.168.0.1".parse().unwrap()));
        assert!(!b.contains("192.168.0.2".parse().unwrap()));
        assert_eq!(
            set(&["1.0.0.0-1.0.0.9", "1.0.0.10-1.0.0.20"]),
            set(&["1.0.0.0-1.0.0.20"])
        );
        assert_eq!(
            a.difference(&b),
            set(&["10.0.0.0-10.32.255.255", "10.34.0.0-10.255.255.255"])
        );
        assert_eq!(b.difference(&a), set(&["192.168.0.1"]));
        assert!(a.difference(&a).is_empty());
        assert_eq!(
            IpSet::full().difference(&set(&["0.0.0.0/0"])),
            set(&["::/0"])
        );
        let all_but_one = IpSet::full().difference(&set(&["100.64.0.1", "::"]));
        assert!(!all_but_one.contains("100.64.0.1".parse().unwrap()));
        assert!(all_but_one.contains("100.64.0.2".parse().unwrap()));
        assert!(!all_but_one.contains("::".parse().unwrap()));
    }
}
