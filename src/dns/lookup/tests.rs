use std::sync::Arc;

use hickory_server::proto::rr::rdata::SOA;

use super::*;
use crate::dns::{ExtraRecord, NodeName, ServiceName, ZoneData};

fn node(id: u64, label: &str, v4: &str, v6: Option<&str>) -> NodeName {
    NodeName {
        id,
        label: label.into(),
        ipv4: Some(v4.parse().unwrap()),
        ipv6: v6.map(|s| s.parse().unwrap()),
    }
}

fn index() -> RecordIndex {
    let extra = [
        ("grafana.ts.example.com", "A", "100.64.0.2"),
        ("alias.ts.example.com", "CNAME", "laptop.ts.example.com"),
        ("ext.ts.example.com", "CNAME", "www.example.org"),
        ("dangling.ts.example.com", "CNAME", "missing.ts.example.com"),
        ("loop1.ts.example.com", "CNAME", "loop2.ts.example.com"),
        ("loop2.ts.example.com", "CNAME", "loop1.ts.example.com"),
        ("laptop.ts.example.com", "TXT", "hello"),
        (
            "_http._tcp.web.ts.example.com",
            "SRV",
            "10 5 80 web.ts.example.com",
        ),
        (
            "hidden-alias.ts.example.com",
            "CNAME",
            "server.ts.example.com",
        ),
    ];
    RecordIndex::build(&ZoneData {
        base_domain: "ts.example.com".into(),
        serial: 7,
        ttl: 30,
        nodes: vec![
            node(1, "laptop", "100.64.0.1", Some("fd7a:115c:a1e0::1")),
            node(2, "server", "100.64.0.2", Some("fd7a:115c:a1e0::2")),
        ],
        services: vec![ServiceName {
            label: "web".into(),
            addrs: vec!["100.100.1.80".parse().unwrap()],
        }],
        extra: extra
            .iter()
            .map(|(n, t, v)| ExtraRecord::parse(n, t, v).unwrap())
            .collect(),
    })
    .unwrap()
}

const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(100, 64, 0, 9));

fn ask<'a>(idx: &'a RecordIndex, name: &str, qtype: RecordType) -> Answer<'a> {
    idx.lookup(&Name::from_ascii(name).unwrap(), qtype, SRC, None)
}

/// `(owner, rdata)` of each answer, as text.
fn texts(records: &[&Record]) -> Vec<(String, String)> {
    records
        .iter()
        .map(|r| (r.name.to_string(), r.data.to_string()))
        .collect()
}

fn soa_of(a: &Answer<'_>) -> (String, u32) {
    let [soa] = a.authority.as_slice() else {
        panic!("authority: {:?}", a.authority)
    };
    let RData::SOA(SOA { serial, .. }) = &soa.data else {
        panic!("not SOA")
    };
    (soa.name.to_string(), *serial)
}

#[test]
fn node_addresses_case_insensitively() {
    let idx = index();
    let a = ask(&idx, "LapTop.TS.example.COM.", RecordType::A);
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert_eq!(
        texts(&a.answers),
        [("laptop.ts.example.com.".into(), "100.64.0.1".into())]
    );
    assert!(a.authority.is_empty());
    let a = ask(&idx, "laptop.ts.example.com.", RecordType::AAAA);
    assert_eq!(texts(&a.answers)[0].1, "fd7a:115c:a1e0::1");
    let a = ask(&idx, "web.ts.example.com.", RecordType::A);
    assert_eq!(texts(&a.answers)[0].1, "100.100.1.80");
}

#[test]
fn nodata_and_nxdomain_carry_the_soa() {
    let idx = index();
    let a = ask(&idx, "laptop.ts.example.com.", RecordType::MX);
    assert_eq!((a.rcode, a.answers.len()), (ResponseCode::NoError, 0));
    assert_eq!(soa_of(&a), ("ts.example.com.".into(), 7));
    let a = ask(&idx, "web.ts.example.com.", RecordType::AAAA);
    assert_eq!((a.rcode, a.answers.len()), (ResponseCode::NoError, 0));
    let a = ask(&idx, "nope.ts.example.com.", RecordType::A);
    assert_eq!((a.rcode, a.answers.len()), (ResponseCode::NXDomain, 0));
    assert_eq!(soa_of(&a), ("ts.example.com.".into(), 7));
    // Nothing exists below a node name.
    let a = ask(&idx, "x.laptop.ts.example.com.", RecordType::A);
    assert_eq!(a.rcode, ResponseCode::NXDomain);
    // Empty non-terminal: NODATA, not NXDOMAIN (RFC 8020).
    let a = ask(&idx, "_tcp.web.ts.example.com.", RecordType::A);
    assert_eq!((a.rcode, a.answers.len()), (ResponseCode::NoError, 0));
}

#[test]
fn apex_soa_ns_and_any() {
    let idx = index();
    let a = ask(&idx, "ts.example.com.", RecordType::SOA);
    assert_eq!(a.answers.len(), 1);
    assert!(
        texts(&a.answers)[0]
            .1
            .starts_with("ts.example.com. hostmaster.ts.example.com. 7 ")
    );
    let a = ask(&idx, "ts.example.com.", RecordType::NS);
    assert_eq!(
        texts(&a.answers),
        [("ts.example.com.".into(), "ts.example.com.".into())]
    );
    let a = ask(&idx, "ts.example.com.", RecordType::ANY);
    assert_eq!(a.answers[0].record_type(), RecordType::SOA);
    let a = ask(&idx, "ts.example.com.", RecordType::A);
    assert_eq!(
        (a.rcode, a.answers.len(), a.authority.len()),
        (ResponseCode::NoError, 0, 1)
    );
}

#[test]
fn extra_record_types() {
    let idx = index();
    let a = ask(&idx, "laptop.ts.example.com.", RecordType::TXT);
    assert_eq!(texts(&a.answers)[0].1, "hello");
    let a = ask(&idx, "_http._tcp.web.ts.example.com.", RecordType::SRV);
    assert_eq!(texts(&a.answers)[0].1, "10 5 80 web.ts.example.com.");
    let a = ask(&idx, "grafana.ts.example.com.", RecordType::A);
    assert_eq!(texts(&a.answers)[0].1, "100.64.0.2");
}

#[test]
fn any_returns_addresses_only() {
    let idx = index();
    let a = ask(&idx, "laptop.ts.example.com.", RecordType::ANY);
    let types: Vec<RecordType> = a.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(
        types,
        [RecordType::A, RecordType::AAAA],
        "TXT is not included"
    );
    let a = ask(&idx, "alias.ts.example.com.", RecordType::ANY);
    assert_eq!(a.answers[0].record_type(), RecordType::CNAME);
}

#[test]
fn cnames_are_chased_inside_the_zone_only() {
    let idx = index();
    let a = ask(&idx, "alias.ts.example.com.", RecordType::A);
    assert_eq!(
        texts(&a.answers),
        [
            (
                "alias.ts.example.com.".into(),
                "laptop.ts.example.com.".into()
            ),
            ("laptop.ts.example.com.".into(), "100.64.0.1".into())
        ]
    );
    let a = ask(&idx, "alias.ts.example.com.", RecordType::CNAME);
    assert_eq!(a.answers.len(), 1);
    let a = ask(&idx, "alias.ts.example.com.", RecordType::MX);
    assert_eq!(
        (a.rcode, a.answers.len(), a.authority.len()),
        (ResponseCode::NoError, 1, 1)
    );
    let a = ask(&idx, "ext.ts.example.com.", RecordType::A);
    assert_eq!(
        (a.rcode, a.answers.len(), a.authority.len()),
        (ResponseCode::NoError, 1, 0)
    );
    let a = ask(&idx, "dangling.ts.example.com.", RecordType::A);
    assert_eq!(
        (a.rcode, a.answers.len(), a.authority.len()),
        (ResponseCode::NXDomain, 1, 1)
    );
    let a = ask(&idx, "loop1.ts.example.com.", RecordType::A);
    assert_eq!(a.answers.len(), MAX_CNAME_CHAIN, "loops stop");
}

#[test]
fn ptr_records_in_both_reverse_zones() {
    let idx = index();
    let a = ask(&idx, "1.0.64.100.in-addr.arpa.", RecordType::PTR);
    assert_eq!(
        texts(&a.answers),
        [(
            "1.0.64.100.in-addr.arpa.".into(),
            "laptop.ts.example.com.".into()
        )]
    );
    let v6 = "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.e.1.a.c.5.1.1.a.7.d.f.IP6.ARPA.";
    let a = ask(&idx, v6, RecordType::PTR);
    assert_eq!(texts(&a.answers)[0].1, "server.ts.example.com.");
    let a = ask(&idx, "80.1.100.100.in-addr.arpa.", RecordType::PTR);
    assert_eq!(texts(&a.answers)[0].1, "web.ts.example.com.");
    // Existing address, other type: NODATA with the reverse zone's SOA.
    let a = ask(&idx, "1.0.64.100.in-addr.arpa.", RecordType::A);
    assert_eq!(
        (a.rcode, soa_of(&a).0.as_str()),
        (ResponseCode::NoError, "64.100.in-addr.arpa.")
    );
    let a = ask(&idx, "9.9.64.100.in-addr.arpa.", RecordType::PTR);
    assert_eq!(
        (a.rcode, soa_of(&a).0.as_str()),
        (ResponseCode::NXDomain, "64.100.in-addr.arpa.")
    );
    let a = ask(
        &idx,
        "1.1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa.",
        RecordType::PTR,
    );
    assert_eq!(soa_of(&a).0, "0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa.");
    assert_eq!(a.rcode, ResponseCode::NXDomain);
}

#[test]
fn reverse_zone_apex_partial_and_invalid_names() {
    let idx = index();
    let a = ask(&idx, "100.100.in-addr.arpa.", RecordType::SOA);
    assert_eq!(texts(&a.answers)[0].0, "100.100.in-addr.arpa.");
    let a = ask(&idx, "64.100.in-addr.arpa.", RecordType::NS);
    assert_eq!(texts(&a.answers)[0].1, "ts.example.com.");
    for partial in [
        "0.64.100.in-addr.arpa.",
        "0.0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa.",
    ] {
        let a = ask(&idx, partial, RecordType::PTR);
        assert_eq!(
            (a.rcode, a.answers.len()),
            (ResponseCode::NoError, 0),
            "{partial}"
        );
    }
    for invalid in [
        "x.0.64.100.in-addr.arpa.",
        "01.0.64.100.in-addr.arpa.",
        "a.1.0.64.100.in-addr.arpa.",
        "256.0.64.100.in-addr.arpa.",
    ] {
        let a = ask(&idx, invalid, RecordType::PTR);
        assert_eq!(a.rcode, ResponseCode::NXDomain, "{invalid}");
    }
}

#[test]
fn outside_our_zones_is_refused() {
    let idx = index();
    for name in [
        "example.org.",
        ".",
        "example.com.",
        "ts.example.com.evil.",
        "1.0.0.10.in-addr.arpa.",
        "1.0.63.100.in-addr.arpa.",
        "1.0.128.100.in-addr.arpa.",
        "100.in-addr.arpa.",
        "in-addr.arpa.",
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa.",
        "d.f.ip6.arpa.",
        "foo.arpa.",
    ] {
        let a = ask(&idx, name, RecordType::A);
        assert_eq!(a.rcode, ResponseCode::Refused, "{name}");
        assert!(a.answers.is_empty() && a.authority.is_empty());
    }
}

#[test]
fn visibility_hides_unreachable_nodes() {
    let idx = index();
    // Node 2 is only visible to itself (100.64.0.2).
    let vis: Visibility =
        Arc::new(|src, id| id != 2 || src == IpAddr::V4(Ipv4Addr::new(100, 64, 0, 2)));
    let from = |src: &str, name: &str, qtype| {
        let ans = idx.lookup(
            &Name::from_ascii(name).unwrap(),
            qtype,
            src.parse().unwrap(),
            Some(&vis),
        );
        (ans.rcode, ans.answers.len())
    };
    assert_eq!(
        from("100.64.0.1", "server.ts.example.com.", RecordType::A),
        (ResponseCode::NXDomain, 0)
    );
    assert_eq!(
        from("100.64.0.1", "2.0.64.100.in-addr.arpa.", RecordType::PTR),
        (ResponseCode::NXDomain, 0)
    );
    assert_eq!(
        from("100.64.0.1", "hidden-alias.ts.example.com.", RecordType::A),
        (ResponseCode::NXDomain, 1)
    );
    assert_eq!(
        from("100.64.0.1", "laptop.ts.example.com.", RecordType::A),
        (ResponseCode::NoError, 1)
    );
    assert_eq!(
        from("100.64.0.2", "server.ts.example.com.", RecordType::A),
        (ResponseCode::NoError, 1)
    );
    assert_eq!(
        from("100.64.0.2", "2.0.64.100.in-addr.arpa.", RecordType::PTR),
        (ResponseCode::NoError, 1)
    );
}

#[test]
fn reverse_query_classification() {
    let rq = |s: &str| reverse_query(&Name::from_ascii(s).unwrap());
    assert_eq!(
        rq("64.100.in-addr.arpa."),
        Some(ReverseQuery {
            zone: ReverseZone::V4(64),
            kind: ReverseKind::Apex
        })
    );
    assert_eq!(
        rq("4.3.127.100.in-addr.arpa."),
        Some(ReverseQuery {
            zone: ReverseZone::V4(127),
            kind: ReverseKind::Address("100.127.3.4".parse().unwrap())
        })
    );
    assert_eq!(
        rq("0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa.").map(|q| q.kind),
        Some(ReverseKind::Apex)
    );
    let full = "F.F.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa.";
    assert_eq!(
        rq(full).map(|q| q.kind),
        Some(ReverseKind::Address("fd7a:115c:a1e0::ff".parse().unwrap()))
    );
    assert_eq!(
        rq(&format!("0.{full}")).map(|q| q.kind),
        Some(ReverseKind::Invalid)
    );
    assert_eq!(
        rq("ff.0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa.").map(|q| q.kind),
        Some(ReverseKind::Invalid)
    );
    assert_eq!(rq("e.1.a.c.5.1.1.a.7.d.f.ip6.arpa."), None);
    assert_eq!(rq("064.100.in-addr.arpa."), None);
}
