//! The UDP fast path: one receive loop per socket, no task per query.
//!
//! hickory's own UDP listener spawns a task per datagram and routes every reply through a
//! channel back to the socket task; that cost ~15 µs of CPU per query on the 2-core CI machine.
//! Answering from the index never waits, so each loop here decodes, answers through the same
//! [`Handler`] (hickory's `RequestHandler`, so TCP and UDP share one code path) and sends the
//! reply inline. Several sockets share the port through `SO_REUSEPORT`, one loop each, so the
//! kernel spreads clients over cores. Datagram rules mirror hickory's listener: replies only to
//! sane source addresses, silence for garbage shorter than a header and for responses, FORMERR
//! for undecodable queries with a readable header.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Header, HeaderCounts, MessageType, Metadata, ResponseCode};
use hickory_server::proto::rr::Record;
use hickory_server::proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder,
};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use tokio::net::UdpSocket;

use super::handler::Handler;

/// Largest datagram read; longer ones are cut and then fail to decode.
const MAX_QUERY: usize = 4096;
/// Plain DNS limit without EDNS (RFC 1035 §4.2.1).
const NO_EDNS_PAYLOAD: u16 = 512;

/// Serves `socket` until an unrecoverable socket error.
pub(super) async fn serve_udp(socket: UdpSocket, handler: Handler) -> io::Result<()> {
    let mut buf = vec![0u8; MAX_QUERY];
    let reply = Reply::default();
    loop {
        let (len, src) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            // ICMP port-unreachable from an earlier reply and similar: not fatal.
            Err(e) if is_transient(&e) => continue,
            Err(e) => return Err(e),
        };
        if !sane_source(src) {
            continue;
        }
        let Some(bytes) = answer(&handler, &buf[..len], src, &reply).await else {
            continue;
        };
        if let Err(e) = socket.send_to(&bytes, src).await {
            tracing::debug!(error = %e, %src, "dns: UDP send failed");
        }
    }
}

/// The encoded reply to one datagram, if any.
async fn answer(
    handler: &Handler,
    datagram: &[u8],
    src: SocketAddr,
    reply: &Reply,
) -> Option<Vec<u8>> {
    let header = Header::read(&mut BinDecoder::new(datagram)).ok()?;
    if header.metadata.message_type == MessageType::Response {
        // Never answer responses: that is how reflection loops start.
        return None;
    }
    match Request::from_bytes(datagram.to_vec(), src, Protocol::Udp) {
        Ok(request) => {
            handler
                .handle_request::<_, TokioTime>(&request, reply.clone())
                .await;
            reply.take()
        }
        Err(_) => handler.admit(src.ip()).then(|| formerr(header.metadata)),
    }
}

fn formerr(query: Metadata) -> Vec<u8> {
    let mut metadata = Metadata::response_from_request(&query);
    metadata.response_code = ResponseCode::FormErr;
    let header = Header {
        metadata,
        counts: HeaderCounts::default(),
    };
    let mut out = Vec::with_capacity(12);
    // A bare header always fits; on the impossible error the client just times out.
    let _ = header.emit(&mut BinEncoder::new(&mut out));
    out
}

/// Port 0 and unspecified or broadcast sources cannot (or must not) be answered.
fn sane_source(src: SocketAddr) -> bool {
    let ip = src.ip().to_canonical();
    let broadcast = matches!(ip, std::net::IpAddr::V4(v4) if v4.is_broadcast());
    src.port() != 0 && !ip.is_unspecified() && !broadcast
}

fn is_transient(e: &io::Error) -> bool {
    !matches!(
        e.kind(),
        io::ErrorKind::NotConnected | io::ErrorKind::ConnectionAborted
    )
}

/// Captures the encoded response so the loop can send it itself. One per loop, reused.
#[derive(Clone, Default)]
struct Reply {
    slot: Arc<Mutex<Option<Vec<u8>>>>,
}

impl Reply {
    fn take(&self) -> Option<Vec<u8>> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[async_trait::async_trait]
impl ResponseHandler for Reply {
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
        let id_meta = *response.metadata();
        let max = response.edns().map_or(NO_EDNS_PAYLOAD, |e| e.max_payload());
        let mut out = Vec::with_capacity(usize::from(max.min(1232)));
        let mut encoder = BinEncoder::new(&mut out);
        encoder.set_max_size(max);
        let info = match response.destructive_emit(&mut encoder) {
            Ok(info) => info,
            Err(error) => {
                // Same fallback as hickory: a bare SERVFAIL header.
                tracing::warn!(%error, "dns: cannot encode response");
                let mut metadata = id_meta;
                metadata.response_code = ResponseCode::ServFail;
                let header = Header {
                    metadata,
                    counts: HeaderCounts::default(),
                };
                out.clear();
                header.emit(&mut BinEncoder::new(&mut out))?;
                ResponseInfo::from(header)
            }
        };
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(out);
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_sanity() {
        assert!(sane_source("127.0.0.1:5000".parse().unwrap()));
        assert!(!sane_source("127.0.0.1:0".parse().unwrap()));
        assert!(!sane_source("0.0.0.0:53".parse().unwrap()));
        assert!(!sane_source("255.255.255.255:53".parse().unwrap()));
        assert!(!sane_source("[::ffff:255.255.255.255]:53".parse().unwrap()));
        assert!(!sane_source("[::]:53".parse().unwrap()));
    }

    #[test]
    fn formerr_echoes_id() {
        let q = Metadata::new(
            0xbeef,
            MessageType::Query,
            hickory_server::proto::op::OpCode::Query,
        );
        let bytes = formerr(q);
        let h = Header::read(&mut BinDecoder::new(&bytes)).unwrap();
        assert_eq!(h.metadata.id, 0xbeef);
        assert_eq!(h.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(h.metadata.message_type, MessageType::Response);
    }
}
