//! Real-gateway end-to-end (issue 5): an MCP gateway asks clawscale who is
//! calling and which tools they may use.
//!
//! All inside test-made namespaces: two stock tailscaled 1.96.4 clients (one
//! `tag:mcp-client`, one plain member, bob) and a gateway host running Caddy
//! with the Tailscale plugin (tsnet node `mcp-gateway`, tagged
//! `tag:mcp-gateway`) in front of `@modelcontextprotocol/server-everything`
//! (streamable HTTP). Caddy's `forward_auth` asks clawscale's
//! `GET /api/v1/authorize` (API key, `X-Forwarded-For` = the caller's tailnet
//! IP from the trusted gateway host, `X-MCP-Tool` from the JSON-RPC body) and
//! copies the identity headers to the MCP server.
//!
//! Proves: the tagged client's `tools/call` of a granted tool (exact and
//! glob) succeeds and the MCP server sees its identity; a tool outside its
//! `clawql.dev/cap/mcp` grant gets 403; the member's call gets 403; forged
//! identity headers, `X-Forwarded-For` and `X-MCP-Tool` from the client
//! change nothing; tool-call bodies the gateway cannot read unambiguously are
//! refused.
//!
//! `CLAWSCALE_GATEWAY_STUB_AUTH=1` swaps clawscale's authorize endpoint for
//! the harness stub (`harness::gateway::StubAuthorize`) to debug the
//! Caddy/tsnet/MCP plumbing on its own; CI runs against clawscale.

use std::collections::BTreeMap;
use std::fs;
use std::thread;
use std::time::Duration;

use serde_json::json;

use crate::harness::gateway::{Caddy, GatewayConfig, StubAuthorize, StubIdentity};
use crate::harness::mcp::mcp_exchange;
use crate::harness::mcp::{
    McpReply, McpServer, McpStep, SeenRequest, initialize, initialized, tools_call,
};
use crate::harness::server::CONTROL_PORT;
use crate::harness::{
    ClientVersion, Db, KeyOptions, Server, Tailscaled, Topology, skip_real_clients, wait_for,
};

const JOIN: Duration = Duration::from_secs(90);
pub(crate) const GATEWAY_PORT: u16 = 80;
pub(crate) const MCP_PORT: u16 = 3001;
const STUB_PORT: u16 = 9099;
pub(crate) const GATEWAY_NAME: &str = "mcp-gateway";
pub(crate) const CLIENT_NAME: &str = "mcp-client";
pub(crate) const MEMBER_NAME: &str = "bob-laptop";

fn policy() -> String {
    r#"// gateway e2e policy
{
  "tagOwners": {
    "tag:mcp-client": ["alice@example.com"],
    "tag:mcp-gateway": ["alice@example.com"],
  },
  // Both clients may reach the gateway; only the grant decides tools.
  "acls": [
    {"action": "accept", "src": ["tag:mcp-client", "bob@example.com"], "dst": ["tag:mcp-gateway:80"]},
  ],
  "grants": [
    {
      "src": ["tag:mcp-client"],
      "dst": ["tag:mcp-gateway"],
      "app": {"clawql.dev/cap/mcp": [{"tools": ["echo", "get-tiny-*"]}]},
    },
  ],
}
"#
    .to_owned()
}

/// `s` labelled, so the MCP server's record says which step reached it.
pub(crate) fn step(s: McpStep, label: &str) -> McpStep {
    s.header("X-Test-Step", label)
}

pub(crate) fn ipv4(ts: &Tailscaled) -> String {
    let st = ts.wait_state("Running", JOIN);
    st.self_node
        .and_then(|s| s.tailscale_ips.into_iter().find(|ip| ip.contains('.')))
        .expect("an IPv4 tailnet address")
}

pub(crate) fn text_result(r: &McpReply) -> String {
    r.jsonrpc()
        .map(|v| {
            v["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_default()
}

#[test]
fn caddy_forward_auth_gates_mcp_tools_by_tailnet_identity() {
    if skip_real_clients() {
        return;
    }
    let stub_mode = std::env::var("CLAWSCALE_GATEWAY_STUB_AUTH").is_ok_and(|v| v == "1");
    let topo = Topology::new(3);
    let gw_host = topo.host_ip(2);
    let net = GatewayTailnet::start(&topo, !stub_mode);
    let server = &net.server;

    let (api_key, stub) = if stub_mode {
        let key = "stub-api-key-0123456789".to_owned();
        let stub = StubAuthorize::start(topo.hub(), topo.hub_ip(), STUB_PORT, &key, &[gw_host]);
        (key, Some(stub))
    } else {
        (create_api_key(server), None)
    };
    let authorize_at = match &stub {
        Some(s) => s.addr(),
        None => format!("{}:{CONTROL_PORT}", topo.hub_ip()),
    };

    let mcp = McpServer::start(topo.host(2), MCP_PORT);
    let caddy = Caddy::start(
        topo.host(2),
        &GatewayConfig {
            control_url: server.url(),
            auth_key: net.gateway_key.clone(),
            hostname: GATEWAY_NAME.into(),
            port: GATEWAY_PORT,
            authorize_at,
            api_key: api_key.clone(),
            mcp_server: "everything".into(),
            upstream: format!("127.0.0.1:{MCP_PORT}"),
        },
    );
    let client = Tailscaled::start(topo.host(0), CLIENT_NAME, ClientVersion::V1_96_4);
    let member = Tailscaled::start(topo.host(1), MEMBER_NAME, ClientVersion::V1_96_4);
    let url = server.url();
    thread::scope(|s| {
        s.spawn(|| client.up_ok(&url, &net.client_key, CLIENT_NAME));
        s.spawn(|| member.up_ok(&url, &net.bob_key, MEMBER_NAME));
    });
    let client_ip = ipv4(&client);
    let member_ip = ipv4(&member);
    let gw_ip = wait_for("the gateway's tsnet node to join", JOIN, || {
        let nodes = server.nodes();
        nodes
            .iter()
            .find(|n| n.name() == GATEWAY_NAME)
            .and_then(|n| n.ip_addresses().into_iter().find(|ip| ip.contains('.')))
            .ok_or_else(|| {
                format!(
                    "no {GATEWAY_NAME} in {:?}",
                    nodes
                        .iter()
                        .map(|n| n.name().to_owned())
                        .collect::<Vec<_>>()
                )
            })
    });
    eprintln!("gateway {gw_ip}, tagged client {client_ip}, member {member_ip}, stub={stub_mode}");
    if let Some(stub) = &stub {
        let mut table = BTreeMap::new();
        table.insert(
            client_ip.clone(),
            StubIdentity {
                login: "tagged-devices".into(),
                name: "tagged-devices".into(),
                node: format!("{CLIENT_NAME}.clawql.local."),
                tags: vec!["tag:mcp-client".into()],
                tools: vec!["echo".into(), "get-tiny-*".into()],
            },
        );
        table.insert(
            member_ip.clone(),
            StubIdentity {
                login: "bob@example.com".into(),
                name: "bob".into(),
                node: format!("{MEMBER_NAME}.clawql.local."),
                tags: vec![],
                tools: vec![],
            },
        );
        stub.set_table(&table);
    }

    // The tagged client reaches the MCP server through the gateway once the
    // netmaps have converged.
    await_mcp_session(&client, &gw_ip);

    let mut steps = common_steps(&member_ip);
    steps.extend([
        // Bodies the gateway cannot read unambiguously: refused.
        step(
            McpStep::raw(
                r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x"},"name":"get-sum"}}"#,
            ),
            "dup-name",
        ),
        step(
            McpStep::raw(
                r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"arguments":{"a":1,"b":2},"n\u0061me":"get-sum"}}"#,
            ),
            "escaped",
        ),
        step(
            McpStep::raw(
                r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"arguments":{"a":1,"b":2},"name":"get-sum"}}"#,
            ),
            "name-not-first",
        ),
    ]);
    let replies = mcp_exchange(&client, &gw_ip, GATEWAY_PORT, &steps);
    assert_common_replies(&replies);
    let by = |i: usize| &replies[i];
    let show = || format!("{replies:#?}");
    for i in 7..=9 {
        assert_eq!(by(i).status, 400, "ambiguous body {i}: {}", show());
    }

    // The plain member: no grant, so its tool call is refused.
    assert_member_refused(&member, &gw_ip);

    // What the MCP server itself received.
    let seen = mcp.seen();
    assert_reached(
        &seen,
        &["init", "echo", "glob", "forged-echo"],
        &[
            "denied",
            "forged-tool",
            "dup-name",
            "escaped",
            "name-not-first",
            "member-echo",
        ],
    );
    for label in ["echo", "forged-echo"] {
        assert_caller_identity(&seen, label);
    }

    if let Some(stub) = &stub {
        // The gateway sent the caller's tailnet IP and the body's tool name.
        let d = stub.decisions();
        assert!(
            d.iter().any(|x| x["src"] == client_ip.as_str()
                && x["tool"] == "get-sum"
                && x["status"] == 403),
            "{d:#?}"
        );
        // Apart from the harness's own unauthenticated readiness probe (401),
        // every question came from the gateway host.
        assert!(
            d.iter()
                .filter(|x| x["status"] != 401)
                .all(|x| x["peer"] == gw_host.to_string().as_str()),
            "{d:#?}"
        );
    }
    drop(caddy);
}

/// `clawscale apikeys create` (Headscale's shape, plus `--scope whois`);
/// prints the key on its last stdout line.
pub(crate) fn create_api_key(server: &Server) -> String {
    let out = server.cli_ok(&[
        "apikeys",
        "create",
        "--scope",
        "whois",
        "--expiration",
        "1h",
    ]);
    let key = out
        .stdout
        .lines()
        .rev()
        .map(|l| l.trim().trim_matches('"'))
        .find(|l| !l.is_empty())
        .unwrap_or_else(|| panic!("apikeys create printed no key:\n{out}"))
        .to_owned();
    assert!(
        !key.contains(' '),
        "unexpected apikeys create output:\n{out}"
    );
    key
}

/// Every step in `must` reached the MCP server and none in `never` did.
pub(crate) fn assert_reached(seen: &[SeenRequest], must: &[&str], never: &[&str]) {
    let steps: Vec<&str> = seen
        .iter()
        .filter_map(|r| r.headers.get("x-test-step").map(String::as_str))
        .collect();
    for m in must {
        assert!(
            steps.contains(m),
            "{m} did not reach the MCP server: {steps:?}"
        );
    }
    for n in never {
        assert!(
            !steps.contains(n),
            "{n} must not reach the MCP server: {steps:?}"
        );
    }
}

/// The MCP server got the tagged client's identity from clawscale with the
/// step `label`, and nothing the client forged.
pub(crate) fn assert_caller_identity(seen: &[SeenRequest], label: &str) {
    let req = seen
        .iter()
        .find(|r| r.headers.get("x-test-step").map(String::as_str) == Some(label))
        .unwrap_or_else(|| panic!("{label} did not reach the MCP server"));
    let h = |name: &str| req.headers.get(name).cloned().unwrap_or_default();
    eprintln!(
        "MCP server saw for {label}: login={:?} name={:?} node={:?} tags={:?} caps={:?}",
        h("tailscale-user-login"),
        h("tailscale-user-name"),
        h("tailscale-node"),
        h("tailscale-tags"),
        h("tailscale-caps")
    );
    assert!(
        h("tailscale-tags").contains("tag:mcp-client"),
        "{label}: {req:?}"
    );
    assert!(
        !h("tailscale-tags").contains("tag:admin"),
        "{label}: {req:?}"
    );
    assert!(
        h("tailscale-node").contains(CLIENT_NAME),
        "{label}: {req:?}"
    );
    assert!(!h("tailscale-user-login").is_empty(), "{label}: {req:?}");
    assert!(
        !h("tailscale-user-login").contains("evil"),
        "{label}: {req:?}"
    );
    let caps: serde_json::Value = serde_json::from_str(&h("tailscale-caps"))
        .unwrap_or_else(|e| panic!("{label}: Tailscale-Caps is not JSON ({e}): {req:?}"));
    assert!(caps.to_string().contains("echo"), "{label}: caps {caps}");
    assert_eq!(req.method, "POST");
    assert_eq!(req.url, "/mcp");
}

/// The tailnet both gateway tests use: clawscale with the gateway policy,
/// alice and bob, and a pre-auth key for each node.
pub(crate) struct GatewayTailnet {
    pub server: Server,
    pub client_key: String,
    pub gateway_key: String,
    pub bob_key: String,
    _policy_dir: tempfile::TempDir,
}

impl GatewayTailnet {
    /// `trust_gateway`: list the gateway host (host 2) as the trusted proxy
    /// and `mcp-gateway` as the grants' destination.
    pub(crate) fn start(topo: &Topology, trust_gateway: bool) -> GatewayTailnet {
        let gw_host = topo.host_ip(2);
        let policy_dir = tempfile::tempdir().expect("policy dir");
        let policy_path = policy_dir.path().join("policy.hujson");
        fs::write(&policy_path, policy()).expect("write policy");
        let server = Server::start_with(topo, Db::Sqlite, |cfg| {
            cfg.set("policy.mode", "file");
            cfg.set("policy.path", policy_path.to_string_lossy().to_string());
            if trust_gateway {
                // The gateway host talks to the control port directly (not
                // over the tailnet), so its underlay address is the trusted
                // proxy.
                cfg.set("whois.trusted_proxies", vec![format!("{gw_host}/32")]);
                cfg.set("whois.gateway", GATEWAY_NAME);
            }
        });
        for (user, email) in [("alice", "alice@example.com"), ("bob", "bob@example.com")] {
            server.cli_ok(&["users", "create", user, "--email", email]);
        }
        let tagged = |tag: &str| KeyOptions {
            tags: vec![tag.to_owned()],
            ..KeyOptions::default()
        };
        GatewayTailnet {
            client_key: server.create_preauthkey("alice", &tagged("tag:mcp-client")),
            gateway_key: server.create_preauthkey("alice", &tagged("tag:mcp-gateway")),
            bob_key: server.create_preauthkey("bob", &KeyOptions::default()),
            server,
            _policy_dir: policy_dir,
        }
    }
}

/// Waits until the tagged client can initialize an MCP session through
/// the gateway at `gw_ip` (the netmaps have converged).
pub(crate) fn await_mcp_session(client: &Tailscaled, gw_ip: &str) {
    wait_for(
        "the tagged client to initialize an MCP session",
        JOIN,
        || {
            let r = mcp_exchange(client, gw_ip, GATEWAY_PORT, &[step(initialize(1), "probe")]);
            match r[0].status {
                200 => Ok(()),
                s => Err(format!("initialize answered {s}: {}", r[0].body)),
            }
        },
    );
}

/// The tagged client's first seven steps, the same for every gateway:
/// a session, two granted tools (exact and glob), one outside the grant,
/// and forged identity, source (`forged_source`) and tool headers.
pub(crate) fn common_steps(forged_source: &str) -> Vec<McpStep> {
    vec![
        step(initialize(1), "init"),
        step(initialized(), "initialized"),
        step(tools_call(2, "echo", json!({"message": "hi"})), "echo"),
        step(tools_call(3, "get-tiny-image", json!({})), "glob"),
        step(tools_call(4, "get-sum", json!({"a": 1, "b": 2})), "denied"),
        // Forged identity, source and tool headers change nothing.
        step(
            tools_call(5, "echo", json!({"message": "forged"})),
            "forged-echo",
        )
        .header("Tailscale-User-Login", "root@evil.example")
        .header("Tailscale-Tags", "tag:admin")
        .header("X-Forwarded-For", forged_source)
        .header("X-MCP-Tool", "get-sum"),
        step(
            tools_call(6, "get-sum", json!({"a": 1, "b": 2})),
            "forged-tool",
        )
        .header("X-MCP-Tool", "echo"),
    ]
}

/// The answers to [`common_steps`].
pub(crate) fn assert_common_replies(replies: &[McpReply]) {
    let by = |i: usize| &replies[i];
    let show = || format!("{replies:#?}");
    assert_eq!(by(0).status, 200, "initialize: {}", show());
    assert!(by(0).headers.contains_key("mcp-session-id"), "{}", show());
    assert!(matches!(by(1).status, 200 | 202), "initialized: {}", show());
    assert_eq!(by(2).status, 200, "granted tool: {}", show());
    assert_eq!(text_result(by(2)), "Echo: hi", "{}", show());
    assert_eq!(by(3).status, 200, "glob-granted tool: {}", show());
    assert_eq!(by(4).status, 403, "tool outside the grant: {}", show());
    assert_eq!(by(5).status, 200, "forged headers: {}", show());
    assert_eq!(text_result(by(5)), "Echo: forged", "{}", show());
    assert_eq!(
        by(6).status,
        403,
        "a forged X-MCP-Tool must not unlock get-sum: {}",
        show()
    );
}

/// bob, a plain member without a grant, is refused the tool call even
/// when claiming alice's login.
pub(crate) fn assert_member_refused(member: &Tailscaled, gw_ip: &str) {
    let replies = mcp_exchange(
        member,
        gw_ip,
        GATEWAY_PORT,
        &[
            step(initialize(1), "member-init"),
            step(
                tools_call(2, "echo", json!({"message": "bob"})),
                "member-echo",
            )
            .header("Tailscale-User-Login", "alice@example.com"),
        ],
    );
    eprintln!("member initialize answered {}", replies[0].status);
    assert_eq!(replies[1].status, 403, "member tool call: {replies:#?}");
}
