//! Wiring: open the database, start the state writer, bind listeners, run
//! the embedded DERP/STUN, serve the admin socket. Nothing else lives here.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use tokio::net::{TcpListener, UdpSocket};

use crate::clock::{Clock, SystemClock};
use crate::config::{self, Config};
use crate::control::{self, ControlState};
use crate::db::{self, Db};
use crate::derp;
use crate::http::listener;
use crate::http::metrics::{self, Metrics, Snapshot, SnapshotSource};
use crate::mapper::sessions::Sessions;
use crate::state::policy::PolicyStore;
use crate::state::{self, StateHandle, ipam};
use crate::types::NodePublic;

mod dns;
mod extra_records;
mod policy_file;
mod settings;
mod watched_file;

pub use dns::DnsAddrs;

/// A started server; dropping it does not stop the tasks (use the runtime).
pub struct Running {
    pub addr: SocketAddr,
    pub stun_addr: Option<SocketAddr>,
    pub server_url: String,
    pub state: StateHandle,
    pub derp: Option<derp::Server>,
    pub config: Arc<Config>,
    /// Where the whois listeners (if configured) are bound.
    pub whois: crate::whois::Bound,
    /// The authoritative DNS server's addresses (`dns.server.enabled`).
    pub dns: Option<DnsAddrs>,
}

/// Runs the server until SIGINT/SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    for w in &config.warnings {
        tracing::warn!("config: {w}");
    }
    let running = start(config).await?;
    tracing::info!(
        addr = %running.addr,
        server_url = %running.server_url,
        "clawscale is serving"
    );
    shutdown_signal().await;
    tracing::info!("shutting down");
    Ok(())
}

/// Starts every component and returns once all listeners are bound.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    create_private_dir(&config.data_dir)?;
    let noise_key = crate::noise::load_or_create(&config.noise_private_key_path)
        .with_context(|| "loading the Noise private key")?;

    let listener = TcpListener::bind(config.listen_addr)
        .await
        .with_context(|| format!("binding {}", config.listen_addr))?;
    let addr = listener.local_addr()?;
    let server_url = settings::effective_server_url(&config.server_url, addr);

    let stun = match config.derp.server.as_ref().and_then(|d| d.stun_listen_addr) {
        Some(a) => {
            let sock = UdpSocket::bind(a)
                .await
                .with_context(|| format!("binding STUN on {a}"))?;
            Some(sock)
        }
        None => None,
    };
    let stun_addr = stun.as_ref().map(|s| s.local_addr()).transpose()?;

    let target = match &config.database {
        config::Database::Sqlite {
            path,
            write_ahead_log,
        } => db::Target::Sqlite {
            path: path.clone(),
            write_ahead_log: *write_ahead_log,
        },
        config::Database::Postgres {
            url,
            max_open_conns,
        } => db::Target::Postgres {
            url: url.clone(),
            max_connections: *max_open_conns,
        },
    };
    let db = Db::connect(&target).await.context("opening the database")?;
    let (policy_store, policy_text) = policy_file::initial(&config.policy)?;
    tracing::info!(engine = db.engine(), "database ready");

    // DERP TLS first: its certificate pin goes into the DERP map.
    let derp_parts = match &config.derp.server {
        Some(d) => {
            let names = settings::tls_names(&server_url, d, addr);
            let (cert, key) = match (&config.tls.cert_path, &config.tls.key_path) {
                (Some(c), Some(k)) => (c.clone(), k.clone()),
                _ => (d.tls_cert_path.clone(), d.tls_key_path.clone()),
            };
            let tls = derp::tls::load_or_generate(&cert, &key, &names)
                .context("loading or generating the DERP TLS certificate")?;
            let self_signed = config.tls.cert_path.is_none();
            let derp_key = derp::key::load_or_create(&d.private_key_path)
                .context("loading the DERP private key")?;
            Some((d.clone(), tls, self_signed, derp_key))
        }
        None => None,
    };

    let mut world_settings = settings::world_settings(
        &config,
        &server_url,
        derp_parts
            .as_ref()
            .map(|(d, tls, self_signed, _)| (d, *self_signed, tls.cert_name(), stun_addr)),
    )?;
    world_settings.dns.extra_records = extra_records::initial(&config.dns)?;
    let sessions = Sessions::new();
    let opts = state::Options {
        ipam: ipam::Ipam {
            v4: config.prefixes.v4,
            v6: config.prefixes.v6,
            strategy: match config.prefixes.allocation {
                config::Allocation::Sequential => ipam::Strategy::Sequential,
                config::Allocation::Random => ipam::Strategy::Random,
            },
        },
        ephemeral_inactivity_timeout: config.ephemeral_node_inactivity_timeout,
        policy_store,
        policy_text,
        policy_strict: config.policy.strict,
    };
    let state = state::start(db, world_settings, sessions, clock, opts).await?;

    let metrics = Metrics::new();
    if let (PolicyStore::File, Some(path)) = (policy_store, &config.policy.path) {
        policy_file::watch(path.clone(), state.clone(), metrics.clone())
            .context("watching the policy file")?;
    }
    if let Some(path) = &config.dns.extra_records_path {
        extra_records::watch(path.clone(), state.clone())
            .context("watching the DNS extra records file")?;
    }
    let dns = dns::start(&config, &state).await?;
    let cs = ControlState::new(state.clone(), noise_key, metrics.clone());
    let health = Router::new()
        .route("/healthz", get(healthz))
        .with_state(state.clone());
    let (whois_router, whois) = crate::whois::start(&config.whois, state.clone(), metrics.clone())
        .await
        .context("starting the whois API")?;
    let mut app = control::public_router(cs).merge(health).merge(whois_router);

    let mut tls_config = None;
    let mut derp_server = None;
    if let Some((d, tls, _, derp_key)) = derp_parts {
        let verifier: Arc<dyn derp::ClientVerifier> = if d.verify_clients {
            Arc::new(TailnetVerifier(state.clone()))
        } else {
            Arc::new(derp::AllowAll)
        };
        let server = derp::Server::new(derp_key, verifier);
        app = app.merge(derp::http::router(server.clone()));
        tls_config = Some(tls.server_config.clone());
        derp_server = Some(server);
    }
    if let Some(sock) = stun {
        tokio::spawn(derp::stun::serve(sock));
    }

    let source: Arc<dyn SnapshotSource> = Arc::new(LiveSnapshot {
        state: state.clone(),
        derp: derp_server.clone(),
    });
    let metrics_router = Router::new()
        .route("/metrics", get(metrics::handler))
        .with_state((metrics.clone(), source));
    app = app.merge(metrics_router.clone());
    if let Some(m) = config.metrics_listen_addr {
        let l = TcpListener::bind(m)
            .await
            .with_context(|| format!("binding metrics on {m}"))?;
        tokio::spawn(async move { axum::serve(l, metrics_router).await });
    }

    tokio::spawn(listener::serve(listener, app, tls_config));

    let config = Arc::new(config);
    crate::admin::start(&config, state.clone())
        .await
        .context("starting the admin API")?;

    Ok(Running {
        addr,
        stun_addr,
        server_url,
        state,
        derp: derp_server,
        config,
        whois,
        dns,
    })
}

/// Healthy when the state writer runs and the database answers in time.
async fn healthz(
    axum::extract::State(state): axum::extract::State<StateHandle>,
) -> (axum::http::StatusCode, &'static str) {
    use axum::http::StatusCode;
    match tokio::time::timeout(std::time::Duration::from_secs(5), state.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ok\n"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n")
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "state writer not responding\n",
        ),
    }
}

/// DERP admission: only node keys of live (non-expired) tailnet nodes.
struct TailnetVerifier(StateHandle);

impl derp::ClientVerifier for TailnetVerifier {
    fn is_allowed(&self, node_key: &[u8; 32]) -> bool {
        self.0
            .world()
            .is_live_node_key(&NodePublic(*node_key), self.0.now())
    }
}

struct LiveSnapshot {
    state: StateHandle,
    derp: Option<derp::Server>,
}

impl SnapshotSource for LiveSnapshot {
    fn snapshot(&self) -> Snapshot {
        let world = self.state.world();
        let derp = self.derp.as_ref().map(|d| d.stats()).unwrap_or_default();
        Snapshot {
            map_sessions: self.state.sessions().total() as i64,
            nodes: world.nodes.len() as i64,
            nodes_online: world.online.len() as i64,
            derp_clients: derp.clients_connected as i64,
            derp_packets_relayed: derp.packets_relayed,
        }
    }
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Whether an address is usable as a dial target (not 0.0.0.0 / ::).
fn dialable(ip: IpAddr) -> bool {
    !ip.is_unspecified()
}
