//! End-to-end tests against the server on loopback: raw sockets for malformed input, and a
//! real resolver client, `dig` (Debian `bind9-dnsutils`), for everything else. The dig tests
//! are skipped loudly when dig is missing, unless `CI` is set (then they fail).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::sync::{oneshot, watch};

use super::*;

mod challenges;

/// Parsed `dig` output.
#[derive(Debug)]
struct Dig {
    raw: String,
    status: String,
    flags: Vec<String>,
    answer: Vec<String>,
    authority: Vec<String>,
}

impl Dig {
    /// `(type, rdata)` of each answer line.
    fn answers(&self) -> Vec<(String, String)> {
        self.answer
            .iter()
            .map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                (f[3].to_owned(), f[4..].join(" "))
            })
            .collect()
    }
}

fn dig_available() -> bool {
    let found = std::process::Command::new("dig").arg("-v").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "dig is required in CI (bind9-dnsutils)"
        );
        eprintln!(
            "!!!!!!!! SKIPPING dig tests: `dig` not found (apt-get install bind9-dnsutils) !!!!!!!!"
        );
    }
    found
}

async fn dig(addr: SocketAddr, args: &[&str]) -> Dig {
    let out = tokio::process::Command::new("dig")
        .arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string(), "+time=2", "+tries=1"])
        .args(args)
        .output()
        .await
        .expect("run dig");
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    let header = raw.lines().find(|l| l.contains("status:")).unwrap_or("");
    let status = header
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("NO-RESPONSE")
        .to_owned();
    let flags = raw
        .lines()
        .find_map(|l| l.strip_prefix(";; flags: "))
        .and_then(|l| l.split(';').next())
        .map(|f| f.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    Dig {
        answer: section(&raw, ";; ANSWER SECTION:"),
        authority: section(&raw, ";; AUTHORITY SECTION:"),
        raw,
        status,
        flags,
    }
}

fn section(raw: &str, title: &str) -> Vec<String> {
    raw.lines()
        .skip_while(|l| *l != title)
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

fn zone(serial: u32, laptop: &str) -> ZoneData {
    let extra = [
        ("alias.ts.example.com", "CNAME", "laptop.ts.example.com"),
        ("note.ts.example.com", "TXT", "hello world"),
        (
            "_http._tcp.ts.example.com",
            "SRV",
            "10 5 8080 server.ts.example.com",
        ),
        ("big.ts.example.com", "TXT", &"0123456789".repeat(200)),
    ];
    ZoneData {
        base_domain: "ts.example.com".into(),
        serial,
        ttl: 5,
        nodes: vec![
            NodeName {
                id: 1,
                label: laptop.into(),
                ipv4: Some(Ipv4Addr::new(100, 64, 0, 1)),
                ipv6: Some("fd7a:115c:a1e0::1".parse().unwrap()),
            },
            NodeName {
                id: 2,
                label: "server".into(),
                ipv4: Some(Ipv4Addr::new(100, 64, 0, 2)),
                ipv6: None,
            },
        ],
        services: vec![],
        extra: extra
            .iter()
            .map(|(n, t, v)| ExtraRecord::parse(n, t, v).unwrap())
            .collect(),
    }
}

struct Running {
    handle: ServerHandle,
    tx: watch::Sender<Arc<RecordIndex>>,
    stop: oneshot::Sender<()>,
}

async fn start(cfg: ServerConfig) -> Running {
    start_with(cfg, Hooks::default()).await
}

async fn start_with(cfg: ServerConfig, hooks: Hooks) -> Running {
    let (tx, rx) = watch::channel(Arc::new(RecordIndex::build(&zone(1, "laptop")).unwrap()));
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = serve(cfg, rx, hooks, async {
        let _ = stopped.await;
    })
    .await
    .unwrap();
    Running { handle, tx, stop }
}

fn loopback_cfg() -> ServerConfig {
    ServerConfig {
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        rate_limit_qps: 0,
        ..ServerConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_record_types() {
    if !dig_available() {
        return;
    }
    let s = start(loopback_cfg()).await;
    let addr = s.handle.udp_addr();
    assert_eq!(addr.port(), s.handle.tcp_addr().port());

    let d = dig(addr, &["laptop.ts.example.com", "A"]).await;
    assert_eq!(d.status, "NOERROR", "{}", d.raw);
    assert!(
        d.flags.contains(&"aa".to_owned()) && !d.flags.contains(&"ra".to_owned()),
        "{:?}",
        d.flags
    );
    assert_eq!(d.answers(), [("A".into(), "100.64.0.1".into())]);
    assert!(d.answer[0].contains("\t5\t"), "ttl 5: {}", d.answer[0]);

    let d = dig(addr, &["LAPTOP.TS.EXAMPLE.COM", "AAAA"]).await;
    assert_eq!(d.answers(), [("AAAA".into(), "fd7a:115c:a1e0::1".into())]);

    let d = dig(addr, &["alias.ts.example.com", "A"]).await;
    assert_eq!(
        d.answers(),
        [
            ("CNAME".into(), "laptop.ts.example.com.".into()),
            ("A".into(), "100.64.0.1".into())
        ]
    );

    let d = dig(addr, &["note.ts.example.com", "TXT"]).await;
    assert_eq!(d.answers(), [("TXT".into(), "\"hello world\"".into())]);

    let d = dig(addr, &["_http._tcp.ts.example.com", "SRV"]).await;
    assert_eq!(
        d.answers(),
        [("SRV".into(), "10 5 8080 server.ts.example.com.".into())]
    );

    let d = dig(addr, &["ts.example.com", "SOA"]).await;
    let (kind, soa) = &d.answers()[0];
    assert_eq!(kind, "SOA");
    assert!(
        soa.starts_with("ts.example.com. hostmaster.ts.example.com. 1 "),
        "{soa}"
    );

    let d = dig(addr, &["ts.example.com", "NS"]).await;
    assert_eq!(d.answers(), [("NS".into(), "ts.example.com.".into())]);

    let d = dig(addr, &["laptop.ts.example.com", "ANY"]).await;
    assert_eq!(d.answers().len(), 2, "ANY gives A+AAAA only: {}", d.raw);

    s.stop.send(()).unwrap();
    s.handle.join().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_ptr_nxdomain_refused() {
    if !dig_available() {
        return;
    }
    let s = start(loopback_cfg()).await;
    let addr = s.handle.udp_addr();

    let d = dig(addr, &["-x", "100.64.0.2"]).await;
    assert_eq!(
        d.answers(),
        [("PTR".into(), "server.ts.example.com.".into())],
        "{}",
        d.raw
    );
    let d = dig(addr, &["-x", "fd7a:115c:a1e0::1"]).await;
    assert_eq!(
        d.answers(),
        [("PTR".into(), "laptop.ts.example.com.".into())],
        "{}",
        d.raw
    );

    let d = dig(addr, &["nobody.ts.example.com", "A"]).await;
    assert_eq!(d.status, "NXDOMAIN");
    assert!(d.authority[0].contains("SOA"), "{}", d.raw);
    let d = dig(addr, &["-x", "100.64.9.9"]).await;
    assert_eq!(d.status, "NXDOMAIN");
    assert!(
        d.authority[0].starts_with("64.100.in-addr.arpa."),
        "{}",
        d.raw
    );

    let d = dig(addr, &["server.ts.example.com", "AAAA"]).await;
    assert_eq!(
        (d.status.as_str(), d.answer.len()),
        ("NOERROR", 0),
        "NODATA"
    );
    assert!(d.authority[0].contains("SOA"));

    for name in ["www.example.org", "example.com"] {
        let d = dig(addr, &[name, "A"]).await;
        assert_eq!(d.status, "REFUSED", "{name}: never an open resolver");
        assert!(d.answer.is_empty());
    }
    let d = dig(addr, &["-x", "10.0.0.1"]).await;
    assert_eq!(d.status, "REFUSED");

    s.stop.send(()).unwrap();
    s.handle.join().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_tcp_and_truncation_fallback() {
    if !dig_available() {
        return;
    }
    let s = start(loopback_cfg()).await;
    let addr = s.handle.udp_addr();

    let d = dig(addr, &["+tcp", "laptop.ts.example.com", "A"]).await;
    assert_eq!(d.answers(), [("A".into(), "100.64.0.1".into())]);

    // 2000 bytes of TXT: over UDP the server sets TC, dig retries over TCP by itself.
    let d = dig(addr, &["+noedns", "big.ts.example.com", "TXT"]).await;
    assert!(
        d.raw.contains("Truncated, retrying in TCP mode"),
        "{}",
        d.raw
    );
    assert_eq!(d.status, "NOERROR");
    let txt: String = d.answers()[0]
        .1
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    assert_eq!(txt, "0123456789".repeat(200));

    // With +ignore dig keeps the truncated UDP answer: TC set, nothing in it.
    let d = dig(
        addr,
        &["+ignore", "+bufsize=1232", "big.ts.example.com", "TXT"],
    )
    .await;
    assert!(d.flags.contains(&"tc".to_owned()), "{}", d.raw);

    s.stop.send(()).unwrap();
    s.handle.join().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_sees_renames_immediately() {
    if !dig_available() {
        return;
    }
    let s = start(loopback_cfg()).await;
    let addr = s.handle.udp_addr();
    assert_eq!(
        dig(addr, &["laptop.ts.example.com"]).await.status,
        "NOERROR"
    );

    s.tx.send_replace(Arc::new(RecordIndex::build(&zone(2, "desk")).unwrap()));
    let d = dig(addr, &["laptop.ts.example.com"]).await;
    assert_eq!(d.status, "NXDOMAIN");
    assert!(
        d.authority[0].contains(" 2 "),
        "serial bumped: {}",
        d.authority[0]
    );
    let d = dig(addr, &["-x", "100.64.0.1"]).await;
    assert_eq!(d.answers()[0].1, "desk.ts.example.com.");

    s.stop.send(()).unwrap();
    s.handle.join().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_refused_outside_allow_list_and_rate_limited() {
    if !dig_available() {
        return;
    }
    let tailnet_only = ServerConfig {
        allow: vec!["100.64.0.0/10".parse().unwrap()],
        ..loopback_cfg()
    };
    let s = start(tailnet_only).await;
    let d = dig(s.handle.udp_addr(), &["laptop.ts.example.com"]).await;
    assert_eq!(
        d.status, "REFUSED",
        "loopback is not allowed here: {}",
        d.raw
    );
    s.stop.send(()).unwrap();

    let limited = ServerConfig {
        rate_limit_qps: 1,
        burst: 2,
        ..loopback_cfg()
    };
    let s = start(limited).await;
    let addr = s.handle.udp_addr();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            dig(addr, &["+time=1", "laptop.ts.example.com"])
                .await
                .status,
        );
    }
    assert_eq!(&statuses[..2], ["NOERROR", "NOERROR"]);
    assert!(
        statuses[2..].iter().any(|st| st == "NO-RESPONSE"),
        "{statuses:?}"
    );
    s.stop.send(()).unwrap();
    s.handle.join().await.unwrap();
}

#[tokio::test]
async fn serve_rejects_empty_allow_list_and_busy_port() {
    let (_tx, rx) = watch::channel(Arc::new(RecordIndex::build(&zone(1, "laptop")).unwrap()));
    let cfg = ServerConfig {
        allow: vec![],
        ..loopback_cfg()
    };
    let err = serve(cfg, rx.clone(), Hooks::default(), std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::EmptyAllowList));

    let busy = std::net::UdpSocket::bind((IpAddr::V4(Ipv4Addr::LOCALHOST), 0)).unwrap();
    let cfg = ServerConfig {
        listen: busy.local_addr().unwrap(),
        ..loopback_cfg()
    };
    let err = serve(cfg, rx, Hooks::default(), std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Bind { .. }), "{err}");
}

/// Sends one datagram and waits briefly for a reply.
async fn udp_exchange(server: SocketAddr, payload: &[u8]) -> Option<Vec<u8>> {
    let sock = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    sock.send_to(payload, server).await.unwrap();
    let mut buf = vec![0u8; 65_535];
    let got =
        tokio::time::timeout(std::time::Duration::from_millis(300), sock.recv(&mut buf)).await;
    got.ok().map(|n| buf[..n.unwrap()].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_do_not_hurt() {
    use hickory_server::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
    use hickory_server::proto::rr::{Name, RecordType};

    let s = start(loopback_cfg()).await;
    let addr = s.handle.udp_addr();
    let mut good = Message::new(77, MessageType::Query, OpCode::Query);
    good.add_query(Query::query(
        Name::from_ascii("laptop.ts.example.com.").unwrap(),
        RecordType::A,
    ));
    let good = good.to_vec().unwrap();

    assert_eq!(
        udp_exchange(addr, &[1, 2, 3, 4, 5]).await,
        None,
        "shorter than a header: silence"
    );
    // Header says one question, none follows: FORMERR with the same id.
    let reply = udp_exchange(addr, &[0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    let reply = Message::from_vec(&reply).unwrap();
    assert_eq!(
        (reply.metadata.id, reply.metadata.response_code),
        (0xabcd, ResponseCode::FormErr)
    );
    // A response is never answered (no reflection loops).
    let mut response = good.clone();
    response[2] |= 0x80;
    assert_eq!(udp_exchange(addr, &response).await, None);
    // Oversized datagram (cut at 4096 bytes) with trailing junk after a valid question.
    let mut huge = good.clone();
    huge[11] = 200; // ARCOUNT claims records that are junk
    huge.resize(9000, 0xff);
    let reply = udp_exchange(addr, &huge)
        .await
        .map(|r| Message::from_vec(&r).unwrap());
    assert!(reply.is_none_or(|r| r.metadata.response_code == ResponseCode::FormErr));
    // Random junk of many sizes.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for len in (0..600).step_by(7) {
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let sock = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        sock.send_to(&junk, addr).await.unwrap();
    }
    // Garbage over TCP: a length prefix promising more than is sent, then close.
    let mut tcp = tokio::net::TcpStream::connect(s.handle.tcp_addr())
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut tcp, &[0xff, 0xff, 1, 2, 3])
        .await
        .unwrap();
    drop(tcp);
    // Still serving.
    let reply = Message::from_vec(&udp_exchange(addr, &good).await.unwrap()).unwrap();
    assert_eq!((reply.metadata.id, reply.answers.len()), (77, 1));

    s.stop.send(()).unwrap();
    s.handle.join().await.unwrap();
}

/// A TCP client must keep sending whole queries: a silent connection and one
/// trickling a query a byte at a time are closed after `tcp_timeout` (the
/// timer restarts per message, not per byte), one asking every 300 ms stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connections_without_progress_are_closed() {
    use hickory_server::proto::op::{Message, MessageType, OpCode, Query};
    use hickory_server::proto::rr::{Name, RecordType};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::{Duration, Instant, timeout};

    let tcp_timeout = Duration::from_millis(600);
    let s = start(ServerConfig {
        tcp_timeout,
        ..loopback_cfg()
    })
    .await;
    let addr = s.handle.tcp_addr();
    let mut q = Message::new(9, MessageType::Query, OpCode::Query);
    q.add_query(Query::query(
        Name::from_ascii("laptop.ts.example.com.").unwrap(),
        RecordType::A,
    ));
    let q = q.to_vec().unwrap();
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);

    // Reads until the server closes; None if still open after 5 s.
    async fn closed(s: &mut tokio::net::TcpStream) -> Option<Duration> {
        let start = Instant::now();
        let mut buf = [0u8; 512];
        loop {
            match timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
                Ok(Ok(_)) => {}
                Err(_) => return None,
            }
        }
    }

    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let t = closed(&mut silent).await.expect("silent connection kept");
    assert!(t >= tcp_timeout / 2, "closed after {t:?}");

    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    for b in &framed {
        if slow.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        start.elapsed() < framed.len() as u32 * Duration::from_millis(100),
        "the trickled query was read to the end"
    );
    closed(&mut slow).await.expect("trickling connection kept");

    let mut busy = tokio::net::TcpStream::connect(addr).await.unwrap();
    for _ in 0..6 {
        busy.write_all(&framed).await.unwrap();
        let mut len = [0u8; 2];
        timeout(Duration::from_secs(5), busy.read_exact(&mut len))
            .await
            .expect("answer in time")
            .expect("answered: the connection is still open");
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
        busy.read_exact(&mut answer).await.unwrap();
        assert_eq!(Message::from_vec(&answer).unwrap().metadata.id, 9);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    closed(&mut busy).await.expect("idle after its last query");

    s.stop.send(()).unwrap();
    s.handle.join().await.unwrap();
}
