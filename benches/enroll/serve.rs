//! The server under test, run as a child process of the bench (`--serve`)
//! so it can be killed and started again on the same SQLite file and port,
//! and so its RSS and CPU are its own.
//!
//! On a fresh data directory it creates the users, pre-auth keys and (for
//! `--policy team`) the policy; each start prints one `ready {json}` line
//! with the keys, the number of nodes it loaded and its RSS, then serves
//! until its stdin closes (or it is killed).

use std::io::Read;
use std::path::Path;

use clawscale::config::PolicyMode;

use crate::server::{Store, TestServer, config};

/// Nodes per team in the team policy.
pub const TEAM_SIZE: usize = 100;

/// 100 nodes per user ("team"): each node sees its own team's devices and
/// the shared service `svc:mcp`, hosted by one node tagged
/// `tag:mcp-server` (which in turn sees every node that may reach it).
pub const TEAM_POLICY: &str = r#"{
  "tagOwners": {"tag:mcp-server": ["ops@example.com"]},
  "services": {"svc:mcp": {"hosts": ["tag:mcp-server"], "ports": ["tcp:443"]}},
  "grants": [
    {"src": ["autogroup:member"], "dst": ["autogroup:self"], "ip": ["*"]},
    {"src": ["autogroup:member"], "dst": ["svc:mcp"], "ip": ["tcp:443"]}
  ]
}"#;

/// What the server child prints when it is up.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Ready {
    /// One reusable key per team (one in all without a policy).
    pub keys: Vec<String>,
    /// A single-use key tagged `tag:mcp-server` (team policy only).
    pub mcp_key: Option<String>,
    /// Nodes loaded from the database at start.
    pub nodes: usize,
    pub rss_kib: u64,
    /// Its own pid: under `CLAWSCALE_BENCH_SERVER_WRAP` the child the bench
    /// started is the wrapper, not the server.
    pub pid: u32,
}

pub async fn serve(dir: &Path, port: u16, teams: usize) -> anyhow::Result<()> {
    let mut cfg = config(dir, &Store::Sqlite);
    cfg.listen_addr = ([127, 0, 0, 1], port).into();
    cfg.server_url = format!("http://127.0.0.1:{port}");
    // Every simulated node connects from 127.0.0.1.
    cfg.connections.max_per_ip = u32::MAX;
    cfg.policy.mode = PolicyMode::Database;
    let srv = TestServer::start_with(cfg).await?;
    let world = srv.state.world();
    let (mut keys, mut mcp_key) = (Vec::new(), None);
    if world.users.is_empty() {
        if teams == 0 {
            let user = srv.create_user("bench").await?;
            keys.push(srv.key(user, true).await?);
        } else {
            let ops = srv.create_user("ops").await?;
            srv.state.set_policy(TEAM_POLICY.into()).await?;
            let tags = vec!["tag:mcp-server".to_string()];
            let (_, k) = srv
                .state
                .create_preauth_key(ops, false, false, None, tags)
                .await?;
            mcp_key = Some(k);
            for t in 0..teams {
                let user = srv.create_user(&format!("team{t}")).await?;
                keys.push(srv.key(user, true).await?);
            }
        }
    }
    let ready = Ready {
        keys,
        mcp_key,
        nodes: world.nodes.len(),
        rss_kib: crate::sys::rss("self")?.current_kib,
        pid: std::process::id(),
    };
    println!("ready {}", serde_json::to_string(&ready)?);
    // Serve until the bench closes our stdin.
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await?;
    srv.stop().await;
    Ok(())
}

/// What the server at `addr` counted so far, from its `/metrics`: map
/// frames of each kind (`clawscale_map_frames_total`), since how many
/// deltas a workload costs is what batching and settling change and bytes
/// alone hide it; and the state writer's batches, jobs and busy seconds,
/// since one writer serialises every registration and presence change.
pub async fn counters(addr: std::net::SocketAddr) -> anyhow::Result<Counters> {
    let (status, body) = crate::server::http_get(addr, "/metrics").await?;
    anyhow::ensure!(status == 200, "GET /metrics: {status}");
    let text = String::from_utf8_lossy(&body);
    let value = |series: &str| -> anyhow::Result<f64> {
        let prefix = format!("{series} ");
        Ok(match text.lines().find_map(|l| l.strip_prefix(&prefix)) {
            Some(v) => v.trim().parse()?,
            None => 0.0, // nothing counted yet
        })
    };
    Ok(Counters {
        full_frames: value("clawscale_map_frames_total{kind=\"full\"}")? as u64,
        delta_frames: value("clawscale_map_frames_total{kind=\"delta\"}")? as u64,
        writer_batches: value("clawscale_writer_batches_total")? as u64,
        writer_jobs: value("clawscale_writer_jobs_total")? as u64,
        writer_busy_s: value("clawscale_writer_busy_seconds_total")?,
    })
}

/// Counts read by [`counters`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub full_frames: u64,
    pub delta_frames: u64,
    pub writer_batches: u64,
    pub writer_jobs: u64,
    pub writer_busy_s: f64,
}
