use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_server::proto::rr::{Name, RData, RecordType};

use super::*;
use crate::dns::{ExtraRecord, NodeName, ServiceName};

pub(crate) fn node(id: u64, label: &str, v4: &str, v6: Option<&str>) -> NodeName {
    NodeName {
        id,
        label: label.into(),
        ipv4: Some(v4.parse().unwrap()),
        ipv6: v6.map(|s| s.parse().unwrap()),
    }
}

fn extra(name: &str, kind: &str, value: &str) -> ExtraRecord {
    ExtraRecord::parse(name, kind, value).unwrap()
}

fn zone() -> ZoneData {
    ZoneData {
        base_domain: "TS.Example.com".into(),
        serial: 3,
        ttl: 60,
        nodes: vec![
            node(1, "laptop", "100.64.0.1", Some("fd7a:115c:a1e0::1")),
            node(2, "outside-ptr", "10.0.0.2", None),
        ],
        services: vec![ServiceName {
            label: "web".into(),
            addrs: vec![
                "100.100.0.80".parse().unwrap(),
                "fd7a:115c:a1e0::50".parse().unwrap(),
            ],
        }],
        extra: vec![extra(
            "_http._tcp.web.ts.example.com.",
            "SRV",
            "1 1 80 web.ts.example.com",
        )],
    }
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

#[test]
fn builds_names_ptrs_and_empty_non_terminals() {
    let idx = RecordIndex::build(&zone()).unwrap();
    assert_eq!(idx.apex(), "ts.example.com.");
    assert_eq!(idx.serial(), 3);
    // apex, laptop, outside-ptr, web, _http._tcp.web, _tcp.web
    assert_eq!(idx.len(), 6);
    let laptop = &idx.names[&name("LAPTOP.ts.example.com.")];
    assert_eq!(laptop.owner, Some(1));
    assert_eq!(laptop.a[0].data, RData::A(A(Ipv4Addr::new(100, 64, 0, 1))));
    assert_eq!(laptop.a[0].ttl, 60);
    assert_eq!(laptop.aaaa.len(), 1);
    let ent = &idx.names[&name("_tcp.web.ts.example.com.")];
    assert!(!ent.has_data() && ent.owner.is_none());
    assert_eq!(idx.names[&name("web.ts.example.com.")].a.len(), 1);
    // PTRs only for tailnet addresses.
    assert_eq!(idx.ptrs.len(), 4);
    assert!(
        !idx.ptrs
            .contains_key(&"10.0.0.2".parse::<IpAddr>().unwrap())
    );
    let ptr = &idx.ptrs[&"fd7a:115c:a1e0::1".parse::<IpAddr>().unwrap()];
    assert_eq!(ptr.owner, Some(1));
    assert_eq!(
        ptr.record.data,
        RData::PTR(PTR(name("laptop.ts.example.com.")))
    );
}

#[test]
fn soa_and_ns_point_at_the_apex() {
    let idx = RecordIndex::build(&zone()).unwrap();
    let RData::SOA(soa) = &idx.soa.data else {
        panic!("not a SOA")
    };
    assert_eq!(soa.mname, name("ts.example.com."));
    assert_eq!(soa.rname, name("hostmaster.ts.example.com."));
    assert_eq!((soa.serial, soa.minimum), (3, 60));
    assert_eq!(idx.ns.record_type(), RecordType::NS);
    assert_eq!(idx.rev4.len(), 64);
    assert_eq!(idx.rev4[0].0.name, name("64.100.in-addr.arpa."));
    assert_eq!(idx.rev4[63].1.name, name("127.100.in-addr.arpa."));
    assert_eq!(idx.rev6.0.name, name("0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa."));
}

#[test]
fn reverse_names() {
    assert_eq!(
        reverse_name(IpAddr::V4(Ipv4Addr::new(100, 64, 1, 2))),
        name("2.1.64.100.in-addr.arpa.")
    );
    let v6: Ipv6Addr = "fd7a:115c:a1e0::1:2".parse().unwrap();
    assert_eq!(
        reverse_name(IpAddr::V6(v6)),
        name("2.0.0.0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa.")
    );
}

#[test]
fn long_txt_is_split_into_character_strings() {
    let mut z = zone();
    z.extra = vec![
        extra("big.ts.example.com", "TXT", &"x".repeat(600)),
        extra("e.ts.example.com", "TXT", ""),
    ];
    let idx = RecordIndex::build(&z).unwrap();
    let RData::TXT(txt) = &idx.names[&name("big.ts.example.com.")].txt[0].data else {
        panic!("not TXT")
    };
    let lens: Vec<usize> = txt.txt_data.iter().map(|s| s.len()).collect();
    assert_eq!(lens, [255, 255, 90]);
    let RData::TXT(empty) = &idx.names[&name("e.ts.example.com.")].txt[0].data else {
        panic!("not TXT")
    };
    assert_eq!(empty.txt_data.len(), 1);
}

#[test]
fn out_of_zone_extras_are_skipped() {
    let mut z = zone();
    z.extra = vec![extra("grafana.example.org", "A", "100.64.9.9")];
    let idx = RecordIndex::build(&z).unwrap();
    assert!(!idx.names.contains_key(&name("grafana.example.org.")));
    assert_eq!(idx.len(), 4);
}

#[test]
fn rejects_bad_input() {
    let bad_base = ZoneData {
        base_domain: ".".into(),
        ..zone()
    };
    assert!(matches!(
        RecordIndex::build(&bad_base),
        Err(Error::BaseDomain(_))
    ));
    let bad_base = ZoneData {
        base_domain: "a..b".into(),
        ..zone()
    };
    assert!(matches!(
        RecordIndex::build(&bad_base),
        Err(Error::BaseDomain(_))
    ));

    for label in ["", "a.b", "has space", &"x".repeat(64), "ünï"] {
        let mut z = zone();
        z.nodes[0].label = label.to_string();
        assert!(
            matches!(RecordIndex::build(&z), Err(Error::Label(_))),
            "{label:?}"
        );
    }

    let mut z = zone();
    z.nodes.push(node(9, "Laptop", "100.64.0.9", None));
    assert!(
        matches!(RecordIndex::build(&z), Err(Error::Conflict(_))),
        "case-insensitive duplicate"
    );

    let mut z = zone();
    z.services[0].label = "laptop".into();
    assert!(
        matches!(RecordIndex::build(&z), Err(Error::Conflict(_))),
        "service vs node"
    );

    for extras in [
        vec![extra(
            "laptop.ts.example.com",
            "CNAME",
            "web.ts.example.com",
        )],
        vec![
            extra("a.ts.example.com", "CNAME", "web.ts.example.com"),
            extra("a.ts.example.com", "TXT", "x"),
        ],
        vec![
            extra("a.ts.example.com", "CNAME", "web.ts.example.com"),
            extra("a.ts.example.com", "CNAME", "laptop.ts.example.com"),
        ],
        vec![extra("ts.example.com", "CNAME", "example.org")],
    ] {
        let z = ZoneData {
            extra: extras.clone(),
            ..zone()
        };
        assert!(
            matches!(RecordIndex::build(&z), Err(Error::Conflict(_))),
            "{extras:?}"
        );
    }

    let z = ZoneData {
        extra: vec![extra("a.ts.example.com", "CNAME", "bad..name")],
        ..zone()
    };
    assert!(matches!(RecordIndex::build(&z), Err(Error::Name(_))));
}

#[test]
fn extra_records_may_add_to_node_names() {
    let mut z = zone();
    z.extra
        .push(extra("laptop.ts.example.com", "TXT", "owner=alice"));
    z.extra
        .push(extra("laptop.ts.example.com", "A", "100.64.0.77"));
    let idx = RecordIndex::build(&z).unwrap();
    let laptop = &idx.names[&name("laptop.ts.example.com.")];
    assert_eq!(
        (laptop.a.len(), laptop.txt.len(), laptop.owner),
        (2, 1, Some(1))
    );
}

#[test]
fn builds_ten_thousand_names_quickly() {
    let nodes = (0..10_000u32)
        .map(|i| NodeName {
            id: u64::from(i),
            label: format!("node-{i}"),
            ipv4: Some(Ipv4Addr::from(0x6440_0000 + i)),
            ipv6: Some(Ipv6Addr::from(0xfd7a_115c_a1e0_u128 << 80 | u128::from(i))),
        })
        .collect();
    let z = ZoneData {
        base_domain: "ts.net".into(),
        serial: 1,
        ttl: 5,
        nodes,
        ..ZoneData::default()
    };
    let start = std::time::Instant::now();
    let idx = RecordIndex::build(&z).unwrap();
    assert_eq!((idx.len(), idx.ptrs.len()), (10_001, 20_000));
    // Debug builds included; the lead rebuilds on every World change.
    assert!(
        start.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}
