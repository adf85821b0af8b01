//! The `Rscale` fixture: the third-party control server rscale (crates.io
//! `rscale`, Apache-2.0, PostgreSQL only) in a topology's hub namespace, so
//! the side-by-side bench can enroll the same stock clients against it.
//!
//! Owns: finding its binary (`RSCALE_BIN`; this repository never builds or
//! vendors rscale), writing its TOML config (a throwaway PostgreSQL
//! database, the control listener on the hub address, its embedded DERP
//! relay on that same port and its STUN listener next to it), starting and
//! stopping it, waiting for `GET /readyz`, and minting a reusable auth key
//! with its `admin` CLI. Depends on `netns`, `process` and `postgres`.
//!
//! rscale answers TLS and plain HTTP on one port with a self-signed
//! certificate, so the DERP node is marked `insecure_for_tests`: clients
//! then skip certificate checks for that relay only, and everything stays on
//! the hub's bridge inside the test namespaces.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use super::netns::{CLEAN_PATH, Netns, Topology};
use super::postgres::PgDatabase;
use super::process::{CmdOutput, OwnedChild, run, tail_file};
use super::server::{CONTROL_PORT, STUN_PORT};
use super::try_wait_for;

/// Names the rscale executable; required whenever rscale is benchmarked.
pub const BIN_ENV: &str = "RSCALE_BIN";
const START_TIMEOUT: Duration = Duration::from_secs(60);
const CLI_TIMEOUT: Duration = Duration::from_secs(60);
const DERP_REGION: u32 = 900;

/// A running `rscale server` in the hub namespace. Dropping it stops the
/// server, then drops its database and temp directory.
pub struct Rscale {
    hub: Netns,
    ip: Ipv4Addr,
    bin: PathBuf,
    dir: TempDir,
    log_path: PathBuf,
    admin_token: String,
    child: Option<OwnedChild>,
    pg: Option<PgDatabase>,
}

impl Rscale {
    /// Starts rscale on a fresh database, listening on the hub address.
    /// Panics with a clear message when `RSCALE_BIN` is unset or wrong.
    pub fn start(topo: &Topology) -> Rscale {
        let bin = binary();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-rscale-", topo.tag()))
            .tempdir()
            .expect("create rscale temp dir");
        let pg = PgDatabase::create(&format!("{}rscale", topo.tag()));
        let ip = topo.hub_ip();
        let admin_token = random_hex(24);
        let config_path = dir.path().join("config.toml");
        fs::write(
            &config_path,
            config_toml(ip, &database_url(&pg), &admin_token),
        )
        .expect("write rscale config");
        let log_path = dir.path().join("rscale.log");
        let mut rscale = Rscale {
            hub: topo.hub().clone(),
            ip,
            bin,
            dir,
            log_path,
            admin_token,
            child: None,
            pg: Some(pg),
        };
        rscale.spawn(&config_path);
        rscale
    }

    fn spawn(&mut self, config_path: &std::path::Path) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open rscale log");
        let mut cmd = self.command();
        cmd.arg("server")
            .arg("--config")
            .arg(config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log fd"))
            .stderr(log);
        self.child = Some(OwnedChild::spawn(&mut cmd, "rscale server"));
        let ready = try_wait_for(START_TIMEOUT, || {
            if let Some(status) = self.child.as_mut().and_then(OwnedChild::exited) {
                return Err(format!("exited early with {status}"));
            }
            match self.hub.http_get(self.ip, CONTROL_PORT, "/readyz") {
                Ok((200, _)) => Ok(()),
                Ok((code, body)) => Err(format!("/readyz answered {code}: {body}")),
                Err(e) => Err(e),
            }
        });
        if let Err(e) = ready {
            self.dump_log();
            panic!("rscale did not become ready: {e}");
        }
    }

    /// `http://<hub>:8080`, the `--login-server` for clients.
    pub fn url(&self) -> String {
        format!("http://{}:{CONTROL_PORT}", self.ip)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(OwnedChild::pid)
    }

    /// The name of rscale's database (to find its PostgreSQL backends).
    pub fn database(&self) -> &str {
        &self
            .pg
            .as_ref()
            .expect("database lives as long as the fixture")
            .params()
            .dbname
    }

    /// `rscale admin <args>` against this server, in the hub namespace; the
    /// admin token travels in the environment, never on the command line.
    pub fn admin(&self, args: &[&str]) -> CmdOutput {
        let mut cmd = self.command();
        cmd.env("RSCALE_ADMIN_TOKEN", &self.admin_token)
            .args(["admin", "--api-url", &self.url()])
            .args(args);
        run(&mut cmd, CLI_TIMEOUT)
    }

    /// Creates a reusable auth key and returns its secret.
    #[track_caller]
    pub fn create_reusable_key(&self) -> String {
        let out = self.admin(&[
            "auth-keys",
            "create",
            "--reusable",
            "--description",
            "bench",
        ]);
        if !out.success() {
            self.dump_log();
            panic!("rscale admin auth-keys create failed:\n{out}");
        }
        let json: Value = serde_json::from_str(out.stdout.trim())
            .unwrap_or_else(|e| panic!("auth-keys create printed no JSON ({e}):\n{out}"));
        match json["key"].as_str() {
            Some(k) if !k.is_empty() => k.to_owned(),
            _ => panic!("auth-keys create printed no `key`:\n{out}"),
        }
    }

    pub fn dump_log(&self) {
        eprintln!(
            "===== rscale log ({}) =====\n{}\n===== end of rscale log =====",
            self.log_path.display(),
            tail_file(&self.log_path, 400)
        );
    }

    /// `rscale` in the hub namespace with a clean environment, so stray
    /// `RSCALE_*` variables cannot override the config.
    fn command(&self) -> Command {
        let mut cmd = self.hub.command(&self.bin);
        cmd.env_clear()
            .env("PATH", CLEAN_PATH)
            .env("HOME", self.dir.path())
            .env("NO_COLOR", "1");
        cmd
    }
}

impl Drop for Rscale {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_log();
        }
        // OwnedChild's drop sends SIGTERM (rscale handles only SIGINT, so
        // the default action ends it) and reaps it; the database goes after.
        drop(self.child.take());
        drop(self.pg.take());
    }
}

/// The rscale binary named by `RSCALE_BIN`; panics with how to get one.
pub fn binary() -> PathBuf {
    let Some(path) = std::env::var_os(BIN_ENV).filter(|p| !p.is_empty()) else {
        panic!(
            "{BIN_ENV} is not set: point it at an rscale executable (docs/performance.md, \
             \"Side by side\": how to build rscale 0.1.0), or leave rscale out of SIDE_BY_SIDE_SERVERS"
        );
    };
    let path = PathBuf::from(path);
    assert!(path.is_file(), "{BIN_ENV}={} is not a file", path.display());
    // Absolute, because it runs under `ip netns exec` with a clean PATH.
    fs::canonicalize(&path).expect("canonicalize RSCALE_BIN")
}

/// sqlx's URL for `pg`: a unix-socket directory goes in `?host=`.
fn database_url(pg: &PgDatabase) -> String {
    let p = pg.params();
    format!(
        "postgres://{}:{}@localhost:{}/{}?host={}",
        encode(&p.user),
        encode(&p.pass),
        p.port,
        encode(&p.dbname),
        encode(&p.host)
    )
}

/// Percent-encodes everything but unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// rscale's config: control and DERP on `ip:8080`, STUN on `ip:3478`, one
/// inline DERP region (its own relay) and no default regions.
fn config_toml(ip: Ipv4Addr, database_url: &str, admin_token: &str) -> String {
    let control_key = random_hex(32);
    let derp_key = random_hex(32);
    format!(
        r#"[server]
bind_addr = "{ip}:{CONTROL_PORT}"
control_private_key = "privkey:{control_key}"

[database]
url = "{database_url}"

[auth]
break_glass_token = "{admin_token}"

[derp]
omit_default_regions = true

[derp.server]
enabled = true
private_key = "privkey:{derp_key}"
stun_bind_addr = "{ip}:{STUN_PORT}"

[[derp.regions]]
region_id = {DERP_REGION}
region_code = "hub"
region_name = "Test hub"

[[derp.regions.nodes]]
name = "{DERP_REGION}a"
host_name = "{ip}"
ipv4 = "{ip}"
stun_port = {STUN_PORT}
derp_port = {CONTROL_PORT}
insecure_for_tests = true

[telemetry]
filter = "info"
format = "compact"
"#
    )
}

/// `bytes` random bytes from the kernel, hex-encoded.
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_directory_and_secrets_are_percent_encoded() {
        assert_eq!(encode("/var/run/postgresql"), "%2Fvar%2Frun%2Fpostgresql");
        assert_eq!(encode("s@c:ret"), "s%40c%3Aret");
        assert_eq!(encode("clawscale_csit1n0rscale"), "clawscale_csit1n0rscale");
    }

    #[test]
    fn config_puts_control_derp_and_stun_on_the_hub_address() {
        let cfg = config_toml(Ipv4Addr::new(10, 213, 7, 1), "postgres://x", "t");
        assert!(cfg.contains("bind_addr = \"10.213.7.1:8080\""));
        assert!(cfg.contains("stun_bind_addr = \"10.213.7.1:3478\""));
        assert!(cfg.contains("derp_port = 8080"));
        assert!(cfg.contains("insecure_for_tests = true"));
        assert_eq!(random_hex(32).len(), 64);
    }
}
