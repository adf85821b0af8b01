//! A simulated Tailscale node driven by tailscale-rs `ts_control`: keys,
//! the TS2021 connection, registration and the map long-poll, plus a small
//! netmap that applies the `StateUpdate`s it yields.
//!
//! Owns nothing of the server; depends only on the `ts_*` crates, tokio and
//! serde_json, so the enrollment bench can include this file too.
//!
//! Mirrors what `tailscaled` does up to the first netmap (control.md §3–4):
//! `/key`, `/ts2021`, `POST /machine/register`, `POST /machine/map` with
//! `Stream:true`. Two gaps in `ts_control` 0.6.1 are filled here with raw
//! requests over its own HTTP/2 connection: `register` turns a
//! `RegisterResponse.Error` into a bare `MachineNotAuthorized(None)` (the
//! message is lost), and its map stream exposes no raw JSON (a trailing dot
//! in `Node.Name` is invisible), so [`SimNode::register`] and
//! [`SimNode::fetch_map`] read the bodies themselves.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::time::{Instant, timeout, timeout_at};
use ts_capabilityversion::CapabilityVersion;
use ts_control::client::HttpConn;
use ts_control::{MapRequestBuilder, Node, NodeId, PeerUpdate, StateUpdate};
use ts_control_serde::{HostInfo, RegisterAuth, RegisterRequest};
use ts_http_util::{ClientExt, ResponseExt};
use ts_keys::NodeState;
use url::Url;

/// Bound on every single network step of a simulated node.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// One simulated device.
pub struct SimNode {
    pub hostname: String,
    pub keys: NodeState,
    url: Url,
    conn: Option<HttpConn>,
}

/// What `/machine/register` answered, read without `ts_control`'s lossy
/// error mapping.
#[derive(Debug, Clone)]
pub struct Registration {
    pub status: u16,
    /// The JSON `RegisterResponse`, or the body text as a JSON string when
    /// the server did not answer JSON (e.g. a 400).
    pub body: serde_json::Value,
}

impl Registration {
    pub fn authorized(&self) -> bool {
        self.status == 200 && self.body["MachineAuthorized"] == serde_json::Value::Bool(true)
    }

    /// `RegisterResponse.Error`, empty when there is none.
    pub fn error(&self) -> &str {
        self.body["Error"].as_str().unwrap_or("")
    }
}

impl SimNode {
    /// A node with fresh random keys.
    pub fn new(url: &Url, hostname: &str) -> SimNode {
        SimNode::with_keys(url, hostname, NodeState::generate())
    }

    /// A node reusing `keys` (a restarted device keeps its machine and node
    /// keys; the disco key is per run anyway).
    pub fn with_keys(url: &Url, hostname: &str, keys: NodeState) -> SimNode {
        SimNode {
            hostname: hostname.to_string(),
            keys,
            url: url.clone(),
            conn: None,
        }
    }

    pub fn config(&self) -> ts_control::Config {
        ts_control::Config {
            server_url: self.url.clone(),
            hostname: Some(self.hostname.clone()),
            client_name: Some("clawscale-inproc".into()),
            tags: vec![],
            ephemeral: false,
        }
    }

    /// `/key` plus the TS2021 upgrade; replaces any earlier connection.
    pub async fn connect(&mut self) -> anyhow::Result<()> {
        let conn = timeout(
            STEP_TIMEOUT,
            ts_control::client::connect(&self.url, &self.keys.machine_keys),
        )
        .await
        .context("connect timed out")?
        .map_err(|e| anyhow::anyhow!("connect to {}: {e}", self.url))?;
        self.conn = Some(conn);
        Ok(())
    }

    /// Drops the HTTP/2 connection (and with it every stream on it).
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    fn conn(&self) -> anyhow::Result<&HttpConn> {
        self.conn.as_ref().context("not connected")
    }

    /// Registers through `ts_control::register` (the library's own path).
    pub async fn register_ts(&self, auth_key: &str) -> anyhow::Result<()> {
        let conn = self.conn()?;
        let config = self.config();
        timeout(
            STEP_TIMEOUT,
            ts_control::register(&config, &self.url, Some(auth_key), None, &self.keys, conn),
        )
        .await
        .context("register timed out")?
        .map_err(|e| anyhow::anyhow!("register {}: {e}", self.hostname))
    }

    /// Registers with a raw request built from `ts_control_serde` types and
    /// returns the server's answer whatever it is.
    pub async fn register(&self, auth_key: Option<&str>) -> anyhow::Result<Registration> {
        let app = self.config().format_client_name();
        let req = RegisterRequest {
            version: CapabilityVersion::CURRENT,
            node_key: self.keys.node_keys.public,
            nl_key: Some(self.keys.network_lock_keys.public),
            auth: auth_key.map(RegisterAuth::from),
            hostinfo: HostInfo {
                hostname: Some(&self.hostname),
                app: &app,
                ..Default::default()
            },
            ..Default::default()
        };
        let body = serde_json::to_vec(&req)?;
        self.post_raw("machine/register", Bytes::from(body)).await
    }

    /// POSTs `body` to `path` inside the tunnel; returns status and body
    /// (JSON if it parses, else the text as a JSON string).
    pub async fn post_raw(&self, path: &str, body: Bytes) -> anyhow::Result<Registration> {
        let (status, bytes) = self.post_bytes(path, body).await?;
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
        });
        Ok(Registration { status, body })
    }

    /// POSTs `body` to `path` inside the tunnel; returns status and raw body.
    pub async fn post_bytes(&self, path: &str, body: Bytes) -> anyhow::Result<(u16, Bytes)> {
        let url = self.url.join(path)?;
        let conn = self.conn()?;
        let resp = timeout(STEP_TIMEOUT, conn.post(&url, None, body.into()))
            .await
            .context("request timed out")?
            .map_err(|e| anyhow::anyhow!("POST {path}: {e}"))?;
        let status = resp.status().as_u16();
        let bytes = timeout(STEP_TIMEOUT, resp.collect_bytes())
            .await
            .context("response body timed out")?
            .map_err(|e| anyhow::anyhow!("POST {path} body: {e}"))?;
        Ok((status, bytes))
    }

    /// One non-streaming full map (`Stream:false, OmitPeers:false`), as raw
    /// JSON so wire details `ts_control` normalises away can be asserted.
    pub async fn fetch_map(&self) -> anyhow::Result<serde_json::Value> {
        let req = MapRequestBuilder::new(&self.keys)
            .omit_peers(false)
            .hostname(&self.hostname)
            .build();
        let (status, body) = self
            .post_bytes("machine/map", Bytes::from(serde_json::to_vec(&req)?))
            .await?;
        if status != 200 {
            bail!(
                "map request answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        // No `Compress` was asked for: one frame, [u32 LE length][JSON].
        let Some((len, json)) = body.split_first_chunk::<4>() else {
            bail!("map body shorter than its length prefix");
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len != json.len() {
            bail!("map frame says {len} bytes, body has {}", json.len());
        }
        Ok(serde_json::from_slice(json)?)
    }

    /// Opens the map long-poll through `ts_control` and returns its updates.
    pub async fn stream(&self) -> anyhow::Result<MapStream> {
        Ok(MapStream {
            updates: self.updates().await?,
            netmap: Netmap::default(),
            fulls: 0,
            deltas: 0,
        })
    }

    /// The map long-poll as `ts_control`'s raw `StateUpdate`s, for callers
    /// that track less than a whole netmap (the bench).
    pub async fn updates(&self) -> anyhow::Result<Updates> {
        self.updates_compressed(false).await
    }

    /// As [`SimNode::updates`]; with `zstd` the frames are asked for
    /// compressed, as real clients always ask (`ts_control` 0.6.1 neither
    /// asks nor decodes: frames are decompressed here before it reads them).
    pub async fn updates_compressed(&self, zstd: bool) -> anyhow::Result<Updates> {
        let reader = self.map_frames(zstd).await?;
        Ok(if zstd {
            Box::pin(ts_control::client::map_stream(unzstd(reader)))
        } else {
            Box::pin(ts_control::client::map_stream(reader))
        })
    }

    /// Opens the map long-poll and returns its frames as sent: a u32 LE
    /// length, then the JSON (a zstd frame of it with `zstd`).
    pub async fn map_frames(
        &self,
        zstd: bool,
    ) -> anyhow::Result<impl tokio::io::AsyncRead + Unpin + Send + use<>> {
        let conn = self.conn()?;
        let mut req = MapRequestBuilder::new(&self.keys)
            .as_stream()
            .hostname(&self.hostname)
            .build();
        if zstd {
            req.compress = "zstd";
        }
        let map_url = self.url.join("machine/map")?;
        timeout(
            STEP_TIMEOUT,
            ts_control::client::send_map_request(req, &map_url, conn),
        )
        .await
        .context("map request timed out")?
        .map_err(|e| anyhow::anyhow!("map request {}: {e}", self.hostname))
    }

    /// Connect, register with `auth_key` through `ts_control`, open the map
    /// stream and wait for the first full map.
    pub async fn enroll(&mut self, auth_key: &str) -> anyhow::Result<MapStream> {
        self.connect().await?;
        self.register_ts(auth_key).await?;
        let mut stream = self.stream().await?;
        stream
            .wait_until(STEP_TIMEOUT, |m| m.me.is_some())
            .await
            .context("first map")?;
        Ok(stream)
    }
}

/// Turns a stream of zstd map frames ([u32 LE length][zstd frame]) into
/// uncompressed ones ([u32 LE length][JSON]); ends with the input or at the
/// first frame that does not decode.
fn unzstd(
    mut frames: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> tokio::io::DuplexStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut out, plain) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let mut frame = Vec::new();
        while let Ok(len) = frames.read_u32_le().await {
            frame.resize(len as usize, 0);
            if frames.read_exact(&mut frame).await.is_err() {
                break;
            }
            let Ok(json) = zstd::stream::decode_all(frame.as_slice()) else {
                break;
            };
            let Ok(len) = u32::try_from(json.len()) else {
                break;
            };
            if out.write_u32_le(len).await.is_err() || out.write_all(&json).await.is_err() {
                break;
            }
        }
    });
    plain
}

/// The netmap as a client sees it.
#[derive(Debug, Default, Clone)]
pub struct Netmap {
    pub me: Option<Node>,
    pub peers: BTreeMap<NodeId, Node>,
    /// The last DERP map received.
    pub derp: Option<ts_control::DerpMap>,
}

impl Netmap {
    pub fn peer_named(&self, host: &str) -> Option<&Node> {
        self.peers.values().find(|n| n.hostname == host)
    }
}

/// How the update that changed the netmap arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Already true before any new update was read.
    Already,
    /// In a full peer list (`Peers`).
    Full,
    /// In a delta (`PeersChanged`, `PeersRemoved`, patches, online changes).
    Delta,
    /// In an update without peer changes (self node, keep-alive, ...).
    Other,
}

/// A map long-poll's decoded frames; ends when the server closes the
/// stream or a frame does not decode.
pub type Updates = Pin<Box<dyn Stream<Item = StateUpdate> + Send>>;

/// One open map long-poll.
pub struct MapStream {
    updates: Updates,
    pub netmap: Netmap,
    /// Full peer lists and deltas received so far.
    pub fulls: usize,
    pub deltas: usize,
}

impl MapStream {
    /// Reads and applies one update; `None` when the stream ended (the
    /// server closed it, or `ts_control` could not decode a frame).
    pub async fn next(&mut self) -> Option<Arrival> {
        let update = self.updates.next().await?;
        Some(self.apply(update))
    }

    fn apply(&mut self, u: StateUpdate) -> Arrival {
        if let Some(me) = u.node {
            self.netmap.me = Some(me);
        }
        if let Some(derp) = u.derp {
            self.netmap.derp = Some(derp);
        }
        match u.peer_update {
            Some(PeerUpdate::Full(peers)) => {
                self.fulls += 1;
                self.netmap.peers = peers.into_iter().map(|n| (n.id, n)).collect();
                Arrival::Full
            }
            Some(PeerUpdate::Delta {
                patch,
                upsert,
                remove,
            }) => {
                self.deltas += 1;
                for id in remove {
                    self.netmap.peers.remove(&id);
                }
                for n in upsert {
                    self.netmap.peers.insert(n.id, n);
                }
                for p in patch {
                    if let Some(n) = self.netmap.peers.get_mut(&p.id) {
                        n.apply_update(&p);
                    }
                }
                Arrival::Delta
            }
            None => Arrival::Other,
        }
    }

    /// Reads updates until `pred` holds or `within` passes; says how the
    /// deciding update arrived.
    pub async fn wait_until(
        &mut self,
        within: Duration,
        mut pred: impl FnMut(&Netmap) -> bool,
    ) -> anyhow::Result<Arrival> {
        if pred(&self.netmap) {
            return Ok(Arrival::Already);
        }
        let deadline = Instant::now() + within;
        loop {
            match timeout_at(deadline, self.next()).await {
                Err(_) => bail!(
                    "condition not met within {within:?}; netmap: {:?}",
                    brief(&self.netmap)
                ),
                Ok(None) => bail!("map stream ended; netmap: {:?}", brief(&self.netmap)),
                Ok(Some(arrival)) => {
                    if pred(&self.netmap) {
                        return Ok(arrival);
                    }
                }
            }
        }
    }
}

/// A short description of a netmap for failure messages.
fn brief(m: &Netmap) -> Vec<String> {
    m.peers
        .values()
        .map(|n| format!("{}#{} {:?}", n.hostname, n.id, n.status))
        .collect()
}
