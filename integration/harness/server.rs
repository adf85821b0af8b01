//! The `Server` fixture: a real `clawscale serve` in a topology's hub
//! namespace (or, for tests without real clients, on 127.0.0.1 in the root
//! namespace), plus its admin CLI.
//!
//! Owns: writing the YAML config (Headscale key names), starting, stopping,
//! killing and restarting the server on the same data directory, waiting for
//! `GET /healthz`, and typed wrappers for `users create`, `preauthkeys create`
//! and `nodes list`. Depends on `netns`, `process`, `postgres`, and the
//! `clawscale` binary Cargo builds for this test target.
//!
//! The CLI runs where the server runs (the hub namespace or the root one),
//! so it works whether it talks to the server over the unix socket or over
//! `listen_addr`. A loopback server has no STUN listener and a free port, so
//! it cannot collide with anything else on the machine.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use serde_norway::{Mapping, Value as Yaml};
use tempfile::TempDir;

use super::loopback;
use super::netns::{CLEAN_PATH, Netns, Topology};
use super::postgres::PgDatabase;
use super::process::{CmdOutput, OwnedChild, run, tail_file};
use super::{BASE_DOMAIN, try_wait_for};

/// Port of the control (HTTP) listener on the hub address.
pub const CONTROL_PORT: u16 = 8080;
/// UDP port of the embedded STUN server on the hub address.
pub const STUN_PORT: u16 = 3478;
const CLI_TIMEOUT: Duration = Duration::from_secs(60);
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Which store the server uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    /// A fresh database on the server named by `CLAWSCALE_TEST_POSTGRES_URL`.
    Postgres,
}

/// The server's YAML config as a tree, editable by dotted path before start.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    root: Yaml,
}

impl ServerConfig {
    /// Sets `dotted` (e.g. `"dns.base_domain"`) to `value`, creating
    /// intermediate mappings.
    pub fn set(&mut self, dotted: &str, value: impl Serialize) -> &mut Self {
        let value = serde_norway::to_value(value).expect("config values serialise");
        let mut node = &mut self.root;
        let mut parts = dotted.split('.').peekable();
        while let Some(part) = parts.next() {
            if !node.is_mapping() {
                *node = Yaml::Mapping(Mapping::new());
            }
            let map = node.as_mapping_mut().expect("just made a mapping");
            if parts.peek().is_none() {
                map.insert(part.into(), value);
                return self;
            }
            node = map
                .entry(part.into())
                .or_insert_with(|| Yaml::Mapping(Mapping::new()));
        }
        self
    }

    /// Removes `dotted` if present.
    pub fn remove(&mut self, dotted: &str) -> &mut Self {
        let (parent, last) = match dotted.rsplit_once('.') {
            Some((p, l)) => (Some(p), l),
            None => (None, dotted),
        };
        let mut node = &mut self.root;
        for part in parent.into_iter().flat_map(|p| p.split('.')) {
            match node.get_mut(part) {
                Some(n) => node = n,
                None => return self,
            }
        }
        if let Some(map) = node.as_mapping_mut() {
            map.remove(last);
        }
        self
    }

    pub fn get(&self, dotted: &str) -> Option<&Yaml> {
        dotted
            .split('.')
            .try_fold(&self.root, |n, part| n.get(part))
    }

    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(&self.root).expect("config serialises")
    }
}

/// Options for `preauthkeys create`.
#[derive(Clone, Debug, Default)]
pub struct KeyOptions {
    pub reusable: bool,
    pub ephemeral: bool,
    /// Passed as `--expiration` (e.g. `"1h"`, `"2s"`).
    pub expiration: Option<String>,
    /// Passed as `--tags tag:a,tag:b`.
    pub tags: Vec<String>,
}

/// One entry of `nodes list -o json`, read leniently (Headscale's JSON field
/// names, numbers or strings for ids).
#[derive(Clone, Debug)]
pub struct NodeRecord {
    pub raw: Value,
}

impl NodeRecord {
    pub fn id(&self) -> Option<u64> {
        match &self.raw["id"] {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// `given_name` if set, else `name`.
    pub fn name(&self) -> &str {
        ["given_name", "name"]
            .iter()
            .filter_map(|k| self.raw[*k].as_str())
            .find(|s| !s.is_empty())
            .unwrap_or("")
    }

    pub fn ip_addresses(&self) -> Vec<String> {
        self.raw["ip_addresses"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn online(&self) -> bool {
        self.raw["online"].as_bool().unwrap_or(false)
    }
}

/// A running `clawscale serve` in the hub namespace (or on loopback).
/// Dropping it stops the server, then drops its Postgres database and temp
/// directory.
pub struct Server {
    /// `None`: the root namespace, on 127.0.0.1.
    hub: Option<Netns>,
    ip: Ipv4Addr,
    /// The control port (`listen_addr`'s, normally `CONTROL_PORT`).
    port: u16,
    dir: TempDir,
    config: ServerConfig,
    config_path: PathBuf,
    log_path: PathBuf,
    child: Option<OwnedChild>,
    pg: Option<PgDatabase>,
}

impl Server {
    /// Starts a SQLite-backed server with the default config.
    pub fn start(topo: &Topology) -> Server {
        Server::start_with(topo, Db::Sqlite, |_| {})
    }

    /// Starts a server on `db`, after letting `customize` edit the config.
    pub fn start_with(
        topo: &Topology,
        db: Db,
        customize: impl FnOnce(&mut ServerConfig),
    ) -> Server {
        Server::start_at(
            Some(topo.hub().clone()),
            topo.hub_ip(),
            CONTROL_PORT,
            topo.tag(),
            db,
            customize,
        )
    }

    /// Starts a server in the root namespace on 127.0.0.1 and a free port,
    /// for tests that need no real client (no `tailscaled` may talk to it).
    pub fn start_local(db: Db, customize: impl FnOnce(&mut ServerConfig)) -> Server {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "local{}n{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let port = loopback::free_port();
        Server::start_at(None, Ipv4Addr::LOCALHOST, port, &tag, db, |cfg| {
            // No fixed UDP port on the shared loopback.
            cfg.set("derp.server.stun_listen_addr", "");
            customize(cfg);
        })
    }

    fn start_at(
        hub: Option<Netns>,
        ip: Ipv4Addr,
        port: u16,
        tag: &str,
        db: Db,
        customize: impl FnOnce(&mut ServerConfig),
    ) -> Server {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{tag}-server-"))
            .tempdir()
            .expect("create server temp dir");
        let data = dir.path().join("data");
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&data)
            .expect("create server data dir");
        let pg = match db {
            Db::Sqlite => None,
            Db::Postgres => Some(PgDatabase::create(tag)),
        };
        let mut cfg = default_config(ip, port, dir.path(), &data);
        if let Some(pg) = &pg {
            pg.configure(&mut cfg);
        }
        customize(&mut cfg);
        // A test may move the listener.
        let port = cfg
            .get("listen_addr")
            .and_then(|v| v.as_str())
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .map_or(port, |a| a.port());
        let config_path = dir.path().join("config.yaml");
        fs::write(&config_path, cfg.to_yaml()).expect("write server config");
        let log_path = dir.path().join("server.log");
        let mut server = Server {
            hub,
            ip,
            port,
            dir,
            config: cfg,
            config_path,
            log_path,
            child: None,
            pg,
        };
        server.start_again();
        server
    }

    /// The configured `server_url` (normally `http://<ip>:<port>`), the
    /// `--login-server` for clients.
    pub fn url(&self) -> String {
        self.config
            .get("server_url")
            .and_then(|v| v.as_str())
            .map_or_else(
                || format!("http://{}:{}", self.ip, self.port),
                str::to_owned,
            )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// PID of the running server, if any.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(OwnedChild::pid)
    }

    /// Starts the server (again) on the same config and data, and waits for
    /// `GET /healthz` to answer 200.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open server log");
        let mut marker = &log;
        let _ = writeln!(marker, "=== harness: starting clawscale serve ===");
        let mut cmd = self.command(env!("CARGO_BIN_EXE_clawscale"));
        self.clean_env(&mut cmd);
        cmd.arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log fd"))
            .stderr(log);
        self.child = Some(OwnedChild::spawn(&mut cmd, "clawscale serve"));
        let ready = try_wait_for(START_TIMEOUT, || {
            if let Some(status) = self.child.as_mut().and_then(OwnedChild::exited) {
                return Err(format!("exited early with {status}"));
            }
            match self.healthz() {
                Ok((200, _)) => Ok(()),
                Ok((code, body)) => Err(format!("/healthz answered {code}: {body}")),
                Err(e) => Err(e),
            }
        });
        if let Err(e) = ready {
            self.dump_log();
            panic!("clawscale serve did not become healthy: {e}");
        }
    }

    /// Stops the server (SIGTERM, SIGKILL after 10 s).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let status = child.terminate(Duration::from_secs(10));
            if let Ok(mut f) = OpenOptions::new().append(true).open(&self.log_path) {
                let _ = writeln!(f, "=== harness: server stopped: {status:?} ===");
            }
        }
    }

    /// Edits and rewrites the config of the stopped server.
    pub fn edit_config(&mut self, edit: impl FnOnce(&mut ServerConfig)) {
        assert!(self.child.is_none(), "stop the server first");
        edit(&mut self.config);
        fs::write(&self.config_path, self.config.to_yaml()).expect("write server config");
    }

    /// Runs `clawscale serve` on the current config, expecting it to refuse
    /// to start; returns what it printed.
    #[track_caller]
    pub fn start_expecting_failure(&self) -> CmdOutput {
        assert!(self.child.is_none(), "stop the server first");
        let out = self.cli(&["serve"]);
        assert!(
            !out.success() && !out.timed_out(),
            "clawscale serve was expected to exit with an error:\n{out}"
        );
        out
    }

    /// Kills the server with SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let status = child.kill();
            if let Ok(mut f) = OpenOptions::new().append(true).open(&self.log_path) {
                let _ = writeln!(f, "=== harness: server killed: {status:?} ===");
            }
        }
    }

    /// Stops and starts the server on the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// `GET /healthz`: (status code, body).
    pub fn healthz(&self) -> Result<(u16, String), String> {
        match &self.hub {
            Some(hub) => hub.http_get(self.ip, self.port, "/healthz"),
            None => loopback::http_get(SocketAddr::from((self.ip, self.port)), "/healthz"),
        }
    }

    /// A command that runs `program` where the server runs, killed with the
    /// spawning thread (`setpriv --pdeathsig`, as `Netns::command` does).
    fn command(&self, program: &str) -> Command {
        match &self.hub {
            Some(hub) => hub.command(program),
            None => {
                let mut cmd = Command::new("setpriv");
                cmd.args(["--pdeathsig", "KILL", "--"]).arg(program);
                cmd
            }
        }
    }

    /// Runs `clawscale --config <cfg> <args>` where the server runs.
    pub fn cli(&self, args: &[&str]) -> CmdOutput {
        let mut cmd = self.command(env!("CARGO_BIN_EXE_clawscale"));
        self.clean_env(&mut cmd);
        cmd.arg("--config").arg(&self.config_path).args(args);
        run(&mut cmd, CLI_TIMEOUT)
    }

    /// `cli`, panicking (with the server log) unless it succeeds.
    #[track_caller]
    pub fn cli_ok(&self, args: &[&str]) -> CmdOutput {
        let out = self.cli(args);
        if !out.success() {
            self.dump_log();
            panic!("clawscale {} failed:\n{out}", args.join(" "));
        }
        out
    }

    pub fn create_user(&self, name: &str) {
        self.cli_ok(&["users", "create", name]);
    }

    /// Creates a pre-auth key for `user` and returns its secret.
    #[track_caller]
    pub fn create_preauthkey(&self, user: &str, opts: &KeyOptions) -> String {
        let mut args = vec!["preauthkeys", "create", "--user", user];
        if opts.reusable {
            args.push("--reusable");
        }
        if opts.ephemeral {
            args.push("--ephemeral");
        }
        if let Some(exp) = &opts.expiration {
            args.extend(["--expiration", exp.as_str()]);
        }
        let tags = opts.tags.join(",");
        if !opts.tags.is_empty() {
            args.extend(["--tags", tags.as_str()]);
        }
        args.extend(["-o", "json"]);
        let out = self.cli_ok(&args);
        let json: Value = serde_json::from_str(out.stdout.trim())
            .unwrap_or_else(|e| panic!("preauthkeys create -o json is not JSON ({e}):\n{out}"));
        match json["key"].as_str() {
            Some(k) if !k.is_empty() => k.to_owned(),
            _ => panic!("preauthkeys create -o json has no `key` field:\n{out}"),
        }
    }

    /// `nodes list -o json`.
    #[track_caller]
    pub fn nodes(&self) -> Vec<NodeRecord> {
        let out = self.cli_ok(&["nodes", "list", "-o", "json"]);
        let json: Value = serde_json::from_str(out.stdout.trim())
            .unwrap_or_else(|e| panic!("nodes list -o json is not JSON ({e}):\n{out}"));
        match json {
            Value::Null => Vec::new(),
            Value::Array(items) => items.into_iter().map(|raw| NodeRecord { raw }).collect(),
            other => panic!("nodes list -o json is not an array: {other}"),
        }
    }

    /// The full server log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Prints the tail of the server log to stderr.
    pub fn dump_log(&self) {
        eprintln!(
            "===== clawscale server log ({}) =====\n{}\n===== end of server log =====",
            self.log_path.display(),
            tail_file(&self.log_path, 400)
        );
    }

    /// A clean environment, so stray `CLAWSCALE_*` variables cannot override
    /// the test config; only the log level may be raised from outside.
    fn clean_env(&self, cmd: &mut std::process::Command) {
        cmd.env_clear()
            .env("PATH", CLEAN_PATH)
            .env("HOME", self.dir.path())
            .env("RUST_BACKTRACE", "1");
        for var in ["RUST_LOG", "CLAWSCALE_LOG_LEVEL"] {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_log();
        }
        self.stop();
        // Database goes after the server that uses it.
        drop(self.pg.take());
        if std::env::var_os("CLAWSCALE_KEEP_TEST_DIRS").is_some() {
            let dir = std::mem::replace(&mut self.dir, TempDir::new().expect("temp dir"));
            eprintln!("harness: keeping server dir {}", dir.keep().display());
        }
    }
}

/// The config every test starts from (key names as in
/// `deploy/config.example.yaml`). External DERP maps are set empty
/// explicitly so the server never tries to fetch one.
fn default_config(ip: Ipv4Addr, port: u16, dir: &Path, data: &Path) -> ServerConfig {
    let mut cfg = ServerConfig {
        root: Yaml::Mapping(Mapping::new()),
    };
    let p = |path: &Path| path.to_string_lossy().into_owned();
    cfg.set("server_url", format!("http://{ip}:{port}"))
        .set("listen_addr", format!("{ip}:{port}"))
        .set("unix_socket", p(&dir.join("clawscale.sock")))
        .set("data_dir", p(data))
        .set("database.type", "sqlite")
        .set("database.sqlite.path", p(&data.join("db.sqlite")))
        .set("noise.private_key_path", p(&data.join("noise_private.key")))
        .set("derp.server.enabled", true)
        .set("derp.server.stun_listen_addr", format!("{ip}:{STUN_PORT}"))
        .set(
            "derp.server.private_key_path",
            p(&data.join("derp_server_private.key")),
        )
        .set("derp.urls", Vec::<String>::new())
        .set("derp.paths", Vec::<String>::new())
        .set("node.ephemeral.inactivity_timeout", "30m")
        .set("dns.base_domain", BASE_DOMAIN)
        .set("dns.magic_dns", true);
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_set_creates_nested_keys_and_overrides() {
        let mut cfg = default_config(
            Ipv4Addr::new(10, 213, 7, 1),
            CONTROL_PORT,
            Path::new("/t"),
            Path::new("/t/data"),
        );
        cfg.set("node.ephemeral.inactivity_timeout", "5s")
            .set("derp.server.region_id", 900);
        let parsed: Yaml = serde_norway::from_str(&cfg.to_yaml()).expect("valid yaml");
        assert_eq!(
            parsed["node"]["ephemeral"]["inactivity_timeout"].as_str(),
            Some("5s")
        );
        assert_eq!(parsed["derp"]["server"]["region_id"].as_u64(), Some(900));
        assert_eq!(parsed["derp"]["server"]["enabled"].as_bool(), Some(true));
        assert_eq!(parsed["listen_addr"].as_str(), Some("10.213.7.1:8080"));
        assert_eq!(
            parsed["database"]["sqlite"]["path"].as_str(),
            Some("/t/data/db.sqlite")
        );
        cfg.remove("derp.urls");
        assert!(cfg.get("derp.urls").is_none());
        assert!(cfg.get("derp.paths").is_some());
    }

    #[test]
    fn node_record_reads_headscale_json() {
        let raw: Value = serde_json::from_str(
            r#"{"id":"7","name":"n1","given_name":"web","ip_addresses":["100.64.0.1","fd7a:115c:a1e0::1"],"online":true}"#,
        )
        .expect("json");
        let n = NodeRecord { raw };
        assert_eq!(n.id(), Some(7));
        assert_eq!(n.name(), "web");
        assert_eq!(n.ip_addresses().len(), 2);
        assert!(n.online());
    }
}
