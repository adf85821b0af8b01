//! Drives the handler with real wire bytes and decodes what it would send.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;

use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Message, MessageType, Query};
use hickory_server::proto::rr::{Name, RData};
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::zone_handler::MessageResponse;

use super::*;
use crate::dns::{ExtraRecord, NodeName, ZoneData, default_allow};

/// Records the encoded response, applying the same size cap hickory's UDP path does.
#[derive(Clone)]
struct Capture {
    udp: bool,
    sent: Arc<Mutex<Option<Vec<u8>>>>,
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let max = match (self.udp, response.edns()) {
            (false, _) => u16::MAX,
            (true, Some(edns)) => edns.max_payload(),
            (true, None) => 512,
        };
        let mut buf = Vec::new();
        let mut encoder = BinEncoder::new(&mut buf);
        encoder.set_max_size(max);
        let info = response.destructive_emit(&mut encoder)?;
        *self.sent.lock().unwrap() = Some(buf);
        Ok(info)
    }
}

fn handler(rate: u32, burst: u32) -> (Handler, watch::Sender<Arc<RecordIndex>>) {
    let (tx, rx) = watch::channel(Arc::new(zone(1, "laptop")));
    let handler = Handler {
        index: rx,
        allow: default_allow().into(),
        limiter: Arc::new(Limiter::new(rate, burst, 1024)),
        visibility: None,
        challenges: None,
    };
    (handler, tx)
}

fn zone(serial: u32, label: &str) -> RecordIndex {
    RecordIndex::build(&ZoneData {
        base_domain: "ts.example.com".into(),
        serial,
        ttl: 10,
        nodes: vec![NodeName {
            id: 1,
            label: label.into(),
            ipv4: Some(Ipv4Addr::new(100, 64, 0, 1)),
            ipv6: None,
        }],
        services: vec![],
        extra: vec![ExtraRecord::parse("big.ts.example.com", "TXT", &"t".repeat(3000)).unwrap()],
    })
    .unwrap()
}

fn query(name: &str, qtype: RecordType) -> Message {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m
}

async fn exchange(h: &Handler, src: &str, msg: &Message, udp: bool) -> Option<Message> {
    let bytes = msg.to_vec().unwrap();
    let src: SocketAddr = src.parse().unwrap();
    let protocol = if udp { Protocol::Udp } else { Protocol::Tcp };
    let request = Request::from_bytes(bytes, src, protocol).unwrap();
    let capture = Capture {
        udp,
        sent: Arc::default(),
    };
    h.handle_request::<_, TokioTime>(&request, capture.clone())
        .await;
    let sent = capture.sent.lock().unwrap().take();
    sent.map(|b| Message::from_vec(&b).unwrap())
}

#[tokio::test]
async fn authoritative_answer_without_recursion() {
    let (h, _tx) = handler(0, 0);
    let r = exchange(
        &h,
        "127.0.0.1:5000",
        &query("LAPTOP.ts.example.com.", RecordType::A),
        true,
    )
    .await
    .unwrap();
    assert_eq!(r.metadata.id, 0x1234);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.metadata.authoritative && !r.metadata.recursion_available);
    assert!(r.metadata.recursion_desired, "RD is copied");
    assert_eq!(
        r.answers[0].data,
        RData::A(Ipv4Addr::new(100, 64, 0, 1).into())
    );
}

#[tokio::test]
async fn refuses_outside_sources_and_zones() {
    let (h, _tx) = handler(0, 0);
    let q = query("laptop.ts.example.com.", RecordType::A);
    let r = exchange(&h, "192.0.2.1:5000", &q, true).await.unwrap();
    assert_eq!(
        (r.metadata.response_code, r.answers.len()),
        (ResponseCode::Refused, 0)
    );
    let r = exchange(&h, "[::ffff:127.0.0.1]:5000", &q, true)
        .await
        .unwrap();
    assert_eq!(
        r.metadata.response_code,
        ResponseCode::NoError,
        "v4-mapped loopback is loopback"
    );
    let r = exchange(
        &h,
        "100.64.0.5:53",
        &query("www.example.org.", RecordType::A),
        true,
    )
    .await
    .unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    assert!(!r.metadata.authoritative);
}

#[tokio::test]
async fn rejects_odd_requests() {
    let (h, _tx) = handler(0, 0);
    let mut q = query("laptop.ts.example.com.", RecordType::A);
    q.metadata.op_code = OpCode::Status;
    let r = exchange(&h, "127.0.0.1:5000", &q, true).await.unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::NotImp);

    let mut q = query("laptop.ts.example.com.", RecordType::A);
    q.add_query(Query::query(
        Name::from_ascii("x.ts.example.com.").unwrap(),
        RecordType::A,
    ));
    let r = exchange(&h, "127.0.0.1:5000", &q, true).await.unwrap();
    assert_eq!(
        r.metadata.response_code,
        ResponseCode::FormErr,
        "two questions"
    );

    let mut q = Message::new(1, MessageType::Query, OpCode::Query);
    q.metadata.recursion_desired = false;
    let r = exchange(&h, "127.0.0.1:5000", &q, true).await.unwrap();
    assert_eq!(
        r.metadata.response_code,
        ResponseCode::FormErr,
        "no question"
    );

    let r = exchange(
        &h,
        "127.0.0.1:5000",
        &query("ts.example.com.", RecordType::AXFR),
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        r.metadata.response_code,
        ResponseCode::Refused,
        "no zone transfers"
    );

    let mut q = query("laptop.ts.example.com.", RecordType::A);
    q.queries[0].set_query_class(DNSClass::CH);
    let r = exchange(&h, "127.0.0.1:5000", &q, true).await.unwrap();
    assert_eq!(
        r.metadata.response_code,
        ResponseCode::Refused,
        "CHAOS class"
    );

    let mut q = query("laptop.ts.example.com.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_version(1);
    q.set_edns(edns);
    let r = exchange(&h, "127.0.0.1:5000", &q, true).await.unwrap();
    // 16 is BADVERS (the decoder names it BADSIG, which shares the code).
    assert_eq!(
        u16::from(r.metadata.response_code),
        u16::from(ResponseCode::BADVERS)
    );
    assert!(r.edns.is_some());
}

#[tokio::test]
async fn udp_truncates_and_tcp_carries_everything() {
    let (h, _tx) = handler(0, 0);
    let q = query("big.ts.example.com.", RecordType::TXT);
    let r = exchange(&h, "127.0.0.1:5000", &q, true).await.unwrap();
    assert!(r.metadata.truncation, "3000-byte TXT cannot fit 512 bytes");
    assert!(r.answers.is_empty());

    let mut q_edns = q.clone();
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    q_edns.set_edns(edns);
    let r = exchange(&h, "127.0.0.1:5000", &q_edns, true).await.unwrap();
    assert!(
        r.metadata.truncation,
        "capped at {MAX_UDP_PAYLOAD} even if the client offers 4096"
    );
    assert_eq!(r.edns.unwrap().max_payload(), MAX_UDP_PAYLOAD);

    let r = exchange(&h, "127.0.0.1:5000", &q, false).await.unwrap();
    assert!(!r.metadata.truncation);
    let RData::TXT(txt) = &r.answers[0].data else {
        panic!("not TXT")
    };
    assert_eq!(txt.txt_data.iter().map(|s| s.len()).sum::<usize>(), 3000);
}

#[tokio::test]
async fn index_swap_applies_to_the_next_query() {
    let (h, tx) = handler(0, 0);
    let q = query("laptop.ts.example.com.", RecordType::A);
    let r = exchange(&h, "127.0.0.1:5000", &q, true).await.unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);

    tx.send_replace(Arc::new(zone(2, "desktop")));
    let r = exchange(&h, "127.0.0.1:5000", &q, true).await.unwrap();
    assert_eq!(
        r.metadata.response_code,
        ResponseCode::NXDomain,
        "renamed node is gone"
    );
    let RData::SOA(soa) = &r.authorities[0].data else {
        panic!("no SOA")
    };
    assert_eq!(soa.serial, 2);
    let r = exchange(
        &h,
        "127.0.0.1:5000",
        &query("desktop.ts.example.com.", RecordType::A),
        true,
    )
    .await
    .unwrap();
    assert_eq!(r.answers.len(), 1);
}

#[tokio::test]
async fn flood_is_dropped_per_source() {
    let (h, _tx) = handler(1, 5);
    let q = query("laptop.ts.example.com.", RecordType::A);
    let mut answered = 0;
    for _ in 0..50 {
        if exchange(&h, "100.64.0.7:5000", &q, true).await.is_some() {
            answered += 1;
        }
    }
    assert!(
        (5..=6).contains(&answered),
        "burst of 5 then ~1/s, got {answered}"
    );
    assert!(
        exchange(&h, "100.64.0.8:5000", &q, true).await.is_some(),
        "other source unaffected"
    );
}

#[tokio::test]
async fn truncated_or_garbage_questions_do_not_panic() {
    let (h, _tx) = handler(0, 0);
    // Valid header claiming one question, but the name runs off the end: hickory rejects it
    // before the handler (`from_bytes` fails), which is what the server turns into FORMERR.
    let mut bytes = query("laptop.ts.example.com.", RecordType::A)
        .to_vec()
        .unwrap();
    bytes.truncate(20);
    let src: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    assert!(Request::from_bytes(bytes, src, Protocol::Udp).is_err());
    // A name made of binary labels is still a name: NXDOMAIN, no panic.
    let mut q = Message::new(9, MessageType::Query, OpCode::Query);
    let weird = Name::from_labels([&[0u8, 255, 46][..], b"ts", b"example", b"com"]).unwrap();
    q.add_query(Query::query(weird, RecordType::A));
    let r = exchange(&h, "127.0.0.1:5000", &q, true).await.unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
}
