//! Fixtures for the fault tier: a real `clawscale serve` on loopback in the
//! test's own namespace, started under `prlimit`, a background `/healthz`
//! prober, and attack connections bound to chosen loopback sources.
//!
//! Everything stays on 127.0.0.0/8: attackers bind 127.0.0.2 and up, the
//! prober and the CLI use 127.0.0.1, so the server's per-source limit sees
//! them as different clients. Loops are bounded by their callers.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream as StdTcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::harness::netns::CLEAN_PATH;
use crate::harness::process::{OwnedChild, run, tail_file};
use crate::harness::{CmdOutput, try_wait_for};

const START_TIMEOUT: Duration = Duration::from_secs(60);
const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// A `clawscale serve` on 127.0.0.1 (random ports), JSON logs in a file.
pub struct LoopbackServer {
    dir: TempDir,
    config: PathBuf,
    log: PathBuf,
    child: Option<OwnedChild>,
    pub addr: SocketAddr,
    pub stun: SocketAddr,
}

impl LoopbackServer {
    /// Starts the server under `prlimit --nofile=<nofile>` with
    /// `connections` (YAML lines indented by two spaces) as its
    /// `connections` section.
    pub fn start(nofile: &str, connections: &str) -> LoopbackServer {
        let dir = tempfile::Builder::new()
            .prefix("clawscale-limits-")
            .tempdir()
            .expect("temp dir");
        // Readable by others, so the CLI can be run as an unprivileged user;
        // the data directory below stays private (the server creates it 0700).
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
        let yaml = format!(
            "data_dir: {data}\nserver_url: http://127.0.0.1:0\nlisten_addr: 127.0.0.1:0\n\
             unix_socket: {sock}\nlog:\n  level: info\n  format: json\n\
             derp:\n  server:\n    enabled: true\n    stun_listen_addr: 127.0.0.1:0\n  urls: []\n  paths: []\n\
             connections:\n{connections}",
            data = p("data"),
            sock = p("admin.sock"),
        );
        let config = dir.path().join("config.yaml");
        fs::write(&config, yaml).expect("write config");
        fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).expect("chmod");
        let log = dir.path().join("server.log");
        let file = File::create(&log).expect("log file");
        let mut cmd = Command::new("prlimit");
        cmd.arg(format!("--nofile={nofile}"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_clawscale"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env_clear()
            .env("PATH", CLEAN_PATH)
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup"))
            .stderr(file);
        let mut child = OwnedChild::spawn(&mut cmd, "clawscale serve (prlimit)");
        let serving = try_wait_for(START_TIMEOUT, || {
            if let Some(status) = child.exited() {
                return Err(format!("exited early with {status}"));
            }
            log_lines(&log)
                .into_iter()
                .find(|l| message(l) == "clawscale is serving")
                .ok_or_else(|| "not serving yet".to_string())
        });
        let line = match serving {
            Ok(line) => line,
            Err(e) => panic!("server did not start: {e}\n{}", tail_file(&log, 100)),
        };
        let field = |name: &str| line["fields"][name].as_str().unwrap_or("").to_string();
        let addr = field("addr").parse().expect("addr field");
        let stun = field("stun")
            .trim_start_matches("Some(")
            .trim_end_matches(')')
            .parse()
            .expect("stun field");
        LoopbackServer {
            dir,
            config,
            log,
            child: Some(child),
            addr,
            stun,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").pid()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `clawscale --config <cfg> <args>` as root.
    pub fn cli(&self, args: &[&str]) -> CmdOutput {
        self.cli_as(None, args)
    }

    /// Same, as `uid:gid` via `setpriv` when given.
    pub fn cli_as(&self, user: Option<u32>, args: &[&str]) -> CmdOutput {
        let bin = env!("CARGO_BIN_EXE_clawscale");
        let mut cmd = match user {
            Some(id) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={id}"))
                    .arg(format!("--regid={id}"))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.env_clear()
            .env("PATH", CLEAN_PATH)
            .env("HOME", self.dir.path())
            .arg("--config")
            .arg(&self.config)
            .args(args);
        run(&mut cmd, CLI_TIMEOUT)
    }

    /// Every JSON log line so far.
    pub fn log(&self) -> Vec<Value> {
        log_lines(&self.log)
    }

    pub fn dump_log(&self) {
        eprintln!(
            "===== server log =====\n{}\n===== end =====",
            tail_file(&self.log, 200)
        );
    }

    /// Whether the server process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.exited().is_none())
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        if thread::panicking() {
            self.dump_log();
        }
        if let Some(mut c) = self.child.take() {
            c.terminate(Duration::from_secs(10));
        }
    }
}

fn log_lines(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The `message` of a JSON log line.
pub fn message(line: &Value) -> &str {
    line["fields"]["message"].as_str().unwrap_or("")
}

/// One `GET /healthz` from 127.0.0.1 on a fresh connection.
pub fn healthz(addr: SocketAddr) -> Result<(), String> {
    let mut s = StdTcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut got = String::new();
    s.read_to_string(&mut got)
        .map_err(|e| format!("read: {e}"))?;
    if got.starts_with("HTTP/1.1 200") && got.ends_with("ok\n") {
        Ok(())
    } else {
        Err(format!("answer: {got:?}"))
    }
}

/// When a probe ran (since the prober started) and how it went.
type Probes = Vec<(Duration, Result<(), String>)>;

/// Probes `/healthz` every 250 ms on a thread until stopped.
pub struct HealthProbe {
    stop: Arc<AtomicBool>,
    results: Arc<Mutex<Probes>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl HealthProbe {
    pub fn start(addr: SocketAddr) -> HealthProbe {
        let stop = Arc::new(AtomicBool::new(false));
        let results = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, results) = (stop.clone(), results.clone());
            thread::spawn(move || {
                let start = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let r = healthz(addr);
                    results.lock().expect("lock").push((start.elapsed(), r));
                    thread::sleep(Duration::from_millis(250));
                }
            })
        };
        HealthProbe {
            stop,
            results,
            thread: Some(thread),
        }
    }

    /// Stops probing; returns (probes made, failures with their times).
    pub fn finish(mut self) -> (usize, Vec<(Duration, String)>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("probe thread");
        }
        let results = self.results.lock().expect("lock");
        let failures = results
            .iter()
            .filter_map(|(t, r)| r.as_ref().err().map(|e| (*t, e.clone())))
            .collect();
        (results.len(), failures)
    }
}

/// `127.0.0.<n>`: attacker sources (n ≥ 2; 1 is the prober's).
pub fn source(n: u8) -> Ipv4Addr {
    assert!(n >= 2, "127.0.0.1 is reserved for the health prober");
    Ipv4Addr::new(127, 0, 0, n)
}

/// A TCP connection to `server` from `src`.
pub async fn connect_from(src: Ipv4Addr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(src.into(), 0))?;
    sock.connect(server).await
}

/// What became of one attack connection.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub src: Ipv4Addr,
    /// Time from connecting until the server closed it; `None`: still open
    /// when the attacker gave up.
    pub closed_after: Option<Duration>,
    /// Bytes the server sent.
    pub received: Vec<u8>,
}

/// Connects from `src`, sends `payload` one byte every `every` (all of it at
/// once when `None`), and watches for the server closing the connection,
/// for at most `give_up`.
pub async fn attack(
    src: Ipv4Addr,
    server: SocketAddr,
    payload: &[u8],
    every: Option<Duration>,
    give_up: Duration,
) -> Outcome {
    let mut out = Outcome {
        src,
        closed_after: None,
        received: Vec::new(),
    };
    let mut s = match connect_from(src, server).await {
        Ok(s) => s,
        Err(_) => {
            out.closed_after = Some(Duration::ZERO);
            return out;
        }
    };
    let start = Instant::now();
    let mut sent = 0;
    let mut buf = [0u8; 4096];
    while start.elapsed() < give_up {
        if sent < payload.len() {
            let n = if every.is_some() { 1 } else { payload.len() };
            if s.write_all(&payload[sent..sent + n]).await.is_err() {
                out.closed_after = Some(start.elapsed());
                return out;
            }
            sent += n;
        }
        let wait = every
            .unwrap_or(give_up)
            .min(give_up.saturating_sub(start.elapsed()));
        match tokio::time::timeout(wait, s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => {
                out.closed_after = Some(start.elapsed());
                return out;
            }
            Ok(Ok(n)) => out.received.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    out
}
