//! Test support: the operations over a throwaway database, auditing to a
//! file in the same temp dir, for any module's tests.

use std::path::PathBuf;
use std::time::Duration;

use super::audit::{Audit, Entry, Settings};
use super::{Admin, Caller, Transport};
use crate::state::StateHandle;
use crate::types::Scope;

/// Keep `dir` bound while the test runs: dropping it deletes everything.
pub(crate) struct Fixture {
    pub dir: tempfile::TempDir,
    pub state: StateHandle,
    pub admin: Admin,
    pub audit_path: PathBuf,
}

pub(crate) async fn fixture() -> Fixture {
    let (dir, state) = crate::state::testing::temp_state(Duration::from_secs(1800)).await;
    let audit_path = dir.path().join("audit.jsonl");
    let audit = Audit::open(Some(Settings {
        path: audit_path.clone(),
        max_size: 100 << 20,
        max_files: 2,
    }))
    .expect("audit log");
    let admin = Admin::start(state.clone(), audit, super::TokenKey::random())
        .await
        .expect("admin");
    Fixture {
        dir,
        state,
        admin,
        audit_path,
    }
}

/// Replica `name` on the test database `pg` (no safety poll), with its
/// own operations auditing nowhere.
pub(crate) async fn replica(pg: &crate::db::testing::PgTemp, name: &str) -> (StateHandle, Admin) {
    replica_auditing(pg, name, Audit::open(None).unwrap()).await
}

/// As `replica`, auditing to `audit` (and so, with replicas, to the
/// shared trail too).
pub(crate) async fn replica_auditing(
    pg: &crate::db::testing::PgTemp,
    name: &str,
    audit: Audit,
) -> (StateHandle, Admin) {
    let db = pg.db_named(name).await;
    let state = crate::state::testing::replica(db, crate::state::testing::no_poll()).await;
    let admin = Admin::start(state.clone(), audit, super::TokenKey::random())
        .await
        .expect("admin");
    (state, admin)
}

impl Fixture {
    /// Every audit line so far (written lines are on disk once the
    /// mutation returned; events may lag, see `wait_audit`).
    pub fn audit(&self) -> Vec<Entry> {
        std::fs::read_to_string(&self.audit_path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit lines are entries"))
            .collect()
    }

    /// Waits (bounded) until the log holds `n` lines.
    pub async fn wait_audit(&self, n: usize) -> Vec<Entry> {
        for _ in 0..200 {
            let lines = self.audit();
            if lines.len() >= n {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.audit()
    }
}

/// A caller with an API key of `scope` (prefix `0123456789ab`).
pub(crate) fn key_caller(scope: Scope) -> Caller {
    Caller::api_key("0123456789ab", scope, Transport::RestV1)
}

/// The local socket's caller (uid 0).
pub(crate) fn local() -> Caller {
    Caller::local(Some(0), Transport::RestV1)
}

/// Everything logged on this thread while the returned guard lives. Tests
/// that capture logs run one at a time: scoped subscribers set up and torn
/// down concurrently on other threads can leave a callsite's cached
/// interest without this one, and the capture would miss events.
///
/// A second, silent dispatcher stays registered alongside the capture:
/// while exactly one is registered, tracing-core 0.1.36 works out a newly
/// hit callsite's interest from the hitting thread's default (here another
/// test's thread, which has none), caches "never" and lowers the global
/// maximum level to OFF, so the capture stays empty (tokio-rs/tracing#3611).
/// With two, it asks every registered dispatcher.
pub(crate) async fn capture_logs() -> (LogCapture, CaptureGuard) {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let turn = ONE_AT_A_TIME.lock().await;
    let silent = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let logs = LogCapture::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    (
        logs,
        CaptureGuard {
            _log: guard,
            _silent: silent,
            _turn: turn,
        },
    )
}

/// Keep it alive while capturing.
pub(crate) struct CaptureGuard {
    _log: tracing::subscriber::DefaultGuard,
    _silent: tracing::Dispatch,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// The text [`capture_logs`] collected.
#[derive(Clone, Default)]
pub(crate) struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
