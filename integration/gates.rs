//! The shipped MCP gates as the gateway: nginx with its njs gate
//! (`deploy/nginx/`) and HAProxy with its Lua gate (`deploy/haproxy/`), each
//! in front of `@modelcontextprotocol/server-everything`, asking clawscale's
//! `/api/v1/authorize` for every request, with genuine tailscaled 1.96.4
//! clients in test-made namespaces (the same tailnet and policy as the
//! Caddy test in `gateway.rs`).
//!
//! The gateway host's tailscaled uses a TUN device, so the proxy sees each
//! caller's tailnet address and sends it as `X-Forwarded-For` from the
//! trusted gateway host. Both gates read the JSON-RPC body with a JSON
//! parser, so unlike the Caddy regex they decide on the same tool the MCP
//! server will call: a body naming a tool twice is judged by the last name,
//! as the server reads it, instead of being refused.

use std::thread;

use serde_json::json;

use crate::gateway::{
    CLIENT_NAME, GATEWAY_NAME, GATEWAY_PORT, GatewayTailnet, MCP_PORT, MEMBER_NAME,
    assert_caller_identity, assert_common_replies, assert_member_refused, assert_reached,
    await_mcp_session, common_steps, create_api_key, ipv4, step, text_result,
};
use crate::harness::gates::{Gate, GateConfig};
use crate::harness::mcp::{McpServer, McpStep, mcp_exchange, tools_call};
use crate::harness::{
    CONTROL_PORT, ClientVersion, Tailscaled, TailscaledOptions, Topology, skip_real_clients,
};

#[test]
fn nginx_njs_gate_passes_mcp_tools_by_tailnet_identity() {
    gate_passes_mcp_tools_by_tailnet_identity(Gate::Nginx);
}

#[test]
fn haproxy_lua_gate_passes_mcp_tools_by_tailnet_identity() {
    gate_passes_mcp_tools_by_tailnet_identity(Gate::Haproxy);
}

fn gate_passes_mcp_tools_by_tailnet_identity(gate: Gate) {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(3);
    let net = GatewayTailnet::start(&topo, true);
    let server = &net.server;
    let api_key = create_api_key(server);

    let mcp = McpServer::start(topo.host(2), MCP_PORT);
    let gateway = Tailscaled::start_with(
        topo.host(2),
        GATEWAY_NAME,
        TailscaledOptions {
            args: vec!["--tun=tailscale0".into()],
            ..TailscaledOptions::default()
        },
    );
    let _gate = gate.start(
        topo.host(2),
        &GateConfig {
            clawscale_url: format!("http://{}:{CONTROL_PORT}", topo.hub_ip()),
            api_key,
            mcp_upstream: format!("127.0.0.1:{MCP_PORT}"),
            port: GATEWAY_PORT,
        },
    );
    let client = Tailscaled::start(topo.host(0), CLIENT_NAME, ClientVersion::V1_96_4);
    let member = Tailscaled::start(topo.host(1), MEMBER_NAME, ClientVersion::V1_96_4);
    let url = server.url();
    thread::scope(|s| {
        s.spawn(|| {
            // Kernel routing, no firewall rules of tailscaled's own.
            let out = gateway.up_with(
                &url,
                &net.gateway_key,
                GATEWAY_NAME,
                &["--netfilter-mode=off"],
            );
            assert!(out.success(), "gateway up:\n{out}");
        });
        s.spawn(|| client.up_ok(&url, &net.client_key, CLIENT_NAME));
        s.spawn(|| member.up_ok(&url, &net.bob_key, MEMBER_NAME));
    });
    let gw_ip = ipv4(&gateway);
    eprintln!(
        "{gate:?} gateway {gw_ip} (tun), tagged client {}, member {}",
        ipv4(&client),
        ipv4(&member)
    );

    await_mcp_session(&client, &gw_ip);

    // A forged source names no node here: the gate must not pass it on.
    let mut steps = common_steps("100.64.0.99");
    steps.extend([
        // Two names: the last one counts, for the gate as for the
        // server, so an ungranted last name is refused...
        step(
            McpStep::raw(
                r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"a":1,"b":2},"name":"get-sum"}}"#,
            ),
            "dup-name",
        ),
        // ...and a granted last name is what the server calls.
        step(
            McpStep::raw(
                r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"get-sum","arguments":{"message":"last"},"name":"echo"}}"#,
            ),
            "dup-name-granted",
        ),
        // An escaped key is the same key.
        step(
            McpStep::raw(
                r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"arguments":{"a":1,"b":2},"n\u0061me":"get-sum"}}"#,
            ),
            "escaped",
        ),
        step(
            McpStep::raw(
                r#"[{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"echo"}}]"#,
            ),
            "batch",
        ),
        // More than either gate reads at once (nginx 1 MiB, HAProxy's
        // buffer 256 KiB): refused whole, never judged on a part.
        step(
            tools_call(11, "echo", json!({"message": "x".repeat(1_200_000)})),
            "too-large",
        ),
    ]);
    let replies = mcp_exchange(&client, &gw_ip, GATEWAY_PORT, &steps);
    assert_common_replies(&replies);
    let by = |i: usize| &replies[i];
    let show = || format!("{replies:#?}");
    assert_eq!(by(7).status, 403, "last name ungranted: {}", show());
    assert_eq!(by(8).status, 200, "last name granted: {}", show());
    assert_eq!(text_result(by(8)), "Echo: last", "{}", show());
    assert_eq!(by(9).status, 403, "escaped key: {}", show());
    assert_eq!(by(10).status, 400, "batch: {}", show());
    // nginx reads and drops the rest of the body and answers 413. HAProxy
    // answers 413 as soon as its buffer is full and closes, so a client
    // still sending may see the connection reset instead of the answer.
    let too_large = by(11);
    assert!(
        too_large.status == 413
            || (too_large.status == 0
                && ["RemoteDisconnected", "ConnectionReset", "BrokenPipe"]
                    .iter()
                    .any(|e| too_large.body.contains(e))),
        "too large: {} {}",
        too_large.status,
        too_large.body
    );

    assert_member_refused(&member, &gw_ip);

    let seen = mcp.seen();
    assert_reached(
        &seen,
        &["init", "echo", "glob", "forged-echo", "dup-name-granted"],
        &[
            "denied",
            "forged-tool",
            "dup-name",
            "escaped",
            "batch",
            "too-large",
            "member-echo",
        ],
    );
    for label in ["echo", "forged-echo", "dup-name-granted"] {
        assert_caller_identity(&seen, label);
    }
    // The gate's own header never reaches the server.
    assert!(
        seen.iter().all(|r| !r.headers.contains_key("x-mcp-tool")),
        "{seen:#?}"
    );
}
