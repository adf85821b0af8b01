//! The offline policy commands, run on the starter policies shipped in
//! `acl-policies/` (each must pass its own `tests`) and on broken input.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cli::policy::{PolicyCommand, REJECTED, run_offline};

fn starter(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("acl-policies")
        .join(name)
}

fn run(cmd: PolicyCommand) -> (Result<Option<u8>, String>, String) {
    let mut out = Vec::new();
    let r = run_offline(&mut out, cmd).map_err(|e| e.to_string());
    (r, String::from_utf8(out).expect("utf-8"))
}

/// alice and ops are users; one MCP server, one MCP client, one ClawQL host.
const TOPOLOGY: &str = r#"{
  "users": [
    {"id": 1, "name": "ops", "email": "ops@example.com"},
    {"id": 2, "name": "alice", "email": "alice@example.com"},
    {"id": 3, "name": "admin", "email": "admin@example.com"}
  ],
  "nodes": {
    "ops-laptop": {"user": "ops", "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1"},
    "alice-laptop": {"user": "alice", "ipv4": "100.64.0.2", "ipv6": "fd7a:115c:a1e0::2"},
    "mcp-1": {"tags": ["tag:mcp-server"], "ipv4": "100.64.0.3", "ipv6": "fd7a:115c:a1e0::3"},
    "agent": {"tags": ["tag:mcp-client"], "ipv4": "100.64.0.4", "ipv6": "fd7a:115c:a1e0::4"},
    "clawql": {"tags": ["tag:clawql"], "ipv4": "100.64.0.5", "ipv6": "fd7a:115c:a1e0::5"}
  }
}"#;

fn topology_file(dir: &tempfile::TempDir) -> PathBuf {
    let p = dir.path().join("topology.json");
    std::fs::write(&p, TOPOLOGY).expect("write topology");
    p
}

#[test]
fn every_starter_policy_passes_its_own_tests() {
    for name in [
        "mcp.hujson",
        "clawql.hujson",
        "deny-by-default.hujson",
        "mcp-deny.hujson",
        "tailops-services.hujson",
    ] {
        let (r, out) = run(PolicyCommand::Check {
            path: Some(starter(name)),
            file: None,
            topology: None,
            strict: false,
        });
        assert_eq!(r, Ok(None), "{name}: {out}");
        assert!(out.contains("policy is valid"), "{out}");
    }
}

#[test]
fn check_reports_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("bad.hujson");
    std::fs::write(&p, "{\n  \"acls\": [\n    {\"action\": \"accept\", \"src\": [\"group:nobody\"], \"dst\": [\"*:*\"]},\n  ],\n}\n").unwrap();
    let (r, _) = run(PolicyCommand::Check {
        path: Some(p),
        file: None,
        topology: None,
        strict: false,
    });
    let err = r.expect_err("undefined group");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("group:nobody"), "{err}");
}

#[test]
fn compile_prints_per_node_maps_for_the_mcp_starter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (r, out) = run(PolicyCommand::Compile {
        policy: starter("mcp.hujson"),
        topology: topology_file(&dir),
    });
    assert_eq!(r, Ok(None), "{out}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    let nodes = &v["nodes"];
    // The agent sees the MCP server (and the operator, who may reach it).
    let agent_peers = nodes["agent"]["peers"].as_object().unwrap();
    assert!(agent_peers.contains_key("mcp-1"), "{out}");
    assert!(!agent_peers.contains_key("alice-laptop"), "{out}");
    // alice is in no rule of her own: only ops (who may reach every node)
    // and she see each other.
    let alice_peers: Vec<&String> = nodes["alice-laptop"]["peers"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(alice_peers, ["ops-laptop"], "{out}");
    // The MCP server's filter admits the agent on 443 only, and whois at the
    // server carries the agent's tool capabilities unchanged.
    let rules = nodes["mcp-1"]["packet_filter_rules"].as_array().unwrap();
    let admits_agent_443 = rules.iter().any(|r| {
        r["SrcIPs"].to_string().contains("100.64.0.4")
            && r["DstPorts"]
                .as_array()
                .is_some_and(|d| d.iter().all(|p| p["Ports"]["First"] == 443))
    });
    assert!(
        admits_agent_443,
        "{}",
        serde_json::to_string_pretty(rules).unwrap()
    );
    let caps = &nodes["mcp-1"]["whois"]["100.64.0.4"]["CapMap"]["clawql.dev/cap/mcp"];
    assert_eq!(
        caps[0]["tools"],
        serde_json::json!(["search_*", "fetch"]),
        "{out}"
    );
    assert_eq!(
        nodes["mcp-1"]["whois"]["100.64.0.4"]["login"],
        "tagged-devices"
    );
    // SSH: ops may log in to the MCP server (check mode).
    assert!(!nodes["mcp-1"]["ssh_rules"].as_array().unwrap().is_empty());
}

#[test]
fn compile_rejects_a_policy_with_exit_status_2_and_a_json_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("bad.hujson");
    std::fs::write(&p, "{\"acls\": [}").unwrap();
    let (r, out) = run(PolicyCommand::Compile {
        policy: p,
        topology: topology_file(&dir),
    });
    assert_eq!(r, Ok(Some(REJECTED)));
    let v: Value = serde_json::from_str(&out).expect("JSON on stdout");
    assert!(v["error"].as_str().unwrap().contains("line 1"), "{out}");
}

#[test]
fn explain_names_the_rule_or_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let topo = topology_file(&dir);
    let explain = |src: &str, dst: &str| {
        run(PolicyCommand::Explain {
            policy: starter("clawql.hujson"),
            topology: topo.clone(),
            src: src.into(),
            dst: dst.into(),
            proto: None,
        })
    };
    let (r, out) = explain("alice-laptop", "clawql:8080");
    assert_eq!(r, Ok(None));
    assert!(out.starts_with("allowed by acls[0]"), "{out}");
    let (r, out) = explain("alice-laptop", "clawql:22");
    assert_eq!(r, Ok(None));
    assert!(out.starts_with("denied"), "{out}");
    assert!(out.contains("acls[0] allows ports 8080 only"), "{out}");
    let (_, out) = explain("clawql", "alice-laptop:8080");
    assert!(out.contains("no rule names this source"), "{out}");
    let (r, _) = explain("nobody", "clawql:22");
    assert!(r.is_err());
}

#[test]
fn a_failing_policy_test_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("p.hujson");
    std::fs::write(
        &p,
        r#"{
  "tagOwners": {"tag:web": ["alice@example.com"]},
  "acls": [{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:web:443"]}],
  "tests": [{"src": "alice@example.com", "accept": ["tag:web:22"]}],
}"#,
    )
    .unwrap();
    let (r, _) = run(PolicyCommand::Check {
        path: Some(p),
        file: None,
        topology: None,
        strict: false,
    });
    let err = r.expect_err("port 22 is not allowed");
    assert!(err.contains("test(s) failed"), "{err}");
    assert!(
        err.contains("tests[0]") && err.contains("tag:web:22") && err.contains("accepted"),
        "{err}"
    );
}

#[test]
fn strict_check_refuses_clawscale_extensions() {
    let check = |name: &str| {
        run(PolicyCommand::Check {
            path: Some(starter(name)),
            file: None,
            topology: None,
            strict: true,
        })
    };
    assert_eq!(check("deny-by-default.hujson").0, Ok(None));
    for (name, what) in [
        ("mcp-deny.hujson", "\"action\": \"deny\""),
        ("tailops-services.hujson", "services section"),
        ("clawql.hujson", "services section"),
    ] {
        let err = check(name).0.expect_err(name);
        assert!(
            err.contains(what) && err.contains("strict mode"),
            "{name}: {err}"
        );
        assert!(err.contains("line "), "{name}: {err}");
    }
}

/// The starter policy with denies, on a tailnet: alice (mcp-users), carol
/// (contractors), admin; the MCP host and a server.
const DENY_TOPOLOGY: &str = r#"{
  "users": [
    {"id": 1, "name": "alice", "email": "alice@example.com"},
    {"id": 2, "name": "carol", "email": "carol@example.com"},
    {"id": 3, "name": "admin", "email": "admin@example.com"}
  ],
  "nodes": {
    "alice-laptop": {"user": "alice", "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1"},
    "carol-laptop": {"user": "carol", "ipv4": "100.64.0.2", "ipv6": "fd7a:115c:a1e0::2"},
    "mcp": {"tags": ["tag:mcp-host"], "ipv4": "100.64.0.3", "ipv6": "fd7a:115c:a1e0::3"},
    "server": {"tags": ["tag:server"], "ipv4": "100.64.0.4", "ipv6": "fd7a:115c:a1e0::4"}
  }
}"#;

#[test]
fn explain_names_the_deciding_deny_rule() {
    let dir = tempfile::tempdir().expect("tempdir");
    let topo = dir.path().join("topology.json");
    std::fs::write(&topo, DENY_TOPOLOGY).expect("write topology");
    let explain = |src: &str, dst: &str, proto: Option<&str>| {
        let (r, out) = run(PolicyCommand::Explain {
            policy: starter("mcp-deny.hujson"),
            topology: topo.clone(),
            src: src.into(),
            dst: dst.into(),
            proto: proto.map(str::to_string),
        });
        assert_eq!(r, Ok(None), "{out}");
        out
    };
    assert!(explain("alice-laptop", "mcp:3010", None).starts_with("allowed by acls[0]"));
    let out = explain("alice-laptop", "mcp:22", None);
    assert_eq!(out.trim(), "denied by acls[1] (a deny rule)");
    let out = explain("carol-laptop", "server:22", Some("tcp"));
    assert_eq!(out.trim(), "denied by acls[2] (a deny rule)");
    assert!(explain("carol-laptop", "server:22", Some("udp")).starts_with("allowed by acls[3]"));
    assert!(explain("carol-laptop", "server:443", None).starts_with("allowed by acls[3]"));
    // The TailOpsMCP service's implied grant is named too.
    let topo2 = dir.path().join("tailops.json");
    std::fs::write(
        &topo2,
        r#"{"users": [], "nodes": {
            "client": {"tags": ["tag:systemmanager-client"], "ipv4": "100.64.0.5"},
            "server": {"tags": ["tag:systemmanager-server"], "ipv4": "100.64.0.6"}}}"#,
    )
    .expect("write topology");
    let (r, out) = run(PolicyCommand::Explain {
        policy: starter("tailops-services.hujson"),
        topology: topo2,
        src: "client".into(),
        dst: "server:8080".into(),
        proto: None,
    });
    assert_eq!(r, Ok(None));
    assert_eq!(
        out.trim(),
        r#"allowed by services["svc:systemmanager-mcp"].allowedTags"#
    );
}

/// Topology files may give users their identity-provider groups, so
/// `oidc:NAME` group members can be checked and explained offline.
#[test]
fn topology_users_carry_oidc_groups_for_explain_and_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let topo = dir.path().join("topo.json");
    std::fs::write(
        &topo,
        r#"{"users": [
              {"id": 1, "name": "alice", "email": "alice@example.com", "groups": ["mcp-admins"]},
              {"id": 2, "name": "bob", "email": "bob@example.com"}],
            "nodes": {
              "alice-laptop": {"user": "alice", "ipv4": "100.64.0.1"},
              "bob-laptop": {"user": "bob", "ipv4": "100.64.0.2"},
              "mcp": {"tags": ["tag:mcp-server"], "ipv4": "100.64.0.3"}}}"#,
    )
    .unwrap();
    let policy = dir.path().join("p.hujson");
    std::fs::write(
        &policy,
        r#"{"groups": {"group:mcp-admins": ["oidc:mcp-admins"]},
            "tagOwners": {"tag:mcp-server": []},
            "acls": [{"action": "accept", "src": ["group:mcp-admins"], "dst": ["tag:mcp-server:443"]}]}"#,
    )
    .unwrap();
    let explain = |src: &str| {
        run(PolicyCommand::Explain {
            policy: policy.clone(),
            topology: topo.clone(),
            src: src.into(),
            dst: "mcp:443".into(),
            proto: None,
        })
    };
    let (r, out) = explain("alice-laptop");
    assert_eq!(r, Ok(None));
    assert!(out.starts_with("allowed by acls[0]"), "{out}");
    let (_, out) = explain("bob-laptop");
    assert!(out.starts_with("denied"), "{out}");
    let check = |strict| {
        run(PolicyCommand::Check {
            path: Some(policy.clone()),
            file: None,
            topology: Some(topo.clone()),
            strict,
        })
    };
    let (r, out) = check(false);
    assert_eq!(r, Ok(None), "{out}");
    let (r, _) = check(true);
    assert!(
        r.unwrap_err().contains("oidc:mcp-admins"),
        "strict refuses oidc:"
    );
}
