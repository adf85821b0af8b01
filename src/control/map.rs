//! `POST /machine/map` (control.md §4): lite updates, and the long poll that
//! streams a full map followed by deltas and keep-alives.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use tokio::sync::mpsc;

use super::{ControlState, Peer};
use crate::http::error::ApiError;
use crate::mapper::build::{Delta, SentState, build_delta, build_full};
use crate::mapper::frame::{self, Compression};
use crate::mapper::sessions::Session;
use crate::state::MapUpdate;
use crate::tailcfg::{MIN_CAPABILITY_VERSION, MapRequest, MapResponse};
use crate::types::{DiscoPublic, NodeId};

pub(super) async fn handler(
    State(cs): State<ControlState>,
    Extension(peer): Extension<Peer>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: MapRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid map request: {e}")))?;
    if req.version < MIN_CAPABILITY_VERSION {
        return Err(ApiError::bad_request("client too old for clawscale"));
    }
    let (_, node) = super::owner::owned_node(&cs, &peer, req.node_key.as_deref(), "map")?;
    let disco_key = match req.disco_key.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<DiscoPublic>()
                .map_err(|e| ApiError::bad_request(format!("DiscoKey: {e}")))?,
        ),
    }
    .filter(|k| !k.is_zero());
    let update = MapUpdate {
        disco_key,
        endpoints: req.endpoints.clone(),
        hostinfo: req.hostinfo.clone(),
        cap_version: req.version,
    };
    cs.state.update_from_map(node.id, update).await?;

    let compression = Compression::from_request(req.compress.as_deref());
    if !req.stream {
        if req.omit_peers {
            // Lite update: applied above; the client discards the body.
            return Ok(StatusCode::OK.into_response());
        }
        let mut sent = SentState::default();
        let world = cs.state.world();
        let full = build_full(&world, node.id, &mut sent, cs.state.now())
            .ok_or_else(|| ApiError::unauthorized("node not registered"))?;
        let bytes = frame::encode(&full, compression)
            .map_err(|e| crate::state::Error::Internal(e.to_string()))?;
        cs.metrics.frame("full");
        return Ok(Body::from(bytes).into_response());
    }

    // Long poll. Register the session before building the first map so no
    // change published in between is lost.
    let session = cs.state.sessions().open(node.id);
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(8);
    tokio::spawn(stream_session(cs, node.id, session, compression, tx));
    let body = Body::from_stream(tokio_stream_from(rx));
    Ok(Response::new(body))
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<Result<Bytes, Infallible>>,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Runs one map stream until the client goes away or its node is deleted.
async fn stream_session(
    cs: ControlState,
    node: NodeId,
    session: Arc<Session>,
    compression: Compression,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
) {
    if let Err(e) = cs.state.refresh_presence(node).await {
        tracing::warn!(node = %node, error = %e, "could not mark node online");
    }
    let result = run_stream(&cs, node, &session, compression, &tx).await;
    if let Err(reason) = result {
        tracing::debug!(node = %node, session = session.id, reason, "map stream ended");
    }
    cs.state.sessions().close(&session);
    if let Err(e) = cs.state.refresh_presence(node).await {
        tracing::warn!(node = %node, error = %e, "could not mark node offline");
    }
}

async fn run_stream(
    cs: &ControlState,
    node: NodeId,
    session: &Session,
    compression: Compression,
    tx: &mpsc::Sender<Result<Bytes, Infallible>>,
) -> Result<(), &'static str> {
    let send = |resp: MapResponse, kind: &'static str| async move {
        let bytes = frame::encode(&resp, compression).map_err(|_| "encode failed")?;
        tx.send(Ok(bytes)).await.map_err(|_| "client gone")?;
        cs.metrics.frame(kind);
        Ok::<(), &'static str>(())
    };
    let mut sent = SentState::default();
    // Drop what was merged so far *before* reading the World: all of it is in
    // that World, and anything published later stays in the mailbox.
    let _ = session.take();
    // The World is dropped once the map is built: a stream that held on
    // to it kept that generation's compiled policy (O(nodes)) alive for
    // as long as it stayed open, so idle memory grew as nodes².
    let full = {
        let world = cs.state.world();
        build_full(&world, node, &mut sent, cs.state.now()).ok_or("node removed")?
    };
    send(full, "full").await?;
    let mut last_frame = tokio::time::Instant::now();

    let mut next_keepalive = tokio::time::Instant::now() + keepalive_interval(cs.keepalive);
    loop {
        tokio::select! {
            _ = session.notified() => {
                // A burst (an enrollment wave, presence flapping) reaches a
                // stream as one frame per `batch_change_delay`; see `due`.
                // Without this every stream built, compressed and sent one
                // frame per join, and every client decoded them all.
                let noticed = tokio::time::Instant::now();
                loop {
                    let due = due(
                        last_frame,
                        noticed,
                        cs.batch_change_delay,
                        session.presence_only(),
                    );
                    if due <= tokio::time::Instant::now() {
                        break;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep_until(due) => break,
                        _ = session.notified() => {}
                        _ = tx.closed() => return Err("client gone"),
                    }
                }
                let change = session.take();
                if change.is_empty() {
                    continue;
                }
                let world = cs.state.world();
                match build_delta(&world, node, &change, &mut sent, cs.state.now()) {
                    Delta::Frame(resp) => {
                        send(*resp, "delta").await?;
                        last_frame = tokio::time::Instant::now();
                        next_keepalive = tokio::time::Instant::now() + keepalive_interval(cs.keepalive);
                    }
                    Delta::Nothing => {}
                    Delta::SelfRemoved(last) => {
                        if let Some(resp) = last {
                            send(*resp, "delta").await?;
                        }
                        return Err("node removed");
                    }
                }
            }
            _ = tokio::time::sleep_until(next_keepalive) => {
                send(MapResponse::keep_alive(), "keepalive").await?;
                next_keepalive = tokio::time::Instant::now() + keepalive_interval(cs.keepalive);
            }
            _ = tx.closed() => return Err("client gone"),
        }
    }
}

/// How long the first change after a quiet spell waits for those that
/// often follow it closely: a node's registration, then its map request
/// (endpoints) and its stream (presence). Sent at once, a join cost each
/// peer two frames, the new peer and then its coming online; 10,000 team
/// enrollments sent 1.2 million delta frames, with this 0.7 million
/// (docs/performance.md, "Writes and enrollment"). Under that load the
/// map request and stream mostly land 120–150 ms after the registration,
/// and 120 ms here sent as many frames: the rest are that second frame.
const SETTLE: Duration = Duration::from_millis(50);

/// When a stream sends what its mailbox holds, the first of it noticed at
/// `noticed`: `batch` after the last frame, and not before [`SETTLE`] (at
/// most `batch`) after `noticed`. A mailbox holding only presence waits
/// the presence gap after the last frame instead, and nothing more: a
/// node coming back after a restart is news, not urgent.
fn due(
    last_frame: tokio::time::Instant,
    noticed: tokio::time::Instant,
    batch: Duration,
    presence_only: bool,
) -> tokio::time::Instant {
    if presence_only {
        last_frame + presence_gap(batch)
    } else {
        (last_frame + batch).max(noticed + SETTLE.min(batch))
    }
}

/// The least gap before a frame that only says who came online or went
/// offline: ten times `batch_change_delay`, at most 1 s (500 ms by
/// default). After a server restart every node comes back within seconds
/// and each one's arrival is news to all its peers; at 50 ms a stream sent
/// nearly one frame per returning peer. Nothing a client routes by waits
/// for it: joins, removals, endpoint, key and route changes keep the
/// short gap, and one of them arriving sends the presence with it.
fn presence_gap(batch: Duration) -> Duration {
    (batch * 10).min(Duration::from_secs(1))
}

/// Base period plus up to 9 s of jitter so many clients do not wake together.
fn keepalive_interval(base: Duration) -> Duration {
    base + Duration::from_millis(rand::thread_rng().gen_range(0..9_000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_change_after_a_quiet_spell_settles_before_it_is_sent() {
        let t0 = Instant::now();
        let quiet = t0 + 10_000 * MS;
        // Long after the last frame: it waits only the settle time.
        assert_eq!(due(t0, quiet, 50 * MS, false), quiet + SETTLE);
        // An operator's longer gap does not hold a lone change longer.
        assert_eq!(due(t0, quiet, 3_000 * MS, false), quiet + SETTLE);
        // A shorter gap (or none) bounds the settle time.
        assert_eq!(due(t0, quiet, 20 * MS, false), quiet + 20 * MS);
        assert_eq!(due(t0, quiet, Duration::ZERO, false), quiet);
    }

    #[test]
    fn changes_right_after_a_frame_wait_out_the_gap() {
        let t0 = Instant::now();
        assert_eq!(due(t0, t0 + 10 * MS, 3_000 * MS, false), t0 + 3_000 * MS);
        // Settling ends later than the gap: the settle time counts.
        assert_eq!(due(t0, t0 + 40 * MS, 50 * MS, false), t0 + 90 * MS);
    }

    #[test]
    fn presence_alone_waits_the_presence_gap_and_does_not_settle() {
        let t0 = Instant::now();
        let quiet = t0 + 10_000 * MS;
        assert_eq!(due(t0, quiet, 50 * MS, true), t0 + 500 * MS);
        assert_eq!(due(t0, t0 + 10 * MS, 50 * MS, true), t0 + 500 * MS);
        assert_eq!(due(t0, t0, 3_000 * MS, true), t0 + 1_000 * MS);
    }
}
