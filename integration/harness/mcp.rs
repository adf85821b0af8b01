//! The MCP side of the gateway tests: the reference MCP server
//! (`@modelcontextprotocol/server-everything`, streamable HTTP) in a
//! namespace, and an MCP client that talks streamable HTTP from inside a
//! client namespace over the tailnet.
//!
//! Owns: `McpServer` (start, header record, logs, stop by PID), `McpStep` /
//! `McpReply` and `mcp_exchange`, plus the JSON-RPC bodies the tests send.
//! Depends on `netns`, `process`, `bins`, `tailscaled`, node (>= 18) and
//! python3; the server package comes from `.ci/fetch-gateway.sh` (see
//! `gateway::gateway_bins`).
//!
//! Why a header record: the test must prove that the identity headers the
//! gateway got from clawscale reach the MCP server itself. A `--require`
//! preload inside the server's own node process appends every HTTP request's
//! method, URL and headers to a JSON-lines file, so nothing sits between the
//! gateway and the server.
//!
//! Why `tailscale nc`: client namespaces run userspace-networking tailscaled,
//! so a plain socket cannot reach a tailnet address. The client script hands
//! one end of a socketpair to `tailscale nc IP PORT` and speaks HTTP/1.1 over
//! the other end with Python's `http.client`, one connection per request.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

use super::bins::client_bins;
use super::gateway::gateway_bins;
use super::netns::{CLEAN_PATH, Netns};
use super::process::{OwnedChild, run, tail_file};
use super::tailscaled::Tailscaled;
use super::try_wait_for;

/// Node preload that records every request the MCP server receives.
const HEADER_RECORDER: &str = r#"'use strict';
const http = require('node:http');
const fs = require('node:fs');
const out = process.env.MCP_HEADER_LOG;
const emit = http.Server.prototype.emit;
http.Server.prototype.emit = function (event, req) {
  if (event === 'request' && out) {
    fs.appendFileSync(out, JSON.stringify({method: req.method, url: req.url, headers: req.headers}) + '\n');
  }
  return emit.apply(this, arguments);
};
"#;

/// Python MCP-over-HTTP client: argv = tailscale, socket, ip, port, steps
/// (JSON). Prints one JSON array of replies.
const CLIENT_SCRIPT: &str = r#"
import http.client, json, socket, subprocess, sys
ts, sock, ip, port, steps = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], json.load(open(sys.argv[5]))
session = None
replies = []
for step in steps:
    a, b = socket.socketpair()
    nc = subprocess.Popen([ts, '--socket=' + sock, 'nc', ip, port], stdin=b, stdout=b, stderr=subprocess.PIPE)
    b.close()
    a.settimeout(20)
    conn = http.client.HTTPConnection(ip, int(port), timeout=20)
    conn.sock = a
    headers = {'Content-Type': 'application/json', 'Accept': 'application/json, text/event-stream',
               'Connection': 'close'}
    if session and step.get('session', True):
        headers['Mcp-Session-Id'] = session
    headers.update(step.get('headers', {}))
    try:
        conn.request('POST', step.get('path', '/mcp'), body=step['body'].encode(), headers=headers)
        r = conn.getresponse()
        body = r.read().decode('utf-8', 'replace')
        hs = {k.lower(): v for k, v in r.getheaders()}
        if 'mcp-session-id' in hs:
            session = hs['mcp-session-id']
        replies.append({'status': r.status, 'headers': hs, 'body': body})
    except Exception as e:
        replies.append({'status': 0, 'headers': {}, 'body': 'client error: %r' % (e,)})
    finally:
        a.close()
        try:
            nc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            nc.kill()
            nc.wait()
print(json.dumps(replies))
"#;

/// One HTTP request of an MCP exchange.
#[derive(Clone, Debug)]
pub struct McpStep {
    /// The JSON-RPC message (or anything else) sent as the POST body.
    pub body: String,
    /// Extra request headers (may override the defaults).
    pub headers: Vec<(String, String)>,
    /// Send the `Mcp-Session-Id` learned from an earlier reply.
    pub session: bool,
}

impl McpStep {
    pub fn new(body: Value) -> McpStep {
        McpStep {
            body: body.to_string(),
            headers: Vec::new(),
            session: true,
        }
    }

    pub fn raw(body: &str) -> McpStep {
        McpStep {
            body: body.to_owned(),
            headers: Vec::new(),
            session: true,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> McpStep {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// What the gateway answered to one step.
#[derive(Clone, Debug)]
pub struct McpReply {
    /// HTTP status; 0 when the client could not complete the exchange.
    pub status: u16,
    /// Response headers, names lower-cased.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl McpReply {
    /// The JSON-RPC message in the body: plain JSON, or the first `data:`
    /// event of an SSE stream (the server's default for POST replies).
    pub fn jsonrpc(&self) -> Option<Value> {
        if let Ok(v) = serde_json::from_str::<Value>(&self.body) {
            return Some(v);
        }
        self.body
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .find_map(|d| serde_json::from_str(d.trim()).ok())
    }
}

/// `initialize`, as a streamable HTTP client sends it first.
pub fn initialize(id: u64) -> McpStep {
    McpStep::new(json!({
        "jsonrpc": "2.0", "id": id, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "clawscale-gateway-test", "version": "0"}
        }
    }))
}

/// The `notifications/initialized` notification that completes the handshake.
pub fn initialized() -> McpStep {
    McpStep::new(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
}

/// `tools/call` of `name` with `arguments`; `name` comes first in `params`,
/// as the MCP SDKs serialise it (the gateway only accepts that shape).
pub fn tools_call(id: u64, name: &str, arguments: Value) -> McpStep {
    let name = serde_json::to_string(name).expect("string serialises");
    McpStep::raw(&format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":{name},"arguments":{arguments}}}}}"#
    ))
}

/// Runs `steps` in order from `client`'s namespace against `ip:port` over
/// the tailnet (through `client`'s tailscaled), carrying the MCP session id
/// from reply to request. Panics if the client script itself fails.
#[track_caller]
pub fn mcp_exchange(client: &Tailscaled, ip: &str, port: u16, steps: &[McpStep]) -> Vec<McpReply> {
    let bins = client_bins(client.version());
    let socket = client.state_dir().join("sock");
    let steps_json: Vec<Value> = steps
        .iter()
        .map(|s| {
            let headers: serde_json::Map<String, Value> = s
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            json!({"body": s.body, "headers": headers, "session": s.session})
        })
        .collect();
    // In a file, not an argument: a step's body may be larger than the
    // kernel takes on a command line.
    let steps_file = tempfile::NamedTempFile::new_in(client.state_dir()).expect("steps file");
    std::fs::write(steps_file.path(), Value::Array(steps_json).to_string()).expect("write steps");
    let mut cmd = client.netns().command("python3");
    cmd.env_clear()
        .env("PATH", CLEAN_PATH)
        .env("HOME", client.state_dir())
        .args(["-c", CLIENT_SCRIPT])
        .arg(&bins.tailscale)
        .arg(&socket)
        .arg(ip)
        .arg(port.to_string())
        .arg(steps_file.path());
    let out = run(&mut cmd, Duration::from_secs(30 + 25 * steps.len() as u64));
    if !out.success() {
        panic!("MCP client in {} failed:\n{out}", client.name());
    }
    let replies: Vec<Value> = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("MCP client output is not JSON ({e}):\n{out}"));
    replies
        .into_iter()
        .map(|r| McpReply {
            status: r["status"]
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .unwrap_or(0),
            headers: r["headers"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
            body: r["body"].as_str().unwrap_or("").to_owned(),
        })
        .collect()
}

/// One request as the MCP server's process received it.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    pub method: String,
    pub url: String,
    /// Header names lower-cased (node's `req.headers`).
    pub headers: BTreeMap<String, String>,
}

/// `@modelcontextprotocol/server-everything` in streamable HTTP mode on
/// `port` (all addresses of its namespace), stopped by PID when dropped.
pub struct McpServer {
    ns: Netns,
    port: u16,
    dir: TempDir,
    log_path: PathBuf,
    header_log: PathBuf,
    child: Option<OwnedChild>,
}

impl McpServer {
    pub fn start(ns: &Netns, port: u16) -> McpServer {
        let bins = gateway_bins();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-mcp-", ns.name()))
            .tempdir()
            .expect("create MCP server temp dir");
        let preload = dir.path().join("record-headers.cjs");
        fs::write(&preload, HEADER_RECORDER).expect("write header recorder");
        let log_path = dir.path().join("mcp-server.log");
        let header_log = dir.path().join("requests.jsonl");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open MCP server log");
        let mut cmd = ns.command("node");
        cmd.env_clear()
            .env("PATH", CLEAN_PATH)
            .env("HOME", dir.path())
            .env("PORT", port.to_string())
            .env("MCP_HEADER_LOG", &header_log)
            .arg("--require")
            .arg(&preload)
            .arg(&bins.mcp_entry)
            .arg("streamableHttp")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log fd"))
            .stderr(log);
        let child = OwnedChild::spawn(&mut cmd, "MCP server");
        let mut server = McpServer {
            ns: ns.clone(),
            port,
            dir,
            log_path,
            header_log,
            child: Some(child),
        };
        let ready = try_wait_for(Duration::from_secs(30), || {
            if let Some(status) = server.child.as_mut().and_then(OwnedChild::exited) {
                return Err(format!("MCP server exited early with {status}"));
            }
            let out = server.ns.run(&["ss", "-ltnH"], Duration::from_secs(5));
            if out.stdout.contains(&format!(":{port} ")) {
                Ok(())
            } else {
                Err(format!("nothing listens on :{port} yet"))
            }
        });
        if let Err(e) = ready {
            server.dump_log();
            panic!("MCP server did not start: {e}");
        }
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Every request the server has received so far, oldest first.
    pub fn seen(&self) -> Vec<SeenRequest> {
        let text = fs::read_to_string(&self.header_log).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| SeenRequest {
                method: v["method"].as_str().unwrap_or("").to_owned(),
                url: v["url"].as_str().unwrap_or("").to_owned(),
                headers: v["headers"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| {
                                (k.to_ascii_lowercase(), v.as_str().unwrap_or("").to_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect()
    }

    pub fn dump_log(&self) {
        eprintln!(
            "===== MCP server log ({}) =====\n{}\n----- requests seen -----\n{}\n===== end of MCP server =====",
            self.log_path.display(),
            tail_file(&self.log_path, 200),
            tail_file(&self.header_log, 100)
        );
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_log();
        }
        if let Some(mut child) = self.child.take() {
            let status = child.terminate(Duration::from_secs(5));
            if let Ok(mut f) = OpenOptions::new().append(true).open(&self.log_path) {
                let _ = writeln!(f, "=== harness: MCP server stopped: {status:?} ===");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_reads_sse_and_plain_json() {
        let sse = McpReply {
            status: 200,
            headers: BTreeMap::new(),
            body: "event: message\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\n\n"
                .into(),
        };
        assert_eq!(sse.jsonrpc().expect("sse")["id"], 2);
        let plain = McpReply {
            status: 200,
            headers: BTreeMap::new(),
            body: "{\"jsonrpc\":\"2.0\",\"id\":3}".into(),
        };
        assert_eq!(plain.jsonrpc().expect("json")["id"], 3);
        let none = McpReply {
            status: 403,
            headers: BTreeMap::new(),
            body: "forbidden".into(),
        };
        assert!(none.jsonrpc().is_none());
    }

    #[test]
    fn tools_call_puts_the_name_first_and_is_valid_json() {
        let step = tools_call(7, "echo", json!({"message": "hi"}));
        assert!(step.body.contains(r#""params":{"name":"echo","arguments""#));
        let v: Value = serde_json::from_str(&step.body).expect("valid JSON");
        assert_eq!(v["params"]["arguments"]["message"], "hi");
        assert_eq!(v["method"], "tools/call");
    }
}
