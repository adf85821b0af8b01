use std::net::{IpAddr, Ipv4Addr};

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[test]
fn per_source_limit_refuses_only_that_source_until_a_slot_frees() {
    let gate = Gate::new(3, 100);
    let a = ip("192.0.2.1");
    let held: Vec<Permit> = (0..3)
        .map(|_| gate.admit(a).expect("under limit"))
        .collect();
    assert_eq!(
        gate.admit(a).expect_err("fourth from one source"),
        Refusal::PerSource {
            source: Source::of(a),
            limit: 3
        }
    );
    // Another source (the health checker, another office) is unaffected.
    let other = gate.admit(ip("192.0.2.2")).expect("other source");
    assert_eq!((gate.open(), gate.open_from(a)), (4, 3));

    let mut held = held;
    held.pop();
    assert_eq!(gate.open_from(a), 2);
    let again = gate.admit(a).expect("a slot was freed");
    drop((held, again, other));
    assert_eq!(gate.open(), 0);
    assert!(gate.state().open.is_empty(), "no entries left behind");
}

#[test]
fn total_limit_refuses_every_source() {
    let gate = Gate::new(10, 2);
    let _a = gate.admit(ip("192.0.2.1")).expect("first");
    let _b = gate.admit(ip("192.0.2.2")).expect("second");
    assert_eq!(
        gate.admit(ip("192.0.2.3")).expect_err("over the total"),
        Refusal::Total { limit: 2 }
    );
}

#[test]
fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
    let gate = Gate::new(2, 100);
    let _first = gate.admit(ip("2001:db8:1:2::1")).expect("first");
    let _second = gate
        .admit(ip("2001:db8:1:2:ffff::9"))
        .expect("second, same /64");
    assert!(matches!(
        gate.admit(ip("2001:db8:1:2:dead:beef::1")),
        Err(Refusal::PerSource { .. })
    ));
    let _next_net = gate
        .admit(ip("2001:db8:1:3::1"))
        .expect("next /64 is another source");
    assert_eq!(
        Source::of(ip("2001:db8:1:2::1")).to_string(),
        "2001:db8:1:2::/64"
    );

    let _v4 = gate.admit(ip("198.51.100.7")).expect("v4");
    let _mapped = gate.admit(ip("::ffff:198.51.100.7")).expect("mapped v4");
    assert_eq!(
        gate.admit(ip("::ffff:198.51.100.7"))
            .expect_err("third of this IPv4"),
        Refusal::PerSource {
            source: Source(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7))),
            limit: 2
        }
    );
}

#[test]
fn refusals_are_logged_at_most_every_ten_seconds_with_the_count() {
    let mut log = RefusalLog::default();
    let t0 = Instant::now();
    assert_eq!(
        log.note(t0),
        Some(1),
        "the first refusal is reported at once"
    );
    for i in 1..=500u64 {
        assert_eq!(log.note(t0 + Duration::from_millis(i)), None);
    }
    assert_eq!(log.note(t0 + LOG_EVERY - Duration::from_millis(1)), None);
    assert_eq!(
        log.note(t0 + LOG_EVERY),
        Some(502),
        "the next line carries every refusal since the last one"
    );
    assert_eq!(log.note(t0 + LOG_EVERY + Duration::from_secs(1)), None);
    assert_eq!(log.note(t0 + 3 * LOG_EVERY), Some(2));
}

#[test]
fn a_flood_of_refusals_logs_one_line() {
    let gate = Gate::new(1, 100);
    let a = ip("192.0.2.1");
    let _p = gate.admit(a).expect("first");
    let now = Instant::now();
    for _ in 0..1000 {
        assert!(gate.admit_at(a, now).is_err());
    }
    // One line for the first refusal; the other 999 wait for the next one.
    assert_eq!(gate.state().log.unreported, 999);
}

#[tokio::test]
async fn held_io_keeps_its_permit_until_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gate = Gate::new(1, 1);
    let (a, mut b) = tokio::io::duplex(64);
    let mut held = Held::new(a, gate.admit(ip("192.0.2.1")).expect("admit"));
    held.write_all(b"ping").await.expect("write");
    let mut buf = [0u8; 4];
    b.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"ping");
    assert_eq!(gate.open(), 1);
    drop(held);
    assert_eq!(gate.open(), 0);
}
