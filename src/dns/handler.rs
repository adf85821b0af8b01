//! The hickory `RequestHandler` shared by both transports: source checks, header/EDNS
//! handling, then the index lookup (`lookup.rs`).
//!
//! Order per query: rate limit (drop silently), allow-list (REFUSED), opcode (NOTIMP), EDNS
//! version (BADVERS), exactly one IN-class question (FORMERR/REFUSED), zone transfers
//! (REFUSED), then the lookup. A live ACME challenge name skips only the allow-list
//! (`challenge.rs`). Undecodable packets never get here: `udp.rs` and hickory's TCP
//! listener answer them with FORMERR (or not at all).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::{DNSClass, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use ipnet::IpNet;
use tokio::sync::watch;

use super::limiter::Limiter;
use super::lookup::Answer;
use super::records::RecordIndex;
use super::{ChallengeSource, Visibility, challenge};

/// Largest UDP response we send, whatever the client advertises (DNS flag day 2020: avoids
/// IP fragmentation); bigger answers are truncated and retried over TCP.
pub(super) const MAX_UDP_PAYLOAD: u16 = 1232;

/// Cheap to clone: every UDP loop and hickory's TCP listener hold one, sharing the limiter.
#[derive(Clone)]
pub(super) struct Handler {
    pub(super) index: watch::Receiver<Arc<RecordIndex>>,
    pub(super) allow: Arc<[IpNet]>,
    pub(super) limiter: Arc<Limiter>,
    pub(super) visibility: Option<Visibility>,
    pub(super) challenges: Option<Arc<dyn ChallengeSource>>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let src = request.src().ip().to_canonical();
        let meta = &request.metadata;
        if !self.limiter.check(src, Instant::now()) {
            tracing::trace!(%src, "dns query dropped by rate limit");
            return not_sent(meta, ResponseCode::Refused);
        }
        // Clone the Arc out so the watch lock is not held while encoding/sending.
        let index = self.index.borrow().clone();
        let challenge = match (
            self.challenges.as_deref(),
            request.queries.queries().first(),
        ) {
            (Some(source), Some(q)) => match challenge::owner(&index, q.name()) {
                Some(owner) => {
                    let values = source.txt(&owner).await;
                    challenge::answer(&index, source, q.name(), q.query_type(), values)
                }
                None => None,
            },
            _ => None,
        };
        let (rcode, edns) = match self.precheck(src, request, challenge.is_none()) {
            Ok(edns) => (None, edns),
            Err((rcode, edns)) => (Some(rcode), edns),
        };
        let builder = match &edns {
            Some(edns) => MessageResponseBuilder::new(&request.queries, Some(edns)),
            None => MessageResponseBuilder::new(&request.queries, None),
        };
        let result = match (rcode, &challenge) {
            (Some(rcode), _) => {
                let mut response = builder.error_msg(meta, rcode);
                response.metadata_mut().recursion_available = false;
                response_handle.send_response(response).await
            }
            (None, Some(c)) => {
                let mut metadata = Metadata::response_from_request(meta);
                metadata.response_code = c.rcode;
                metadata.authoritative = true;
                let response = builder.build(
                    metadata,
                    c.answers.iter(),
                    c.authority.iter(),
                    None::<&Record>,
                    None::<&Record>,
                );
                response_handle.send_response(response).await
            }
            (None, None) => {
                let answer = match request.queries.queries().first() {
                    Some(q) => {
                        index.lookup(q.name(), q.query_type(), src, self.visibility.as_ref())
                    }
                    None => Answer::refused(),
                };
                let mut metadata = Metadata::response_from_request(meta);
                metadata.response_code = answer.rcode;
                metadata.authoritative = answer.rcode != ResponseCode::Refused;
                let response = builder.build(
                    metadata,
                    answer.answers,
                    answer.authority,
                    None::<&Record>,
                    None::<&Record>,
                );
                response_handle.send_response(response).await
            }
        };
        result.unwrap_or_else(|error| {
            tracing::debug!(%error, %src, "dns response not sent");
            not_sent(meta, ResponseCode::ServFail)
        })
    }
}

impl Handler {
    /// Rate limit and allow-list in one, for replies decided outside `handle_request`.
    pub(super) fn admit(&self, src: IpAddr) -> bool {
        let src = src.to_canonical();
        self.limiter.check(src, Instant::now()) && self.allowed(src)
    }

    fn allowed(&self, src: IpAddr) -> bool {
        self.allow.iter().any(|net| net.contains(&src))
    }

    /// Checks everything but the name. `Ok` carries the response EDNS; `Err` the error rcode.
    /// `check_allow` false: the allow-list does not apply (a live challenge name).
    fn precheck(
        &self,
        src: IpAddr,
        request: &Request,
        check_allow: bool,
    ) -> Result<Option<Edns>, (ResponseCode, Option<Edns>)> {
        let edns = request.edns.as_ref().map(|req| {
            let mut ours = Edns::new();
            ours.set_max_payload(req.max_payload().min(MAX_UDP_PAYLOAD));
            ours
        });
        if check_allow && !self.allowed(src) {
            return Err((ResponseCode::Refused, edns));
        }
        if request.metadata.op_code != OpCode::Query {
            return Err((ResponseCode::NotImp, edns));
        }
        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            // RFC 6891 §6.1.3: BADVERS needs an OPT record to carry the extended rcode.
            return Err((ResponseCode::BADVERS, edns.or_else(|| Some(Edns::new()))));
        }
        let [query] = request.queries.queries() else {
            return Err((ResponseCode::FormErr, edns));
        };
        if query.query_class() != DNSClass::IN {
            return Err((ResponseCode::Refused, edns));
        }
        if matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR) {
            return Err((ResponseCode::Refused, edns));
        }
        Ok(edns)
    }
}

/// A `ResponseInfo` for a query we chose not to answer (or could not send).
fn not_sent(meta: &Metadata, rcode: ResponseCode) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(meta);
    metadata.response_code = rcode;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

#[cfg(test)]
mod tests;
