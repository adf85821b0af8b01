//! Answers for `_acme-challenge.` names from the live [`ChallengeSource`]: TXT for TXT and ANY
//! questions, NODATA (with the zone's SOA) for other types. Pure apart from the source call
//! (`owner` says whether to make it).

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::rdata::TXT;
use hickory_server::proto::rr::{Name, RData, Record, RecordType};

use super::ChallengeSource;
use super::records::RecordIndex;

/// The owner label of an ACME DNS-01 challenge (RFC 8555 §8.4).
const LABEL: &[u8] = b"_acme-challenge";
/// Challenge answers are cached for a second at most: a retried order publishes a new value,
/// and a resolver holding the old one would fail the validation.
const TTL: u32 = 1;

/// Owned records for one challenge response.
#[derive(Debug)]
pub(super) struct ChallengeAnswer {
    pub(super) rcode: ResponseCode,
    pub(super) answers: Vec<Record>,
    pub(super) authority: Vec<Record>,
}

/// The owner to ask the source about (lower-case, no trailing dot), when `qname` is a
/// challenge name in `index`'s zone.
pub(super) fn owner(index: &RecordIndex, qname: &Name) -> Option<String> {
    let first = qname.iter().next()?;
    if !first.eq_ignore_ascii_case(LABEL) || !index.apex.zone_of(qname) {
        return None;
    }
    let owner = qname.to_lowercase().to_ascii();
    Some(owner.trim_end_matches('.').to_string())
}

/// `Some` when the source had live `values` for challenge name `qname` (see `owner`).
pub(super) fn answer(
    index: &RecordIndex,
    source: &dyn ChallengeSource,
    qname: &Name,
    qtype: RecordType,
    values: Vec<String>,
) -> Option<ChallengeAnswer> {
    if values.is_empty() {
        return None;
    }
    if !matches!(qtype, RecordType::TXT | RecordType::ANY) {
        return Some(ChallengeAnswer {
            rcode: ResponseCode::NoError,
            answers: Vec::new(),
            authority: vec![index.soa.clone()],
        });
    }
    let answers = values
        .iter()
        .map(|v| {
            // DNS-01 values are 43 bytes: one character-string each.
            let txt = TXT::from_bytes(vec![v.as_bytes()]);
            Record::from_rdata(qname.clone(), TTL, RData::TXT(txt))
        })
        .collect();
    source.served();
    Some(ChallengeAnswer {
        rcode: ResponseCode::NoError,
        answers,
        authority: Vec::new(),
    })
}
