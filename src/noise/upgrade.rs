//! Server side of `POST /ts2021`: HTTP/1.1 upgrade into a Noise stream.
//!
//! Owns the request checks, the `101 Switching Protocols` reply and the
//! first bytes on the upgraded connection (raw 51-byte handshake response,
//! then the early payload as the first record, in one write).
//!
//! Depends on axum/hyper for the request and upgrade, and on
//! [`super::handshake`], [`super::stream`], [`super::early`].
//!
//! Mirrors `controlhttpserver.AcceptHTTP` (Tailscale v1.96): `Upgrade` is
//! compared case-insensitively, the initiation comes only from the
//! `X-Tailscale-Handshake` header (std base64, padded), and the reply
//! carries both `Upgrade: tailscale-control-protocol` and
//! `Connection: upgrade` (Go's client needs both to take over the socket).
//! Unlike the reference we run the handshake *before* replying, so a bad
//! initiation gets a plain 400 instead of a 101 followed by an error frame;
//! the client reports either as a failed dial. GET is accepted like POST.
//! WebSocket (used only by js/wasm clients) is not supported.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use x25519_dalek::StaticSecret;

use super::handshake::{self, Responded};
use super::stream::NoiseStream;
use super::{Error, early};

/// Value of the `Upgrade` header in both directions.
pub const UPGRADE_PROTOCOL: &str = "tailscale-control-protocol";
/// Request header carrying the base64 handshake initiation.
pub const HANDSHAKE_HEADER: &str = "x-tailscale-handshake";

/// A verified handshake whose `101` has not been sent yet. Return the
/// response from the handler, then drive [`Pending::finish`] in a task.
pub struct Pending {
    on_upgrade: OnUpgrade,
    responded: Responded,
    early_payload: bool,
}

/// An upgraded, authenticated connection ready for HTTP/2.
pub struct Accepted {
    pub stream: NoiseStream<TokioIo<Upgraded>>,
    /// The client's machine key, authenticated by the handshake.
    pub machine_key: [u8; 32],
    /// Protocol version the client announced (its capability version).
    pub version: u16,
    pub handshake_hash: [u8; 32],
}

/// Checks an upgrade request and runs the Noise responder on its
/// initiation. On success returns the `101` to send and the [`Pending`]
/// upgrade; on failure an error whose `IntoResponse` is a short 4xx.
pub fn accept(mut req: Request, key: &StaticSecret) -> Result<(Response, Pending), Error> {
    if req.method() != Method::POST && req.method() != Method::GET {
        return Err(Error::Method);
    }
    if req.version() != Version::HTTP_11 && req.version() != Version::HTTP_10 {
        return Err(Error::NotHttp1);
    }
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .ok_or(Error::UpgradeProtocol)?;
    if !upgrade.trim().eq_ignore_ascii_case(UPGRADE_PROTOCOL) {
        return Err(Error::UpgradeProtocol);
    }
    let init_b64 = req
        .headers()
        .get(HANDSHAKE_HEADER)
        .filter(|v| !v.is_empty())
        .ok_or(Error::MissingHandshake)?;
    let init = STANDARD
        .decode(init_b64.as_bytes())
        .map_err(|_| Error::HandshakeEncoding)?;
    // Present only when hyper serves the connection with upgrades enabled
    // (axum::serve does).
    let on_upgrade = req
        .extensions_mut()
        .remove::<OnUpgrade>()
        .ok_or(Error::NotUpgradable)?;
    let responded = handshake::respond(key, &init)?;

    let response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, HeaderValue::from_static(UPGRADE_PROTOCOL))
        .header(header::CONNECTION, HeaderValue::from_static("upgrade"))
        .body(Body::empty())
        .expect("static status and headers are valid");
    let pending = Pending {
        on_upgrade,
        responded,
        early_payload: true,
    };
    Ok((response, pending))
}

impl Pending {
    /// The authenticated client machine key, known before the upgrade.
    pub fn machine_key(&self) -> &[u8; 32] {
        &self.responded.client_machine_key
    }

    /// The client's protocol version, known before the upgrade.
    pub fn version(&self) -> u16 {
        self.responded.version
    }

    /// Don't send the early payload (it is optional in the protocol).
    pub fn without_early_payload(mut self) -> Self {
        self.early_payload = false;
        self
    }

    /// Waits for hyper to hand over the connection (after the `101` went
    /// out), writes the handshake response and early payload, and returns
    /// the Noise stream. Callers should bound this with a timeout: a client
    /// that stops reading can stall the write.
    pub async fn finish(self) -> Result<Accepted, Error> {
        let upgraded = self.on_upgrade.await.map_err(Error::Upgrade)?;
        let r = self.responded;
        let mut stream = NoiseStream::new(TokioIo::new(upgraded), &r.keys);
        // One write for both, like the reference server's corked conn.
        stream.queue_raw(&r.response);
        if self.early_payload {
            stream.queue(&early::fresh())?;
        }
        stream.flush().await?;
        Ok(Accepted {
            stream,
            machine_key: r.client_machine_key,
            version: r.version,
            handshake_hash: r.handshake_hash,
        })
    }
}

/// Rejections for upgrade requests: short fixed texts, never peer input.
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match &self {
            Error::Method => StatusCode::METHOD_NOT_ALLOWED,
            e if e.is_peer_fault() => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let text = match status {
            StatusCode::INTERNAL_SERVER_ERROR => "internal error".to_owned(),
            _ => self.to_string(),
        };
        (status, text).into_response()
    }
}

#[cfg(test)]
mod tests;
