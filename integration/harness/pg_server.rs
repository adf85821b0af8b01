//! A private PostgreSQL server for one test, which the test stops and starts
//! under a running clawscale. The shared cluster (`postgres`) serves other
//! tests and engineers and must never be stopped.
//!
//! Owns: `initdb` into a temp directory (as the `postgres` OS user, via
//! `runuser`), starting and stopping with `pg_ctl`, and pointing a server
//! config at it. Listens on a unix socket in that directory only (no TCP;
//! `listen_addresses=''`), with a port number unique to this test for the
//! socket's name; `trust` authentication for the `postgres` role, which
//! nothing outside the directory can reach. Depends on the Debian server
//! binaries under `/usr/lib/postgresql/<version>/bin` (package
//! `postgresql`, installed by `.ci/run`), util-linux `runuser`, and root.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use super::netns::CLEAN_PATH;
use super::process::{CmdOutput, run};
use super::server::ServerConfig;

const PG_TIMEOUT: Duration = Duration::from_secs(90);
/// The database clawscale uses on this server.
const DB_NAME: &str = "clawscale";

/// A running (or stopped) private PostgreSQL server; stopped and deleted on
/// drop.
pub struct PgServer {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    running: bool,
}

impl PgServer {
    /// Creates the cluster, starts it and creates the `clawscale` database.
    pub fn start() -> PgServer {
        let bin = newest_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("clawscale-pg-")
            .tempdir()
            .expect("temp dir for PostgreSQL");
        let (uid, gid) = postgres_ids();
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown to postgres");
        let sock = dir.path().join("sock");
        fs::create_dir(&sock).expect("socket dir");
        std::os::unix::fs::chown(&sock, Some(uid), Some(gid)).expect("chown to postgres");
        let mut pg = PgServer {
            dir,
            bin,
            port: unique_port(),
            running: false,
        };
        let out = run(
            pg.as_postgres("initdb")
                .args([
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "-D",
                ])
                .arg(pg.data()),
            PG_TIMEOUT,
        );
        pg.check(out, "initdb");
        pg.start_again();
        let out = run(
            pg.as_postgres("psql")
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
                .arg(pg.socket_dir())
                .args(["-p", &pg.port.to_string(), "-d", "postgres", "-c"])
                .arg(format!("CREATE DATABASE {DB_NAME}")),
            PG_TIMEOUT,
        );
        pg.check(out, "CREATE DATABASE");
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// `program` from the server's bin directory, run as `postgres` in the
    /// temp directory (the test's own directory may be closed to it).
    fn as_postgres(&self, program: &str) -> Command {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", CLEAN_PATH);
        cmd
    }

    /// Starts the stopped server and waits until it accepts connections.
    pub fn start_again(&mut self) {
        assert!(!self.running, "PostgreSQL already running");
        let options = format!(
            "-k {} -p {} -c listen_addresses=''",
            self.socket_dir().display(),
            self.port
        );
        let out = run(
            self.as_postgres("pg_ctl")
                .args(["-w", "-t", "60", "-D"])
                .arg(self.data())
                .arg("-l")
                .arg(self.log())
                .args(["-o", &options, "start"]),
            PG_TIMEOUT,
        );
        self.check(out, "pg_ctl start");
        self.running = true;
    }

    /// Stops the server (fast shutdown: sessions are ended, as when an
    /// operator or a failover stops it).
    pub fn stop(&mut self) {
        self.stop_with("fast");
    }

    fn stop_with(&mut self, mode: &str) {
        if !self.running {
            return;
        }
        let out = run(
            self.as_postgres("pg_ctl")
                .args(["-w", "-t", "60", "-m", mode, "-D"])
                .arg(self.data())
                .arg("stop"),
            PG_TIMEOUT,
        );
        self.check(out, "pg_ctl stop");
        self.running = false;
    }

    /// Points `cfg` at this server's `clawscale` database.
    pub fn configure(&self, cfg: &mut ServerConfig) {
        cfg.remove("database.sqlite")
            .set("database.type", "postgres")
            .set(
                "database.postgres.host",
                self.socket_dir().to_string_lossy(),
            )
            .set("database.postgres.port", self.port)
            .set("database.postgres.name", DB_NAME)
            .set("database.postgres.user", "postgres")
            .set("database.postgres.ssl", false);
    }

    #[track_caller]
    fn check(&self, out: CmdOutput, what: &str) {
        if !out.success() {
            let log = fs::read_to_string(self.log()).unwrap_or_default();
            panic!("{what} failed:\n{out}\n--- postgres.log ---\n{log}");
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            let out = run(
                self.as_postgres("pg_ctl")
                    .args(["-w", "-t", "60", "-m", "immediate", "-D"])
                    .arg(self.data())
                    .arg("stop"),
                PG_TIMEOUT,
            );
            if !out.success() {
                eprintln!("harness: could not stop the private PostgreSQL:\n{out}");
            }
        }
    }
}

/// `/usr/lib/postgresql/<newest version>/bin`.
fn newest_bin_dir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir(root)
        .unwrap_or_else(|e| panic!("{}: {e} (install the postgresql package)", root.display()))
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .unwrap_or_else(|| panic!("no PostgreSQL server binaries under {}", root.display()))
}

/// The `postgres` OS user's uid and gid.
fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = run(Command::new("id").args([flag, "postgres"]), PG_TIMEOUT)
            .expect_success("id postgres (the postgresql package creates the user)");
        out.stdout.trim().parse().expect("numeric id")
    };
    (id("-u"), id("-g"))
}

/// A port number no other test of this process uses: it only names the
/// socket file in a private directory, so it cannot clash with the host's.
fn unique_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static SEQ: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 20_000) as u16;
    base + SEQ.fetch_add(1, Ordering::Relaxed)
}
