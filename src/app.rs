//! Wiring: open the database, start the state writer and the admin
//! operations, bind listeners, run the embedded DERP/STUN, serve the admin
//! socket. Nothing else lives here.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use tokio::net::{TcpListener, UdpSocket};

use crate::admin::Admin;
use crate::admin::audit::{self, Audit};
use crate::certs;
use crate::clock::{Clock, SystemClock};
use crate::config::{self, Config};
use crate::control::{self, ControlState};
use crate::db::{self, Db};
use crate::derp;
use crate::http::listener;
use crate::http::metrics::{self, Metrics, Snapshot, SnapshotSource};
use crate::limits;
use crate::mapper::sessions::Sessions;
use crate::state::policy::PolicyStore;
use crate::state::{self, StateHandle, ipam};
use crate::types::NodePublic;

mod derp_map;
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
    /// The admin operations (what every API calls).
    pub admin: Admin,
    /// Where remote gRPC listens, if configured.
    pub api: crate::api::Bound,
}

/// Runs the server until SIGINT/SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    for w in &config.warnings {
        tracing::warn!("config: {w}");
    }
    raise_open_file_limit();
    avoid_huge_pages();
    let running = start(config).await?;
    tracing::info!(
        addr = %running.addr,
        stun = ?running.stun_addr,
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
    let target = db_target(&config.database);
    if let db::Target::Sqlite { path, .. } = &target {
        // First, before any listener is bound, so a second server on the
        // same file fails with this error. Held by a task of this server's
        // runtime: released when the server (or its process) ends.
        let lock = db::process_lock::acquire(path)?;
        tokio::spawn(async move {
            let _lock = lock;
            std::future::pending::<()>().await
        });
    }
    let noise_key = crate::noise::load_or_create(&config.noise_private_key_path)
        .with_context(|| "loading the Noise private key")?;

    // Bound now for its address; it listens only once everything is ready.
    let listener = listener::Bound::new(config.listen_addr)
        .with_context(|| format!("binding {}", config.listen_addr))?;
    let addr = listener.local_addr();
    let server_url = settings::effective_server_url(&config.server_url, addr);
    // What clients log in through: auth and SSH check URLs must name it.
    let login_url = config
        .login_url
        .clone()
        .unwrap_or_else(|| server_url.clone());

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

    // Current clients check the relay's certificate by its pin whenever a
    // pin can verify it, so a private CA or a self-signed certificate needs
    // no trust set up on them; clients before 1.82 get the map without
    // pins (mapper) and check the name against their trust store.
    let embedded = match &derp_parts {
        Some((d, tls, _, _)) if d.automatically_add_embedded_derp_region => Some(
            settings::embedded_region(&server_url, d, tls.cert_name(), stun_addr)?,
        ),
        _ => None,
    };
    let self_signed_relay = embedded.is_some() && config.tls.cert_path.is_none();
    let replica = state::ReplicaOptions {
        derp_region: embedded.clone(),
        ..Default::default()
    };
    let mut derp_maps = derp_map::Loader::new(derp_map::Sources::new(&config.derp, embedded))?;
    let derp_map = derp_maps.initial().await.context("building the DERP map")?;
    let mut world_settings = settings::world_settings(&config, derp_map, &login_url);
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
        dns: settings::dns_base(&config),
        login: state::LoginRules {
            node_expiry: config
                .login
                .node_expiry
                .and_then(|d| chrono::Duration::from_std(d).ok()),
            require_approval: config.login.require_approval,
        },
        replica,
    };
    let state = state::start(db, world_settings, sessions, clock, opts).await?;
    tokio::spawn(derp_maps.refresh_forever(state.clone()));

    let audit = Audit::open(config.audit.path.as_ref().map(|path| audit::Settings {
        path: path.clone(),
        max_size: config.audit.max_size,
        max_files: config.audit.max_files,
    }))
    .context("opening the audit log")?;
    let admin = Admin::start(state.clone(), audit, token_key(&noise_key))
        .await
        .context("starting the admin operations")?;

    let metrics = Metrics::new();
    if let (PolicyStore::File, Some(path)) = (policy_store, &config.policy.path) {
        policy_file::watch(path.clone(), admin.clone(), state.clone(), metrics.clone())
            .context("watching the policy file")?;
    }
    if let Some(path) = &config.dns.extra_records_path {
        extra_records::watch(path.clone(), state.clone())
            .context("watching the DNS extra records file")?;
    }
    let challenges = config.dns.certs.enabled.then(|| {
        Arc::new(certs::Challenges::new(
            state.clock(),
            certs::CHALLENGE_LIFETIME,
        ))
    });
    let dns = dns::start(
        &config,
        &state,
        challenges.clone().map(|c| (c, metrics.clone())),
    )
    .await?;
    let public = settings::connection_limits(&config.connections);
    let mut cs = ControlState::new(state.clone(), noise_key, metrics.clone());
    cs.challenges = challenges;
    let ssh_checks = crate::auth::ssh_check::SshChecks::new(state.clone(), admin.clone());
    cs.ssh_checks = Some(ssh_checks.clone());
    cs.self_signed_relay = self_signed_relay;
    cs.timeouts = public.timeouts;
    cs.batch_change_delay = config.batch_change_delay;
    admin.registrations().set_ttl(config.login.register_ttl);
    let mut auth_flows = crate::auth::AuthFlows::new(&login_url, admin.registrations().clone());
    if config.oidc.is_some() {
        auth_flows.provider = Some(Arc::new(crate::auth::oidc::StartPage));
    }
    cs.auth = Some(auth_flows.clone());
    let health = Router::new()
        .route("/healthz", get(healthz))
        .with_state(state.clone());
    let (whois_router, whois) = crate::whois::start(
        &config.whois,
        state.clone(),
        admin.keys().clone(),
        metrics.clone(),
    )
    .await
    .context("starting the whois API")?;
    let (api_router, api) = crate::api::start(&config, admin.clone(), public.timeouts)
        .await
        .context("starting the admin API")?;
    let mut app = control::public_router(cs)
        .merge(crate::auth::register_page::router(auth_flows))
        .merge(health)
        .merge(whois_router)
        .merge(api_router);
    if let Some(oidc) = &config.oidc {
        // The provider sends the browser back to where people log in:
        // with replicas, the balancer, so any replica may take the
        // callback (logins in progress are shared) and one redirect URI
        // serves them all.
        let routes =
            crate::auth::oidc::router(oidc.clone(), &login_url, &state, admin.clone(), ssh_checks)
                .context("setting up OpenID Connect login")?;
        app = app.merge(routes);
    }

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
        tokio::spawn(listener::serve(l, metrics_router, None, public.clone()));
    }

    let listener = listener
        .listen()
        .with_context(|| format!("listening on {addr}"))?;
    tokio::spawn(listener::serve(listener, app, tls_config, public.clone()));

    let config = Arc::new(config);

    Ok(Running {
        addr,
        stun_addr,
        server_url,
        state,
        derp: derp_server,
        config,
        whois,
        dns,
        admin,
        api,
    })
}

/// The key API v2 access tokens are signed with: HMAC-SHA256 of a fixed
/// label under the server's Noise private key. Derived, not stored, so
/// tokens outlive a restart (an OAuth client library keeps its token for
/// its whole hour) without another secret on disk; the label keeps it
/// apart from any other use of that key.
fn token_key(noise: &x25519_dalek::StaticSecret) -> crate::admin::TokenKey {
    use hmac::{Hmac, Mac};
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(noise.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"clawscale API v2 access token signing key");
    crate::admin::TokenKey::new(mac.finalize().into_bytes().into())
}

/// Raises the soft open-file limit to the hard limit and logs the result
/// (see `limits::nofile`); a failure leaves the limit and is only logged.
fn raise_open_file_limit() {
    let show = |n: Option<u64>| n.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
    match limits::nofile::raise() {
        Ok(n) if n.before != n.soft => tracing::info!(
            "raised the open-file limit from {} to {} (the hard limit)",
            show(n.before),
            show(n.soft)
        ),
        Ok(n) => tracing::info!(
            "open-file limit is {} (already the hard limit)",
            show(n.soft)
        ),
        Err(e) => tracing::warn!(
            error = %e,
            "cannot raise the open-file limit; staying at {}",
            show(limits::nofile::soft_limit())
        ),
    }
}

/// Turns transparent huge pages off for this process. The allocator gives
/// freed pages back within milliseconds and map building frees and
/// allocates constantly; with huge pages each page touched again after
/// that was a 2 MiB page for the kernel to clear (9 % of the server's CPU
/// in the 10,000-node enrollment bench, and 12 % less CPU without them:
/// docs/performance.md, "Writes and enrollment"). Memory use did not
/// change. Public for the enrollment bench, whose server process must match
/// this one.
pub fn avoid_huge_pages() {
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::warn!(error = %e, "cannot turn transparent huge pages off");
    }
}

/// Healthy when the state writer runs and the database commits a write in
/// time; 503 otherwise (e.g. while the disk is full or PostgreSQL is down).
async fn healthz(
    axum::extract::State(state): axum::extract::State<StateHandle>,
) -> (axum::http::StatusCode, &'static str) {
    use axum::http::StatusCode;
    match tokio::time::timeout(std::time::Duration::from_secs(5), state.health()).await {
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
        let writer = self.state.batch_counts();
        Snapshot {
            map_sessions: self.state.sessions().total() as i64,
            nodes: world.nodes.len() as i64,
            nodes_online: world.online.len() as i64,
            derp_clients: derp.clients_connected as i64,
            derp_packets_relayed: derp.packets_relayed,
            writer_batches: writer.batches,
            writer_jobs: writer.jobs,
            writer_busy_seconds: writer.busy.as_secs_f64(),
        }
    }
}

/// Where the configured database lives, for `db::Db::connect`.
pub fn db_target(database: &config::Database) -> db::Target {
    match database {
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
    }
}

/// Creates the data directory 0700; an existing one open to group or others
/// is kept as it is (an operator may mean it) but logged, since it holds the
/// private keys and usually the database.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Ok(meta) = std::fs::metadata(dir) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %dir.display(),
                mode = format_args!("{mode:o}"),
                "data directory is accessible to group or others; chmod 700 it"
            );
        }
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
