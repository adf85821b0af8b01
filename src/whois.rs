//! Identity for gateways: who is behind a tailnet address (user, node,
//! tags, app capabilities), answered centrally from the control plane's
//! own World, the way tailscaled's LocalAPI whois answers on one node.
//!
//! Owns: the answer builder (`answer`, pure: World → tailscaled's
//! `WhoIsResponse`), forward-auth decisions (`authorize`, pure), API key
//! checks with the admin API's key snapshot (`admin::keycache`), built answers reused
//! while their inputs are unchanged (`cache`), the audit log writer
//! (`audit`), and the HTTP handlers and listeners (`http`, this file).
//!
//! May depend on: `state` (World snapshots, API keys), `mapper::build` (the
//! wire node and profile conversion, so whois shows what clients get),
//! `policy` (CapMaps), `config`, `admin` (the API key cache), `http`
//! (unix socket binding, metrics). Mirrors tailscaled's `serveWhoIs` (ipn/localapi) in request
//! and response shape; see docs/whois.md.
//!
//! Lookups never touch the database: each request reads the newest World
//! (an `Arc` clone), so joins, tag changes, policy reloads and deletions
//! show at once.

pub mod answer;
pub mod audit;
pub mod authorize;
pub mod cache;
pub mod http;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ipnet::IpNet;

use crate::config;
use crate::http::metrics::Metrics;
use crate::state::{StateHandle, World};
use crate::types::NodeId;

/// How often at most the answer cache drops what the newest World made
/// stale: often enough that an old policy's filters do not pile up across
/// reloads, rarely enough that a burst of changes costs one sweep.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Mode of the whois unix socket: owner and group (a gateway's service
/// user added to the group) may connect.
pub const SOCKET_MODE: u32 = 0o660;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("whois unix socket: {0}")]
    Socket(#[from] crate::http::unix::BindError),
    #[error("binding whois.listen_addr {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("whois audit log {}: {source}", path.display())]
    Audit {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What every whois handler shares.
pub struct Service {
    pub state: StateHandle,
    /// `whois.gateway`: default CapMap destination.
    pub gateway: Option<String>,
    pub trusted_proxies: Vec<IpNet>,
    /// `whois.idle_timeout`, for the dedicated listeners.
    pub idle_timeout: std::time::Duration,
    pub keys: crate::admin::KeyCache,
    pub audit: Option<audit::AuditLog>,
    pub metrics: Arc<Metrics>,
    /// Parsed CapGrant rules per destination.
    pub caps: answer::CapCache,
    /// Built answers, reused while their inputs are unchanged.
    pub answers: Arc<cache::AnswerCache>,
}

impl Service {
    /// The CapMap destination: `dst` if given, else the configured gateway;
    /// resolved against `world` so a renamed or re-addressed gateway is
    /// followed.
    pub fn destination(&self, world: &World, dst: Option<&str>) -> Option<NodeId> {
        let spec = dst.or(self.gateway.as_deref())?;
        answer::resolve_node(world, spec).map(|n| n.id)
    }

    /// The answer for `query` (CapMap towards `dst`) in `world`, now.
    pub fn answer(
        &self,
        world: &Arc<World>,
        query: answer::Query,
        dst: Option<NodeId>,
    ) -> Option<Arc<cache::Answer>> {
        self.answers
            .get(world, query, dst, self.state.now(), &self.caps)
    }
}

/// Where the whois listeners ended up.
#[derive(Debug, Clone, Default)]
pub struct Bound {
    pub tcp: Option<SocketAddr>,
    pub unix: Option<PathBuf>,
}

/// Builds the service, binds the configured listeners (serving on spawned
/// tasks) and returns the router the public port mounts.
pub async fn start(
    cfg: &config::Whois,
    state: StateHandle,
    keys: crate::admin::KeyCache,
    metrics: Arc<Metrics>,
) -> Result<(axum::Router, Bound), Error> {
    let audit = match &cfg.audit_log {
        Some(p) => Some(audit::AuditLog::open(p, metrics.clone()).await?),
        None => None,
    };
    let svc = Arc::new(Service {
        keys,
        state,
        gateway: cfg.gateway.clone(),
        trusted_proxies: cfg.trusted_proxies.clone(),
        idle_timeout: cfg.idle_timeout,
        audit,
        metrics,
        caps: answer::CapCache::default(),
        answers: Arc::default(),
    });
    let clock = svc.state.clone();
    tokio::spawn(cache::sweep_on_change(
        svc.answers.clone(),
        svc.state.reader().subscribe(),
        move || clock.now(),
        SWEEP_EVERY,
    ));
    let mut bound = Bound::default();
    if let Some(path) = &cfg.unix_socket {
        let l = crate::http::unix::bind(path, SOCKET_MODE)?;
        tokio::spawn(http::serve_unix(l, svc.clone()));
        bound.unix = Some(path.clone());
    }
    if let Some(addr) = cfg.listen_addr {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        bound.tcp = l.local_addr().ok();
        tokio::spawn(http::serve_tcp(l, svc.clone()));
    }
    Ok((http::router(svc), bound))
}
