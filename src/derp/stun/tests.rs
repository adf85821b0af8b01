use super::*;

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    hex::decode(s).expect("hex")
}

/// A request exactly as Tailscale's `stun.Request` builds it for transaction ID
/// 01..0c: SOFTWARE "tailnode" then FINGERPRINT (computed independently with zlib).
const TAILSCALE_REQUEST: &str = "0001 0014 2112a442 0102030405060708090a0b0c \
     8022 0008 7461696c6e6f6465 8028 0004 b32c370f";

/// RFC 5769 §2.1 sample request (SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME,
/// MESSAGE-INTEGRITY, FINGERPRINT).
const RFC5769_REQUEST: &str = "00010058 2112a442 b7e7a701 bc34d686 fa87dfae \
     80220010 5354554e 20746573 7420636c 69656e74 00240004 6e0001ff \
     80290008 932ff9b1 51263b36 00060009 6576746a 3a683676 59202020 \
     00080014 9aeaa70c bfd8cb56 781ef2b5 b2d3f249 c1b571a2 80280004 e57a3bcf";

const RFC5769_TX: [u8; 12] = [
    0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
];

#[test]
fn crc32_check_value() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
}

#[test]
fn parses_tailscale_request_byte_for_byte() {
    let req = unhex(TAILSCALE_REQUEST);
    assert_eq!(req.len(), 40);
    assert_eq!(
        parse_request(&req),
        Some(TxId([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]))
    );
}

/// Regression: well-formed requests from other software used to be answered,
/// which made the port a reflector (Tailscale's server answers only its own).
#[test]
fn only_tailscale_requests_are_answered() {
    let cases = [
        (
            "bare 20-byte request",
            "0001 0000 2112a442 0102030405060708090a0b0c",
        ),
        (
            "SOFTWARE tailnode without FINGERPRINT",
            "0001 000c 2112a442 0102030405060708090a0b0c 8022 0008 7461696c6e6f6465",
        ),
        // RFC 5769's sample: valid, fingerprinted, but SOFTWARE "STUN test client".
        ("other SOFTWARE", RFC5769_REQUEST),
    ];
    for (what, hex) in cases {
        assert_eq!(parse_request(&unhex(hex)), None, "{what}");
    }
    // FINGERPRINT only.
    let mut fp_only = unhex("0001 0008 2112a442 0102030405060708090a0b0c 8028 0004 00000000");
    let fp = crc32(&fp_only[..20]) ^ FINGERPRINT_XOR;
    fp_only[24..28].copy_from_slice(&fp.to_be_bytes());
    assert_eq!(parse_request(&fp_only), None, "no SOFTWARE");
    // The builder below matches the captured bytes; with it, the RFC sample's
    // transaction parses once the request says it is Tailscale's.
    assert_eq!(
        tailscale_request([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
        unhex(TAILSCALE_REQUEST)
    );
    assert_eq!(
        parse_request(&tailscale_request(RFC5769_TX)),
        Some(TxId(RFC5769_TX))
    );
}

/// A request built the way `stun.Request` builds one, for `tx`.
fn tailscale_request(tx: [u8; 12]) -> Vec<u8> {
    let mut b = unhex("0001 0014 2112a442");
    b.extend_from_slice(&tx);
    b.extend_from_slice(b"\x80\x22\x00\x08tailnode");
    let fp = crc32(&b) ^ FINGERPRINT_XOR;
    b.extend_from_slice(&[0x80, 0x28, 0x00, 0x04]);
    b.extend_from_slice(&fp.to_be_bytes());
    b
}

#[test]
fn rejects_malformed_requests() {
    let good = unhex(TAILSCALE_REQUEST);
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();

    let mut bad_fp = good.clone();
    bad_fp[39] ^= 1;
    cases.push(("bad fingerprint", bad_fp));

    let mut tampered = good.clone();
    tampered[30] ^= 1; // inside SOFTWARE: fingerprint no longer matches
    cases.push(("tampered body", tampered));

    let mut cookie = good.clone();
    cookie[4] = 0;
    cases.push(("wrong cookie", cookie));

    let mut response = good.clone();
    response[0..2].copy_from_slice(&[0x01, 0x01]);
    cases.push(("not a request", response));

    let mut long_len = good.clone();
    long_len[3] = 0x18;
    cases.push(("length beyond datagram", long_len));

    cases.push(("truncated", good[..36].to_vec()));
    cases.push(("short header", good[..19].to_vec()));

    let mut trailing = good.clone();
    trailing.extend_from_slice(&[0, 0, 0, 0]);
    cases.push(("bytes after length", trailing));

    // FINGERPRINT followed by another attribute.
    let mut fp_not_last = unhex(
        "0001 0014 2112a442 0102030405060708090a0b0c 8028 0004 00000000 8022 0008 7461696c6e6f6465",
    );
    let fp = crc32(&fp_not_last[..20]) ^ FINGERPRINT_XOR;
    fp_not_last[24..28].copy_from_slice(&fp.to_be_bytes());
    cases.push(("fingerprint not last", fp_not_last));

    // Attribute whose padded length overruns the message.
    cases.push((
        "attribute overrun",
        unhex("0001 0008 2112a442 0102030405060708090a0b0c 8022 0005 41424344"),
    ));
    // Length that is not a multiple of four.
    cases.push((
        "unaligned length",
        unhex("0001 0002 2112a442 0102030405060708090a0b0c 0000"),
    ));

    for (what, b) in cases {
        assert_eq!(parse_request(&b), None, "{what}");
    }
}

#[test]
fn ipv4_response_matches_rfc5769() {
    let addr: SocketAddr = "192.0.2.1:32853".parse().expect("addr");
    let resp = build_response(TxId(RFC5769_TX), addr);
    let mut want = unhex("0101 000c 2112a442");
    want.extend_from_slice(&RFC5769_TX);
    want.extend_from_slice(&unhex("0020 0008 0001 a147 e112a643"));
    assert_eq!(resp, want);
}

#[test]
fn ipv6_response_matches_rfc5769() {
    let addr: SocketAddr = "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
        .parse()
        .expect("addr");
    let resp = build_response(TxId(RFC5769_TX), addr);
    let mut want = unhex("0101 0018 2112a442");
    want.extend_from_slice(&RFC5769_TX);
    want.extend_from_slice(&unhex(
        "0020 0014 0002 a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9",
    ));
    assert_eq!(resp, want);
}

#[test]
fn v4_mapped_source_is_reported_as_v4() {
    let mapped: SocketAddr = "[::ffff:192.0.2.1]:32853".parse().expect("addr");
    let plain: SocketAddr = "192.0.2.1:32853".parse().expect("addr");
    assert_eq!(
        build_response(TxId(RFC5769_TX), mapped),
        build_response(TxId(RFC5769_TX), plain)
    );
}

/// Decodes XOR-MAPPED-ADDRESS the way a client does (independently of build_response).
fn decode_response(b: &[u8], tx: &[u8; 12]) -> SocketAddr {
    assert_eq!(&b[0..2], &[0x01, 0x01]);
    assert_eq!(&b[8..20], tx);
    assert_eq!(&b[20..22], &[0x00, 0x20]);
    let port = u16::from_be_bytes([b[26], b[27]]) ^ 0x2112;
    let mut mask = vec![0x21, 0x12, 0xA4, 0x42];
    mask.extend_from_slice(tx);
    let raw: Vec<u8> = b[28..].iter().zip(&mask).map(|(a, m)| a ^ m).collect();
    let ip = match b[25] {
        1 => IpAddr::from(<[u8; 4]>::try_from(raw.as_slice()).expect("v4")),
        2 => IpAddr::from(<[u8; 16]>::try_from(raw.as_slice()).expect("v6")),
        f => panic!("family {f}"),
    };
    SocketAddr::new(ip, port)
}

async fn round_trip(bind: &str) -> Option<()> {
    let server = UdpSocket::bind(bind).await.ok()?;
    let server_addr = server.local_addr().ok()?;
    let task = tokio::spawn(serve(server));
    let client = UdpSocket::bind(bind).await.ok()?;
    let me = client.local_addr().ok()?;

    // Garbage and a bare (non-Tailscale) binding request first: they must get no
    // reply, so the first reply is the real one.
    client
        .send_to(b"GET / HTTP/1.1\r\n\r\n", server_addr)
        .await
        .ok()?;
    let bare = unhex("0001 0000 2112a442 aaaaaaaaaaaaaaaaaaaaaaaa");
    client.send_to(&bare, server_addr).await.ok()?;
    let req = unhex(TAILSCALE_REQUEST);
    client.send_to(&req, server_addr).await.ok()?;
    let mut buf = [0u8; 256];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
        .await
        .expect("reply in time")
        .expect("recv");
    assert_eq!(from, server_addr, "reply comes from the STUN socket");
    assert_eq!(
        decode_response(&buf[..n], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
        me
    );
    task.abort();
    Some(())
}

#[tokio::test]
async fn serves_ipv4_over_loopback() {
    round_trip("127.0.0.1:0").await.expect("IPv4 loopback");
}

#[tokio::test]
async fn serves_ipv6_over_loopback() {
    // Some sandboxes have no ::1; skip rather than fail there.
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        return;
    }
    round_trip("[::1]:0").await.expect("IPv6 loopback");
}
