//! How a simulated node reads its map stream.
//!
//! `full` (the default) hands the frames to `ts_control`, which decodes
//! every field of every peer as a client library does; it also makes an
//! x25519 key per decoded peer, which is most of the bench clients' CPU.
//! `ids` reads only what the bench checks (its own node id, each peer's id
//! and node key) and skips the rest of the JSON unparsed. The server does
//! the same work either way; with `ids` the clients take less of the two
//! cores they share with it, so the wall times say more about the server.

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use ts_control::{PeerUpdate, StateUpdate};
use ts_keys::NodePublicKey;

use crate::client::SimNode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decode {
    Full,
    Ids,
}

impl Decode {
    pub fn name(self) -> &'static str {
        match self {
            Decode::Full => "full",
            Decode::Ids => "ids",
        }
    }
}

/// What a node task needs from one map response.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Update {
    /// Its own node id, when the response carries its node.
    pub me: Option<i64>,
    /// The whole peer list (a full map).
    pub full: Option<Vec<i64>>,
    /// Peers added or changed, and removed (a delta).
    pub upsert: Vec<i64>,
    pub remove: Vec<i64>,
    /// The newcomer is among the peers this response lists.
    pub newcomer: bool,
}

pub type Updates = Pin<Box<dyn Stream<Item = Update> + Send>>;

/// Opens `sim`'s map stream (zstd frames with `zstd`) and reads it as
/// `decode` says, watching for `newcomer`.
pub async fn open(
    sim: &SimNode,
    zstd: bool,
    decode: Decode,
    newcomer: NodePublicKey,
) -> anyhow::Result<Updates> {
    Ok(match decode {
        Decode::Full => {
            let updates = sim.updates_compressed(zstd).await?;
            Box::pin(updates.map(move |u| from_ts(u, &newcomer)))
        }
        Decode::Ids => Box::pin(ids(sim.map_frames(zstd).await?, zstd, newcomer.to_string())),
    })
}

fn from_ts(u: StateUpdate, newcomer: &NodePublicKey) -> Update {
    let mut out = Update {
        me: u.node.as_ref().map(|n| n.id),
        ..Update::default()
    };
    let listed = match u.peer_update {
        Some(PeerUpdate::Full(list)) => {
            out.full = Some(list.iter().map(|p| p.id).collect());
            list
        }
        Some(PeerUpdate::Delta { upsert, remove, .. }) => {
            out.upsert = upsert.iter().map(|p| p.id).collect();
            out.remove = remove;
            upsert
        }
        None => Vec::new(),
    };
    out.newcomer = listed.iter().any(|p| p.node_key == *newcomer);
    out
}

/// The fields of a `MapResponse` the bench reads; serde skips the others.
#[derive(Deserialize)]
struct Frame {
    #[serde(rename = "Node")]
    node: Option<Peer>,
    #[serde(rename = "Peers")]
    peers: Option<Vec<Peer>>,
    #[serde(rename = "PeersChanged", default)]
    peers_changed: Vec<Peer>,
    #[serde(rename = "PeersRemoved", default)]
    peers_removed: Vec<i64>,
}

#[derive(Deserialize)]
struct Peer {
    #[serde(rename = "ID")]
    id: i64,
    #[serde(rename = "Key")]
    key: String,
}

impl Frame {
    fn update(self, newcomer: &str) -> Update {
        let listed = self.peers.as_ref().unwrap_or(&self.peers_changed);
        let newcomer = listed.iter().any(|p| p.key == newcomer);
        let ids = |list: &[Peer]| list.iter().map(|p| p.id).collect::<Vec<_>>();
        Update {
            me: self.node.map(|n| n.id),
            full: self.peers.as_deref().map(ids),
            upsert: if self.peers.is_some() {
                Vec::new()
            } else {
                ids(&self.peers_changed)
            },
            remove: self.peers_removed,
            newcomer,
        }
    }
}

/// Frames ([u32 LE length][JSON or zstd frame]) read into [`Update`]s,
/// with one zstd context for the whole stream as tailscaled keeps one. Ends
/// with the input or at the first frame that does not decode.
fn ids(
    frames: impl AsyncRead + Unpin + Send + 'static,
    zstd: bool,
    newcomer: String,
) -> impl Stream<Item = Update> + Send {
    let state = (frames, None::<zstd::bulk::Decompressor<'static>>, newcomer);
    futures_util::stream::unfold(state, move |(mut r, mut dctx, newcomer)| async move {
        let len = r.read_u32_le().await.ok()?;
        let mut buf = vec![0; len as usize];
        r.read_exact(&mut buf).await.ok()?;
        if zstd {
            buf = decompress(&mut dctx, &buf)?;
        }
        let frame: Frame = serde_json::from_slice(&buf).ok()?;
        let update = frame.update(&newcomer);
        Some((update, (r, dctx, newcomer)))
    })
}

fn decompress(
    dctx: &mut Option<zstd::bulk::Decompressor<'static>>,
    frame: &[u8],
) -> Option<Vec<u8>> {
    // The server's frames say their size; one that does not is decoded
    // the slow way rather than guessed at.
    match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) => {
            let d = match dctx {
                Some(d) => d,
                None => dctx.insert(zstd::bulk::Decompressor::new().ok()?),
            };
            d.decompress(frame, usize::try_from(size).ok()?).ok()
        }
        _ => zstd::stream::decode_all(frame).ok(),
    }
}
