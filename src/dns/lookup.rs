//! Answering one question from a [`RecordIndex`]: pure, no IO, no hickory server types.
//!
//! Rules (see the module doc of `dns` for the reasoning): authoritative answers for the forward
//! zone and the tailnet reverse zones, NXDOMAIN/NODATA with the zone's SOA in the authority
//! section, in-zone CNAME chasing (bounded), REFUSED for anything outside our zones.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::{Name, RData, Record, RecordType};

use super::Visibility;
use super::records::{NameEntry, RecordIndex};

/// Longest CNAME chain followed inside the zone; stops loops.
const MAX_CNAME_CHAIN: usize = 8;
/// Nibbles of fd7a:115c:a1e0::/48, most significant first.
const TAILNET_V6_NIBBLES: [u8; 12] = [0xf, 0xd, 0x7, 0xa, 0x1, 0x1, 0x5, 0xc, 0xa, 0x1, 0xe, 0x0];

/// The outcome for one question: response code plus borrowed answer and authority records.
#[derive(Debug)]
pub(super) struct Answer<'a> {
    pub(super) rcode: ResponseCode,
    pub(super) answers: Vec<&'a Record>,
    pub(super) authority: Vec<&'a Record>,
}

impl<'a> Answer<'a> {
    pub(super) fn refused() -> Self {
        Self {
            rcode: ResponseCode::Refused,
            answers: Vec::new(),
            authority: Vec::new(),
        }
    }

    fn nxdomain(soa: &'a Record) -> Self {
        Self {
            rcode: ResponseCode::NXDomain,
            answers: Vec::new(),
            authority: vec![soa],
        }
    }

    /// NOERROR with the given answers; an empty answer (NODATA) carries the SOA instead.
    fn data(answers: Vec<&'a Record>, soa: &'a Record) -> Self {
        let authority = if answers.is_empty() {
            vec![soa]
        } else {
            Vec::new()
        };
        Self {
            rcode: ResponseCode::NoError,
            answers,
            authority,
        }
    }
}

impl RecordIndex {
    /// Answers `qname`/`qtype` as seen by `src`. `vis` hides nodes `src` may not learn about.
    pub(super) fn lookup(
        &self,
        qname: &Name,
        qtype: RecordType,
        src: IpAddr,
        vis: Option<&Visibility>,
    ) -> Answer<'_> {
        let visible = |owner: Option<u64>| match (owner, vis) {
            (Some(id), Some(allowed)) => allowed(src, id),
            _ => true,
        };
        if self.apex.zone_of(qname) {
            return self.lookup_forward(qname, qtype, &visible);
        }
        match reverse_query(qname) {
            Some(rev) => self.lookup_reverse(rev, qtype, &visible),
            None => Answer::refused(),
        }
    }

    fn lookup_forward(
        &self,
        qname: &Name,
        qtype: RecordType,
        visible: &dyn Fn(Option<u64>) -> bool,
    ) -> Answer<'_> {
        let get = |name: &Name| self.names.get(name).filter(|e| visible(e.owner));
        let Some(mut entry) = get(qname) else {
            return Answer::nxdomain(&self.soa);
        };
        if *qname == self.apex {
            match qtype {
                RecordType::SOA | RecordType::ANY => {
                    return Answer::data(vec![&self.soa], &self.soa);
                }
                RecordType::NS => return Answer::data(vec![&self.ns], &self.soa),
                _ => {}
            }
        }
        let mut answers = Vec::new();
        for _ in 0..MAX_CNAME_CHAIN {
            let Some(cname) = entry.cname.as_ref().filter(|_| qtype != RecordType::CNAME) else {
                break;
            };
            answers.push(cname);
            let RData::CNAME(target) = &cname.data else {
                break;
            };
            if !self.apex.zone_of(&target.0) {
                // The resolver follows out-of-zone targets itself.
                return Answer {
                    rcode: ResponseCode::NoError,
                    answers,
                    authority: Vec::new(),
                };
            }
            match get(&target.0) {
                Some(next) => entry = next,
                // RFC 6604: the rcode describes the last name in the chain.
                None => {
                    return Answer {
                        rcode: ResponseCode::NXDomain,
                        answers,
                        authority: vec![&self.soa],
                    };
                }
            }
        }
        let before = answers.len();
        select(entry, qtype, &mut answers);
        if answers.len() == before {
            // NODATA (possibly after a CNAME chain): the SOA lets resolvers cache the absence.
            return Answer {
                rcode: ResponseCode::NoError,
                answers,
                authority: vec![&self.soa],
            };
        }
        Answer::data(answers, &self.soa)
    }

    fn lookup_reverse(
        &self,
        rev: ReverseQuery,
        qtype: RecordType,
        visible: &dyn Fn(Option<u64>) -> bool,
    ) -> Answer<'_> {
        let (zone_soa, zone_ns) = match rev.zone {
            ReverseZone::V4(octet) => match self.rev4.get(usize::from(octet.wrapping_sub(64))) {
                Some((soa, ns)) => (soa, ns),
                None => return Answer::refused(),
            },
            ReverseZone::V6 => (&self.rev6.0, &self.rev6.1),
        };
        match rev.kind {
            ReverseKind::Apex => match qtype {
                RecordType::SOA | RecordType::ANY => Answer::data(vec![zone_soa], zone_soa),
                RecordType::NS => Answer::data(vec![zone_ns], zone_soa),
                _ => Answer::data(Vec::new(), zone_soa),
            },
            // Could have addresses below it: claim nothing, answer NODATA.
            ReverseKind::Partial => Answer::data(Vec::new(), zone_soa),
            ReverseKind::Invalid => Answer::nxdomain(zone_soa),
            ReverseKind::Address(ip) => match self.ptrs.get(&ip).filter(|p| visible(p.owner)) {
                None => Answer::nxdomain(zone_soa),
                Some(ptr) if matches!(qtype, RecordType::PTR | RecordType::ANY) => {
                    Answer::data(vec![&ptr.record], zone_soa)
                }
                Some(_) => Answer::data(Vec::new(), zone_soa),
            },
        }
    }
}

/// Appends the records of `entry` that answer `qtype`.
fn select<'a>(entry: &'a NameEntry, qtype: RecordType, out: &mut Vec<&'a Record>) {
    match qtype {
        RecordType::A => out.extend(&entry.a),
        RecordType::AAAA => out.extend(&entry.aaaa),
        RecordType::TXT => out.extend(&entry.txt),
        RecordType::SRV => out.extend(&entry.srv),
        RecordType::CNAME => out.extend(&entry.cname),
        RecordType::ANY => {
            // RFC 8482: one representative set, not everything at the name.
            if !entry.a.is_empty() || !entry.aaaa.is_empty() {
                out.extend(entry.a.iter().chain(&entry.aaaa));
            } else if let Some(cname) = &entry.cname {
                out.push(cname);
            } else if !entry.txt.is_empty() {
                out.extend(&entry.txt);
            } else {
                out.extend(&entry.srv);
            }
        }
        _ => {}
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum ReverseZone {
    /// `<octet>.100.in-addr.arpa`, octet in 64..=127.
    V4(u8),
    /// The fd7a:115c:a1e0::/48 zone.
    V6,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum ReverseKind {
    Apex,
    /// Between the apex and a full address, all labels valid.
    Partial,
    /// A complete address.
    Address(IpAddr),
    /// Bad labels, or deeper than an address: cannot exist.
    Invalid,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) struct ReverseQuery {
    pub(super) zone: ReverseZone,
    pub(super) kind: ReverseKind,
}

/// Classifies a name inside one of our reverse zones; `None` if it is outside all of them.
pub(super) fn reverse_query(qname: &Name) -> Option<ReverseQuery> {
    let mut labels = qname.iter().rev();
    if !labels.next()?.eq_ignore_ascii_case(b"arpa") {
        return None;
    }
    let family = labels.next()?;
    if family.eq_ignore_ascii_case(b"in-addr") {
        reverse_v4(labels)
    } else if family.eq_ignore_ascii_case(b"ip6") {
        reverse_v6(labels)
    } else {
        None
    }
}

/// `labels` yields the labels left of `in-addr.arpa`, rightmost first.
fn reverse_v4<'a>(mut labels: impl Iterator<Item = &'a [u8]>) -> Option<ReverseQuery> {
    if octet(labels.next()?)? != 100 {
        return None;
    }
    let second = octet(labels.next()?)?;
    if !(64..=127).contains(&second) {
        return None;
    }
    let zone = ReverseZone::V4(second);
    let rest: Vec<Option<u8>> = labels.map(octet).collect();
    let kind = match rest.as_slice() {
        [] => ReverseKind::Apex,
        _ if rest.iter().any(Option::is_none) => ReverseKind::Invalid,
        [Some(_)] => ReverseKind::Partial,
        [Some(third), Some(fourth)] => {
            ReverseKind::Address(IpAddr::V4(Ipv4Addr::new(100, second, *third, *fourth)))
        }
        _ => ReverseKind::Invalid,
    };
    Some(ReverseQuery { zone, kind })
}

/// `labels` yields the labels left of `ip6.arpa`, rightmost (most significant nibble) first.
fn reverse_v6<'a>(labels: impl Iterator<Item = &'a [u8]>) -> Option<ReverseQuery> {
    let mut nibbles = [0u8; 32];
    let mut count = 0usize;
    let mut invalid = false;
    for label in labels {
        match nibble(label) {
            Some(n) if count < 32 => nibbles[count] = n,
            _ if count < TAILNET_V6_NIBBLES.len() => return None,
            _ => invalid = true,
        }
        count += 1;
        if count == TAILNET_V6_NIBBLES.len() && nibbles[..count] != TAILNET_V6_NIBBLES {
            return None;
        }
    }
    if count < TAILNET_V6_NIBBLES.len() {
        return None;
    }
    let kind = if invalid || count > 32 {
        ReverseKind::Invalid
    } else if count == TAILNET_V6_NIBBLES.len() {
        ReverseKind::Apex
    } else if count < 32 {
        ReverseKind::Partial
    } else {
        let mut octets = [0u8; 16];
        for (i, pair) in nibbles.chunks_exact(2).enumerate() {
            octets[i] = (pair[0] << 4) | pair[1];
        }
        ReverseKind::Address(IpAddr::V6(Ipv6Addr::from(octets)))
    };
    Some(ReverseQuery {
        zone: ReverseZone::V6,
        kind,
    })
}

/// A canonical decimal octet label (`0`..`255`, no leading zeros).
fn octet(label: &[u8]) -> Option<u8> {
    let canonical = !label.is_empty()
        && label.len() <= 3
        && label.iter().all(u8::is_ascii_digit)
        && (label.len() == 1 || label[0] != b'0');
    if !canonical {
        return None;
    }
    std::str::from_utf8(label).ok()?.parse().ok()
}

/// A single hex digit label, either case.
fn nibble(label: &[u8]) -> Option<u8> {
    match label {
        [c] => char::from(*c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
