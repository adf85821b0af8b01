//! ACME DNS-01 challenge answers with `dig`, over UDP and TCP: TXT from the live source to any
//! source (the allow-list here excludes loopback, as it would a CA's resolvers), NODATA for
//! other types, and everything else unchanged.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

const OWNER: &str = "_acme-challenge.laptop.ts.example.com";
const VALUE: &str = "Lt8Ztp1PPmi7oJ0ETa2ByYUYVnFJPJQvXnd1dqh9x4c";

#[derive(Default)]
struct Source {
    values: Mutex<HashMap<String, Vec<String>>>,
    served: AtomicUsize,
}

#[async_trait::async_trait]
impl ChallengeSource for Source {
    async fn txt(&self, owner: &str) -> Vec<String> {
        self.values
            .lock()
            .unwrap()
            .get(owner)
            .cloned()
            .unwrap_or_default()
    }

    fn served(&self) {
        self.served.fetch_add(1, Ordering::Relaxed);
    }
}

async fn start_with_source(allow: &str) -> (Running, Arc<Source>) {
    let source = Arc::new(Source::default());
    let cfg = ServerConfig {
        allow: vec![allow.parse().unwrap()],
        ..loopback_cfg()
    };
    let hooks = Hooks {
        visibility: None,
        challenges: Some(source.clone()),
    };
    (start_with(cfg, hooks).await, source)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenge_txt_is_answered_to_any_source_over_udp_and_tcp() {
    if !dig_available() {
        return;
    }
    // Loopback is not on this allow-list.
    let (s, source) = start_with_source("100.64.0.0/10").await;
    let addr = s.handle.udp_addr();
    let d = dig(addr, &[OWNER, "TXT"]).await;
    assert_eq!(d.status, "REFUSED", "no value yet: {}", d.raw);

    source
        .values
        .lock()
        .unwrap()
        .insert(OWNER.into(), vec![VALUE.into(), "second".into()]);
    for transport in ["+notcp", "+tcp"] {
        // Upper case in the question: the owner is matched case-insensitively.
        let d = dig(
            addr,
            &[transport, "_ACME-Challenge.Laptop.ts.example.com", "TXT"],
        )
        .await;
        assert_eq!(d.status, "NOERROR", "{transport}: {}", d.raw);
        assert!(d.flags.contains(&"aa".to_string()), "{}", d.raw);
        assert_eq!(
            d.answers(),
            vec![
                ("TXT".to_string(), format!("\"{VALUE}\"")),
                ("TXT".to_string(), "\"second\"".to_string()),
            ],
            "{transport}: {}",
            d.raw
        );
        // A second at most in caches: a retried order publishes a new value.
        assert_eq!(
            d.answer[0].split_whitespace().nth(1),
            Some("1"),
            "{}",
            d.raw
        );
    }
    assert_eq!(source.served.load(Ordering::Relaxed), 2);

    // Other types at the name: NODATA with the SOA.
    let d = dig(addr, &[OWNER, "A"]).await;
    assert_eq!(d.status, "NOERROR", "{}", d.raw);
    assert!(d.answer.is_empty(), "{}", d.raw);
    assert!(d.authority[0].contains("SOA"), "{}", d.raw);
    // The rest of the zone stays behind the allow-list, challenge-like names included.
    for name in [
        "laptop.ts.example.com",
        "_acme-challenge.server.ts.example.com",
        "_acme-challenge.laptop.other.example",
    ] {
        let d = dig(addr, &[name, "TXT"]).await;
        assert_eq!(d.status, "REFUSED", "{name}: {}", d.raw);
    }
    s.stop.send(()).unwrap();
    s.handle.join().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_source_sees_the_zone_as_before_without_values() {
    if !dig_available() {
        return;
    }
    let (s, source) = start_with_source("127.0.0.0/8").await;
    let addr = s.handle.udp_addr();
    let d = dig(addr, &[OWNER, "TXT"]).await;
    assert_eq!(d.status, "NXDOMAIN", "{}", d.raw);
    let d = dig(addr, &["laptop.ts.example.com", "A"]).await;
    assert_eq!(d.answers(), vec![("A".into(), "100.64.0.1".into())]);
    assert_eq!(source.served.load(Ordering::Relaxed), 0);
    s.stop.send(()).unwrap();
    s.handle.join().await.unwrap();
}
