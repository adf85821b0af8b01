//! The simulated nodes: each one a task that enrolls (connect, register,
//! open its map stream, first map), follows its stream, and after a server
//! restart reconnects with the same keys and waits for its full map again.
//! Tasks report what they see as [`Event`]s; they keep only peer ids.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use ts_keys::NodePublicKey;
use url::Url;

use crate::client::{STEP_TIMEOUT, SimNode};
use crate::decode::{self, Decode, Updates};

/// How long a node keeps trying to reconnect to a restarting server.
const RECONNECT_FOR: Duration = Duration::from_secs(300);
/// tailscaled's cap on its map routine's backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What one node task reports, tagged with its index.
#[derive(Debug)]
pub enum Event {
    /// Enrolled: the first map arrived on its stream.
    First,
    /// Enrollment failed.
    Failed(usize, String),
    /// Its stream lists every peer it should.
    Converged,
    /// The newcomer showed up in its stream.
    Seen(Instant),
    /// Its stream ended: its own node id and peer count until then.
    Down(usize, i64, usize),
    /// Streaming again after a reconnect: its node id and full peer count.
    Back(usize, i64, usize),
}

/// One node's job.
pub struct Node {
    pub idx: usize,
    pub url: Url,
    pub key: String,
    /// Peers its stream must list to count as converged.
    pub expect: usize,
    pub newcomer: NodePublicKey,
    pub zstd: bool,
    pub decode: Decode,
    /// Set when the bench is over: a stream that ends then is not redialled.
    pub stop: Arc<AtomicBool>,
}

impl Node {
    /// Enrolls (holding `permit` until the first map), then follows the
    /// stream for as long as the task lives.
    pub async fn run(self, permit: OwnedSemaphorePermit, events: mpsc::UnboundedSender<Event>) {
        let mut sim = SimNode::new(&self.url, &format!("bench{}", self.idx));
        let enrolled = async {
            sim.connect().await?;
            sim.register_ts(&self.key).await?;
            self.open(&sim).await
        }
        .await;
        let mut updates = match enrolled {
            Ok(u) => u,
            Err(e) => {
                let _ = events.send(Event::Failed(self.idx, format!("{e:#}")));
                return;
            }
        };
        let mut permit = Some(permit);
        let mut peers: HashSet<i64> = HashSet::new();
        let mut me = 0i64;
        let (mut converged, mut seen, mut back) = (false, false, true);
        loop {
            while let Some(u) = updates.next().await {
                let now = Instant::now();
                if let Some(id) = u.me {
                    me = id;
                    if permit.take().is_some() {
                        let _ = events.send(Event::First);
                    }
                }
                if let Some(list) = u.full {
                    peers = list.into_iter().collect();
                    if !back {
                        back = true;
                        let _ = events.send(Event::Back(self.idx, me, peers.len()));
                    }
                }
                for id in u.remove {
                    peers.remove(&id);
                }
                peers.extend(u.upsert);
                if !seen && u.newcomer {
                    seen = true;
                    let _ = events.send(Event::Seen(now));
                }
                if !converged && peers.len() >= self.expect {
                    converged = true;
                    let _ = events.send(Event::Converged);
                }
            }
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let _ = events.send(Event::Down(self.idx, me, peers.len()));
            back = false;
            match self.reconnect(&mut sim).await {
                Ok(u) => updates = u,
                Err(e) => {
                    let _ = events.send(Event::Failed(self.idx, format!("{e:#}")));
                    return;
                }
            }
        }
    }

    async fn open(&self, sim: &SimNode) -> anyhow::Result<Updates> {
        decode::open(sim, self.zstd, self.decode, self.newcomer).await
    }

    /// Dials until the server answers again, then reopens the map stream
    /// (the node is registered: no new registration, as a real client).
    async fn reconnect(&self, sim: &mut SimNode) -> anyhow::Result<Updates> {
        let give_up = Instant::now() + RECONNECT_FOR;
        let mut failures = 0;
        loop {
            failures += 1;
            tokio::time::sleep(backoff(failures)).await;
            let attempt = async {
                sim.connect().await?;
                self.open(sim).await
            };
            match tokio::time::timeout(STEP_TIMEOUT, attempt).await {
                Ok(Ok(u)) => return Ok(u),
                Ok(Err(e)) if Instant::now() > give_up => return Err(e),
                Err(_) if Instant::now() > give_up => anyhow::bail!("reconnect timed out"),
                _ => {}
            }
        }
    }
}

/// The pause before a map stream's `n`th redial, as tailscaled's map
/// routine waits (`util/backoff`, capped at 30 s there): n² × 10 ms, spread
/// over 0.5–1.5× so that clients which lost the server together do not
/// come back together. The fixed 100–200 ms pause used before redialled
/// far more often than real clients: in a 10,000-node restart profile of
/// the bench process, `connect` calls took 15 % of its CPU.
fn backoff(n: u32) -> Duration {
    let base = Duration::from_millis(10 * u64::from(n) * u64::from(n)).min(MAX_BACKOFF);
    base.mul_f64(rand::thread_rng().gen_range(0.5..1.5))
}

/// Everything the node tasks reported so far.
#[derive(Debug, Default)]
pub struct Tally {
    pub first: usize,
    pub converged: usize,
    pub seen: Vec<Instant>,
    /// Per node that went down: (node id, peers) before, and after.
    pub down: HashMap<usize, (i64, usize)>,
    pub back: HashMap<usize, (i64, usize)>,
}

impl Tally {
    fn add(&mut self, ev: Event) -> anyhow::Result<()> {
        match ev {
            Event::First => self.first += 1,
            Event::Failed(i, e) => anyhow::bail!("node {i}: {e}"),
            Event::Converged => self.converged += 1,
            Event::Seen(at) => self.seen.push(at),
            Event::Down(i, id, peers) => {
                self.down.insert(i, (id, peers));
            }
            Event::Back(i, id, peers) => {
                self.back.insert(i, (id, peers));
            }
        }
        Ok(())
    }

    /// Takes events until `done` holds, within `within`.
    pub async fn until(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<Event>,
        within: Duration,
        what: &str,
        done: impl Fn(&Tally) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        while !done(self) {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(ev)) => self.add(ev)?,
                Ok(None) => anyhow::bail!("{what}: every node task ended"),
                Err(_) => anyhow::bail!(
                    "{what}: not within {within:?} (first maps {}, converged {}, seen {}, \
                     down {}, back {})",
                    self.first,
                    self.converged,
                    self.seen.len(),
                    self.down.len(),
                    self.back.len()
                ),
            }
        }
        Ok(())
    }
}
