//! Per-source token buckets, so one flooding source cannot starve the others.
//!
//! Assumptions: called once per query under a short `Mutex` (no await inside); time is passed
//! in, so tests need no sleeps. Memory is bounded by `max_sources`: when the table is full, a
//! sweep (at most once per second) drops buckets that have refilled completely, which loses
//! nothing since a new bucket starts full too. If every tracked source is still active, new
//! sources pass untracked: with spoofable UDP sources a per-source limit cannot stop a
//! distributed flood anyway, and refusing newcomers would turn the limiter into the outage.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::TAILNET_V6;

/// How often a full table may be swept.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

pub(super) struct Limiter {
    /// Tokens per second; 0 disables limiting.
    rate: f64,
    burst: f64,
    max_sources: usize,
    inner: Mutex<Inner>,
}

struct Inner {
    buckets: HashMap<IpAddr, Bucket>,
    last_sweep: Option<Instant>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Limiter {
    pub(super) fn new(rate_qps: u32, burst: u32, max_sources: usize) -> Self {
        Self {
            rate: f64::from(rate_qps),
            burst: f64::from(burst.max(1)),
            max_sources,
            inner: Mutex::new(Inner {
                buckets: HashMap::new(),
                last_sweep: None,
            }),
        }
    }

    /// Spends one token for `src`; false means drop the query.
    pub(super) fn check(&self, src: IpAddr, now: Instant) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let key = source_key(src);
        // A poisoned lock only means another query panicked mid-update; the table is still usable.
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = inner.buckets.get_mut(&key) {
            let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
            bucket.last = now;
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
                return true;
            }
            return false;
        }
        if inner.buckets.len() >= self.max_sources {
            self.sweep(&mut inner, now);
            if inner.buckets.len() >= self.max_sources {
                return true;
            }
        }
        inner.buckets.insert(
            key,
            Bucket {
                tokens: self.burst - 1.0,
                last: now,
            },
        );
        true
    }

    fn sweep(&self, inner: &mut Inner, now: Instant) {
        if inner
            .last_sweep
            .is_some_and(|t| now.saturating_duration_since(t) < SWEEP_EVERY)
        {
            return;
        }
        inner.last_sweep = Some(now);
        let (rate, burst) = (self.rate, self.burst);
        inner.buckets.retain(|_, b| {
            let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
            b.tokens + elapsed * rate < burst
        });
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.inner.lock().map(|i| i.buckets.len()).unwrap_or(0)
    }
}

/// What counts as one source: an IPv4 address, a tailnet IPv6 address (one per node), or any
/// other IPv6 /64 (one host usually owns a whole /64, so per-address keys would be free to evade).
fn source_key(src: IpAddr) -> IpAddr {
    match src.to_canonical() {
        IpAddr::V6(v6) if !TAILNET_V6.contains(&IpAddr::V6(v6)) && !v6.is_loopback() => {
            let seg = v6.segments();
            IpAddr::V6(Ipv6Addr::new(seg[0], seg[1], seg[2], seg[3], 0, 0, 0, 0))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn burst_then_refill() {
        let l = Limiter::new(10, 3, 100);
        let t0 = Instant::now();
        let a = ip("100.64.0.1");
        assert!((0..3).all(|_| l.check(a, t0)));
        assert!(
            !l.check(a, t0),
            "4th query in the same instant exceeds the burst"
        );
        // 10 qps: one token after 100 ms.
        assert!(!l.check(a, t0 + Duration::from_millis(50)));
        assert!(l.check(a, t0 + Duration::from_millis(160)));
        assert!(!l.check(a, t0 + Duration::from_millis(160)));
    }

    #[test]
    fn flood_from_one_source_does_not_affect_another() {
        let l = Limiter::new(5, 5, 100);
        let t0 = Instant::now();
        let (flooder, other) = (ip("100.64.0.1"), ip("100.64.0.2"));
        let passed = (0..1000).filter(|_| l.check(flooder, t0)).count();
        assert_eq!(passed, 5);
        assert!(l.check(other, t0));
    }

    #[test]
    fn ipv6_keys_by_64_outside_tailnet() {
        let l = Limiter::new(1, 1, 100);
        let t0 = Instant::now();
        assert!(l.check(ip("2001:db8::1"), t0));
        assert!(!l.check(ip("2001:db8::2"), t0), "same /64 shares a bucket");
        assert!(l.check(ip("fd7a:115c:a1e0::1"), t0));
        assert!(
            l.check(ip("fd7a:115c:a1e0::2"), t0),
            "tailnet addresses are separate"
        );
        assert!(l.check(ip("::ffff:100.64.0.9"), t0));
        assert!(
            !l.check(ip("100.64.0.9"), t0),
            "v4-mapped and plain v4 are one source"
        );
    }

    #[test]
    fn table_is_bounded_and_idle_sources_are_evicted() {
        let l = Limiter::new(100, 2, 4);
        let t0 = Instant::now();
        for i in 1..=10u8 {
            assert!(l.check(IpAddr::from([100, 64, 0, i]), t0));
        }
        assert_eq!(l.tracked(), 4, "never grows past max_sources");
        // Later all buckets have refilled: the next newcomer triggers a sweep and is tracked.
        let later = t0 + Duration::from_secs(2);
        assert!(l.check(ip("100.64.1.1"), later));
        assert_eq!(l.tracked(), 1);
    }

    #[test]
    fn disabled_when_rate_is_zero() {
        let l = Limiter::new(0, 0, 1);
        let t0 = Instant::now();
        assert!((0..10_000).all(|_| l.check(ip("127.0.0.1"), t0)));
        assert_eq!(l.tracked(), 0);
    }
}
