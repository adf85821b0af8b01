//! The record index: every answer the server can give, prebuilt as hickory `Record`s.
//!
//! Assumptions: built rarely (once per World change, off the query path), read very often
//! from many tasks through an `Arc`, never mutated after `build`. Lookups are one hash probe
//! on the case-insensitive owner name (hickory's `Name` hashes and compares ignoring ASCII
//! case) or on the IP address for PTR; see `lookup.rs` for the answering rules.

use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::net::IpAddr;

use ipnet::IpNet;

use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_server::proto::rr::{Name, RData, Record};

use super::{Error, ExtraValue, TAILNET_V4, TAILNET_V6, ZoneData};

/// SOA timers (seconds). Nothing transfers this zone, so they only need to be sane.
const SOA_REFRESH: i32 = 3600;
const SOA_RETRY: i32 = 600;
const SOA_EXPIRE: i32 = 86_400;
/// Longest TXT character-string (RFC 1035 §3.3).
const TXT_CHUNK: usize = 255;

/// Immutable, prebuilt answers for one zone snapshot. Build with [`RecordIndex::build`] and
/// publish through the server's `watch` channel.
#[derive(Debug)]
pub struct RecordIndex {
    pub(super) apex: Name,
    pub(super) serial: u32,
    pub(super) soa: Record,
    pub(super) ns: Record,
    pub(super) names: HashMap<Name, NameEntry>,
    pub(super) ptrs: HashMap<IpAddr, PtrEntry>,
    /// SOA and NS for `64.100.in-addr.arpa` … `127.100.in-addr.arpa`, indexed by octet - 64.
    pub(super) rev4: Vec<(Record, Record)>,
    /// SOA and NS for the fd7a:115c:a1e0::/48 reverse zone.
    pub(super) rev6: (Record, Record),
}

/// All records owned by one name. An entry with no records is an empty non-terminal.
#[derive(Debug, Default)]
pub(super) struct NameEntry {
    /// Node id for the visibility filter; `None` means always visible.
    pub(super) owner: Option<u64>,
    pub(super) a: Vec<Record>,
    pub(super) aaaa: Vec<Record>,
    pub(super) cname: Option<Record>,
    pub(super) txt: Vec<Record>,
    pub(super) srv: Vec<Record>,
}

impl NameEntry {
    fn has_data(&self) -> bool {
        !self.a.is_empty()
            || !self.aaaa.is_empty()
            || self.cname.is_some()
            || !self.txt.is_empty()
            || !self.srv.is_empty()
    }
}

#[derive(Debug)]
pub(super) struct PtrEntry {
    pub(super) owner: Option<u64>,
    pub(super) record: Record,
}

impl RecordIndex {
    /// Builds the index. Fails on an invalid base domain or label, on two nodes/services with
    /// the same name, and on a CNAME that shares its name with other data; extra records outside
    /// the zone are skipped (logged at debug).
    pub fn build(z: &ZoneData) -> Result<RecordIndex, Error> {
        let apex =
            parse_name(&z.base_domain).map_err(|_| Error::BaseDomain(z.base_domain.clone()))?;
        if apex.is_root() {
            return Err(Error::BaseDomain(z.base_domain.clone()));
        }
        let ttl = z.ttl;
        let mut b = Builder {
            apex: apex.clone(),
            names: HashMap::with_capacity(z.nodes.len() + z.services.len() + z.extra.len() + 1),
            ptrs: HashMap::with_capacity(z.nodes.len() * 2),
        };
        // The apex always exists (it owns SOA/NS), so it must never answer NXDOMAIN.
        b.names.insert(apex.clone(), NameEntry::default());

        for node in &z.nodes {
            let name = b.label_name(&node.label)?;
            let entry = b.claim(&name, Some(node.id))?;
            if let Some(ip) = node.ipv4 {
                entry
                    .a
                    .push(Record::from_rdata(name.clone(), ttl, RData::A(A(ip))));
            }
            if let Some(ip) = node.ipv6 {
                entry
                    .aaaa
                    .push(Record::from_rdata(name.clone(), ttl, RData::AAAA(AAAA(ip))));
            }
            let addrs = node
                .ipv4
                .map(IpAddr::V4)
                .into_iter()
                .chain(node.ipv6.map(IpAddr::V6));
            for ip in addrs {
                b.add_ptr(ip, &name, Some(node.id), ttl);
            }
        }
        for svc in &z.services {
            let name = b.label_name(&svc.label)?;
            let entry = b.claim(&name, None)?;
            for ip in &svc.addrs {
                entry.push_addr(&name, *ip, ttl);
            }
            for ip in &svc.addrs {
                b.add_ptr(*ip, &name, None, ttl);
            }
        }
        for extra in &z.extra {
            let name = parse_name(&extra.name).map_err(|_| Error::Name(extra.name.clone()))?;
            if !apex.zone_of(&name) {
                tracing::debug!(name = %extra.name, "extra record outside the DNS zone; not served");
                continue;
            }
            let rdata = extra_rdata(&extra.value)?;
            let entry = b.names.entry(name.clone()).or_default();
            let record = Record::from_rdata(name.clone(), ttl, rdata);
            match &extra.value {
                ExtraValue::A(_) => entry.a.push(record),
                ExtraValue::Aaaa(_) => entry.aaaa.push(record),
                ExtraValue::Txt(_) => entry.txt.push(record),
                ExtraValue::Srv { .. } => entry.srv.push(record),
                ExtraValue::Cname(_) => {
                    if entry.has_data() {
                        return Err(Error::Conflict(extra.name.clone()));
                    }
                    entry.cname = Some(record);
                }
            }
            // A CNAME must be alone at its name (RFC 1034 §3.6.2); also the apex can't alias.
            if entry.cname.is_some() && (entry.has_data_besides_cname() || name == apex) {
                return Err(Error::Conflict(extra.name.clone()));
            }
            b.add_empty_non_terminals(&name);
        }

        let Builder { names, ptrs, .. } = b;
        let soa_for = |owner: Name| soa_record(owner, &apex, z.serial, ttl);
        let ns_for = |owner: Name| Record::from_rdata(owner, ttl, RData::NS(NS(apex.clone())));
        let rev4 = (64u8..=127)
            .map(|octet| {
                let owner = reverse_v4_apex(octet);
                (soa_for(owner.clone()), ns_for(owner))
            })
            .collect();
        let rev6_owner = reverse_v6_apex();
        Ok(RecordIndex {
            soa: soa_for(apex.clone()),
            ns: ns_for(apex.clone()),
            rev6: (soa_for(rev6_owner.clone()), ns_for(rev6_owner)),
            rev4,
            names,
            ptrs,
            serial: z.serial,
            apex,
        })
    }

    /// The zone apex (lower-case, absolute).
    pub fn apex(&self) -> String {
        self.apex.to_string()
    }

    /// The SOA serial of this snapshot.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// Number of owner names in the forward zone (including the apex and empty non-terminals).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when the zone holds only its apex.
    pub fn is_empty(&self) -> bool {
        self.names.len() <= 1
    }
}

impl NameEntry {
    fn has_data_besides_cname(&self) -> bool {
        !self.a.is_empty() || !self.aaaa.is_empty() || !self.txt.is_empty() || !self.srv.is_empty()
    }

    fn push_addr(&mut self, name: &Name, ip: IpAddr, ttl: u32) {
        match ip {
            IpAddr::V4(v4) => self
                .a
                .push(Record::from_rdata(name.clone(), ttl, RData::A(A(v4)))),
            IpAddr::V6(v6) => {
                self.aaaa
                    .push(Record::from_rdata(name.clone(), ttl, RData::AAAA(AAAA(v6))))
            }
        }
    }
}

struct Builder {
    apex: Name,
    names: HashMap<Name, NameEntry>,
    ptrs: HashMap<IpAddr, PtrEntry>,
}

impl Builder {
    /// `<label>.<apex>`, rejecting anything that is not exactly one label.
    fn label_name(&self, label: &str) -> Result<Name, Error> {
        let bad = || Error::Label(label.to_owned());
        let valid = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
        if !valid {
            return Err(bad());
        }
        let rel = Name::from_ascii(label).map_err(|_| bad())?;
        rel.append_domain(&self.apex)
            .map(|n| n.to_lowercase())
            .map_err(|_| bad())
    }

    /// Takes ownership of a node/service name; a second claim is a conflict.
    fn claim(&mut self, name: &Name, owner: Option<u64>) -> Result<&mut NameEntry, Error> {
        match self.names.entry(name.clone()) {
            MapEntry::Occupied(_) => Err(Error::Conflict(name.to_string())),
            MapEntry::Vacant(v) => Ok(v.insert(NameEntry {
                owner,
                ..NameEntry::default()
            })),
        }
    }

    /// PTRs only for tailnet addresses: those are the reverse zones we are authoritative for.
    /// The first claimant of an address wins (nodes come before services).
    fn add_ptr(&mut self, ip: IpAddr, target: &Name, owner: Option<u64>, ttl: u32) {
        if !(TAILNET_V4.contains(&ip) || TAILNET_V6.contains(&ip)) {
            return;
        }
        self.ptrs.entry(ip).or_insert_with(|| PtrEntry {
            owner,
            record: Record::from_rdata(reverse_name(ip), ttl, RData::PTR(PTR(target.clone()))),
        });
    }

    /// Registers every name between `name` and the apex so they answer NODATA, not NXDOMAIN.
    fn add_empty_non_terminals(&mut self, name: &Name) {
        let mut parent = name.base_name();
        while parent.num_labels() > self.apex.num_labels() {
            self.names.entry(parent.clone()).or_default();
            parent = parent.base_name();
        }
    }
}

/// Parses an absolute, lower-cased name; a missing trailing dot is accepted.
fn parse_name(s: &str) -> Result<Name, Error> {
    let mut name = Name::from_ascii(s.trim()).map_err(|_| Error::Name(s.to_owned()))?;
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

fn extra_rdata(value: &ExtraValue) -> Result<RData, Error> {
    Ok(match value {
        ExtraValue::A(ip) => RData::A(A(*ip)),
        ExtraValue::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
        ExtraValue::Cname(target) => RData::CNAME(CNAME(parse_name(target)?)),
        ExtraValue::Txt(text) if text.is_empty() => RData::TXT(TXT::from_bytes(vec![&[]])),
        ExtraValue::Txt(text) => {
            RData::TXT(TXT::from_bytes(text.as_bytes().chunks(TXT_CHUNK).collect()))
        }
        ExtraValue::Srv {
            priority,
            weight,
            port,
            target,
        } => RData::SRV(SRV::new(*priority, *weight, *port, parse_name(target)?)),
    })
}

fn soa_record(owner: Name, apex: &Name, serial: u32, ttl: u32) -> Record {
    // RNAME is a mailbox encoded as a name; it is never looked up, so it cannot collide.
    let rname = Name::from_ascii("hostmaster")
        .and_then(|h| h.append_domain(apex))
        .unwrap_or_else(|_| apex.clone());
    let minimum = ttl;
    let soa = SOA::new(
        apex.clone(),
        rname,
        serial,
        SOA_REFRESH,
        SOA_RETRY,
        SOA_EXPIRE,
        minimum,
    );
    Record::from_rdata(owner, ttl, RData::SOA(soa))
}

/// `<octet>.100.in-addr.arpa.`
pub(super) fn reverse_v4_apex(octet: u8) -> Name {
    let labels = [
        octet.to_string(),
        "100".into(),
        "in-addr".into(),
        "arpa".into(),
    ];
    Name::from_labels(labels.iter().map(|l| l.as_bytes())).unwrap_or_else(|_| Name::root())
}

/// `0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa.` (fd7a:115c:a1e0::/48).
pub(super) fn reverse_v6_apex() -> Name {
    let IpNet::V6(net) = TAILNET_V6 else {
        return Name::root();
    };
    let nibbles = nibbles(net.addr());
    let labels = nibbles[..12]
        .iter()
        .rev()
        .map(|n| hex_nibble(*n))
        .collect::<Vec<_>>();
    let labels = labels
        .iter()
        .map(|s| s.as_bytes())
        .chain([&b"ip6"[..], b"arpa"]);
    Name::from_labels(labels).unwrap_or_else(|_| Name::root())
}

fn nibbles(ip: std::net::Ipv6Addr) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in ip.octets().iter().enumerate() {
        out[2 * i] = byte >> 4;
        out[2 * i + 1] = byte & 0x0f;
    }
    out
}

fn hex_nibble(n: u8) -> String {
    format!("{n:x}")
}

/// The reverse-lookup owner name of an address.
pub(super) fn reverse_name(ip: IpAddr) -> Name {
    let labels: Vec<String> = match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            [o[3], o[2], o[1], o[0]]
                .iter()
                .map(u8::to_string)
                .chain(["in-addr".into(), "arpa".into()])
                .collect()
        }
        IpAddr::V6(v6) => nibbles(v6)
            .iter()
            .rev()
            .map(|n| hex_nibble(*n))
            .chain(["ip6".into(), "arpa".into()])
            .collect(),
    };
    Name::from_labels(labels.iter().map(|l| l.as_bytes())).unwrap_or_else(|_| Name::root())
}

#[cfg(test)]
mod tests;
