//! Test support: a running state writer on a throwaway SQLite database, for
//! any module's tests that need a real `StateHandle`.

use std::sync::Arc;
use std::time::Duration;

use super::ipam::{Ipam, Strategy};
use super::{LoginRules, Options, RegisterInput, Settings, StateHandle, start};
use crate::clock::SystemClock;
use crate::db::{Db, Target};
use crate::mapper::sessions::Sessions;
use crate::types::{MachinePublic, NodePublic};

/// Starts a writer over a fresh database in a new temp dir (MagicDNS domain
/// `clawql.local`, Tailscale's address ranges). Keep the `TempDir` alive for
/// as long as the state is used: dropping it deletes the database.
pub(crate) async fn temp_state(ephemeral_timeout: Duration) -> (tempfile::TempDir, StateHandle) {
    temp_state_with(ephemeral_timeout, false).await
}

/// As `temp_state`; `policy_strict` as `policy.strict` in the config.
pub(crate) async fn temp_state_with(
    ephemeral_timeout: Duration,
    policy_strict: bool,
) -> (tempfile::TempDir, StateHandle) {
    let (dir, _, state) = try_temp_state(ephemeral_timeout, policy_strict, None).await;
    (dir, state.expect("state writer"))
}

/// [`temp_state`], plus a handle on the writer's database (for fault
/// injection and for checking what was really committed).
pub(crate) async fn temp_state_with_db(
    ephemeral_timeout: Duration,
) -> (tempfile::TempDir, Db, StateHandle) {
    let (dir, db, state) = try_temp_state(ephemeral_timeout, false, None).await;
    (dir, db, state.expect("state writer"))
}

/// Starts a writer as `temp_state_with` does; with `policy_file`, the
/// policy comes from a file with that text (`policy.mode: file`).
pub(crate) async fn try_temp_state(
    ephemeral_timeout: Duration,
    policy_strict: bool,
    policy_file: Option<String>,
) -> (tempfile::TempDir, Db, super::Result<StateHandle>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::connect(&Target::Sqlite {
        path: dir.path().join("db.sqlite"),
        write_ahead_log: true,
    })
    .await
    .expect("database");
    let state = start_on(
        db.clone(),
        ephemeral_timeout,
        policy_strict,
        policy_file,
        LoginRules::default(),
    )
    .await;
    (dir, db, state)
}

/// A writer with `login` as `node.expiry`/`node.require_approval` say.
pub(crate) async fn temp_state_login(login: LoginRules) -> (tempfile::TempDir, StateHandle) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::connect(&Target::Sqlite {
        path: dir.path().join("db.sqlite"),
        write_ahead_log: true,
    })
    .await
    .expect("database");
    let state = start_on(db, Duration::from_secs(1800), false, None, login).await;
    (dir, state.expect("state writer"))
}

/// A second writer over `db` (the first one's database), as after a
/// restart. `_dir` must be the first writer's temp dir, still alive.
pub(crate) async fn restart(_dir: &tempfile::TempDir, db: Db) -> StateHandle {
    start_on(
        db,
        Duration::from_secs(1800),
        false,
        None,
        LoginRules::default(),
    )
    .await
    .expect("state writer")
}

/// Replication options for tests: no safety poll, so only notifications
/// and reconnects bring a replica up to date.
pub(crate) fn no_poll() -> super::ReplicaOptions {
    super::ReplicaOptions {
        poll: Duration::from_secs(3600),
        ..Default::default()
    }
}

/// A writer over `db` (PostgreSQL: one replica among others on it), with
/// `replica` as the replication options.
pub(crate) async fn replica(db: Db, replica: super::ReplicaOptions) -> StateHandle {
    start_with_opts(
        db,
        Duration::from_secs(1800),
        false,
        None,
        LoginRules::default(),
        replica,
    )
    .await
    .expect("state writer")
}

async fn start_on(
    db: Db,
    ephemeral_timeout: Duration,
    policy_strict: bool,
    policy_file: Option<String>,
    login: LoginRules,
) -> super::Result<StateHandle> {
    let replica = Default::default();
    start_with_opts(
        db,
        ephemeral_timeout,
        policy_strict,
        policy_file,
        login,
        replica,
    )
    .await
}

async fn start_with_opts(
    db: Db,
    ephemeral_timeout: Duration,
    policy_strict: bool,
    policy_file: Option<String>,
    login: LoginRules,
    replica: super::ReplicaOptions,
) -> super::Result<StateHandle> {
    let settings = Settings {
        base_domain: "clawql.local".into(),
        derp_map: Default::default(),
        dns: Default::default(),
        domain: "clawql.local".into(),
        certs: Default::default(),
        login_url: String::new(),
    };
    let opts = Options {
        ipam: Ipam {
            v4: Some("100.64.0.0/10".parse().expect("prefix")),
            v6: Some("fd7a:115c:a1e0::/48".parse().expect("prefix")),
            strategy: Strategy::Sequential,
        },
        ephemeral_inactivity_timeout: ephemeral_timeout,
        policy_store: match policy_file {
            Some(_) => super::policy::PolicyStore::File,
            None => super::policy::PolicyStore::Database,
        },
        policy_text: policy_file,
        policy_strict,
        dns: Default::default(),
        login,
        replica,
    };
    start(db, settings, Sessions::new(), Arc::new(SystemClock), opts).await
}

/// A registration of machine `machine` with node key `node` (each key all
/// that byte), with pre-auth key `key` or none (an interactive login).
pub(crate) fn register_input(
    machine: u8,
    node: u8,
    key: Option<&str>,
    hostname: &str,
) -> RegisterInput {
    RegisterInput {
        machine_key: MachinePublic([machine; 32]),
        node_key: NodePublic([node; 32]),
        old_node_key: None,
        auth_key: key.map(str::to_string),
        expiry: None,
        hostinfo: serde_json::json!({ "Hostname": hostname }),
        ephemeral: false,
        version: 133,
    }
}

/// Waits until `cond` holds (a replica following the database, a request
/// reaching a store), failing the test after 5 s.
pub(crate) async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = tokio::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{what} within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
