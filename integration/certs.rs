//! HTTPS for tailnet services (issue 17) with real clients: a `clawscale
//! serve` with `dns.certs.enabled`, Debian's `pebble` ACME test CA resolving
//! through clawscale's DNS server, and two stock tailscale 1.96.4 nodes
//! whose `TS_DEBUG_ACME_DIRECTORY_URL` points at pebble.
//!
//! Proves: `tailscale cert <node>.<base_domain>` gets a chain `openssl
//! verify` accepts against pebble's root (the node asked `/machine/set-dns`
//! for its challenge, clawscale's DNS server answered pebble's TXT query);
//! the host of `svc:mcp` gets `mcp.<base_domain>` too; `tailscale serve
//! --https=443` in front of the MCP server answers another node's `curl
//! --cacert <pebble root> https://<node>.<base_domain>/mcp` (name resolved
//! by that node's MagicDNS through its SOCKS5 proxy) with a completed MCP
//! `initialize`, and `https://mcp.<base_domain>/mcp` likewise once the
//! serve config also lists that name (`serve set-raw`); a node
//! asking for another node's name gets no certificate; `/metrics` counts
//! challenges accepted and served, and `clawscale nodes list` the names
//! each node proved.
//!
//! The base domain is the harness's `clawql.local`: neither pebble nor the
//! client refuses `.local` names (pebble queries the `-dnsserver` given,
//! and the client only checks the name is one of its `CertDomains`).

use std::fs;
use std::time::Duration;

use serde_json::Value;

use crate::harness::mcp::{McpServer, initialize};
use crate::harness::pebble::Pebble;
use crate::harness::{
    BASE_DOMAIN, KeyOptions, Netns, Server, Tailscaled, TailscaledOptions, Topology,
    skip_real_clients, wait_for,
};

const JOIN: Duration = Duration::from_secs(90);
const DNS_PORT: u16 = 5353;
const MCP_PORT: u16 = 3001;
const SOCKS: &str = "127.0.0.1:1055";
/// ACME account registration, order, validation and issuance against
/// pebble: seconds; generous for a loaded CI machine.
const ISSUE: Duration = Duration::from_secs(120);

const POLICY: &str = r#"{
  "tagOwners": {"tag:mcp": ["alice@example.com"]},
  "services": {"svc:mcp": {"hosts": ["tag:mcp"], "ports": ["tcp:443"]}},
  "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
}"#;

/// `tailscale cert NAME` on `node`, written to its state directory; the
/// chain's path on success, the CLI's output on failure.
pub(crate) fn cert(node: &Tailscaled, name: &str) -> Result<std::path::PathBuf, String> {
    let dir = node.state_dir();
    let crt = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let out = node.cli(
        &[
            "cert",
            &format!("--cert-file={}", crt.display()),
            &format!("--key-file={}", key.display()),
            name,
        ],
        ISSUE,
    );
    if out.success() && crt.exists() {
        Ok(crt)
    } else {
        Err(out.combined())
    }
}

/// `openssl verify` of the chain's leaf against `root`, by name.
pub(crate) fn verify(
    ns: &Netns,
    root: &std::path::Path,
    chain: &std::path::Path,
    name: &str,
) -> String {
    let root = root.to_string_lossy().into_owned();
    let chain = chain.to_string_lossy().into_owned();
    let out = ns.run(
        &[
            "openssl",
            "verify",
            "-CAfile",
            &root,
            "-untrusted",
            &chain,
            "-verify_hostname",
            name,
            &chain,
        ],
        Duration::from_secs(10),
    );
    out.combined()
}

/// An MCP `initialize` POSTed with curl from `client`'s namespace through
/// its tailscaled's SOCKS5 proxy (userspace networking), the name resolved
/// by the proxy (MagicDNS); curl checks the certificate against `root`.
fn mcp_initialize(client: &Tailscaled, root: &std::path::Path, url: &str) -> Result<Value, String> {
    let body = initialize(1).body;
    let root = root.to_string_lossy().into_owned();
    let proxy = format!("socks5h://{SOCKS}");
    let out = client.netns().run(
        &[
            "curl",
            "-sS",
            "--fail-with-body",
            "--max-time",
            "20",
            "--proxy",
            &proxy,
            "--cacert",
            &root,
            "-H",
            "Content-Type: application/json",
            "-H",
            "Accept: application/json, text/event-stream",
            "--data",
            &body,
            url,
        ],
        Duration::from_secs(30),
    );
    if !out.success() {
        return Err(out.combined());
    }
    // Streamable HTTP answers with one SSE event (or plain JSON).
    let text = out.stdout;
    let json = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or(&text);
    serde_json::from_str(json.trim()).map_err(|e| format!("{e}: {text}"))
}

/// The value of `/metrics` line `name` on `server`.
pub(crate) fn metric(topo: &Topology, server: &Server, name: &str) -> f64 {
    let (_, body) = topo
        .hub()
        .http_get(server.ip(), server.port(), "/metrics")
        .unwrap_or_else(|e| panic!("GET /metrics: {e}"));
    body.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn tailscale_cert_and_serve_https_through_clawscales_dns() {
    if skip_real_clients() {
        return;
    }
    let topo = Topology::new(2);
    let dir = tempfile::tempdir().expect("temp dir");
    let policy_path = dir.path().join("policy.hujson");
    fs::write(&policy_path, POLICY).expect("write policy");
    let hub_ip = topo.hub_ip();
    let server = Server::start_with(&topo, crate::harness::Db::Sqlite, |cfg| {
        cfg.set("policy.mode", "file");
        cfg.set("policy.path", policy_path.to_string_lossy().to_string());
        cfg.set("dns.server.enabled", true);
        cfg.set("dns.server.listen_addr", format!("{hub_ip}:{DNS_PORT}"));
        // Default allow-list (loopback and the tailnet): pebble, on the
        // hub's LAN address, is not on it, like a public CA's resolvers.
        cfg.set("dns.certs.enabled", true);
    });
    // The CA, on the hub, asks clawscale's DNS server directly.
    let pebble = Pebble::start(
        topo.hub(),
        hub_ip,
        format!("{hub_ip}:{DNS_PORT}").parse().unwrap(),
    );
    let acme_env = vec![
        (
            "TS_DEBUG_ACME_DIRECTORY_URL".to_string(),
            pebble.directory_url(),
        ),
        (
            "SSL_CERT_FILE".to_string(),
            pebble.tls_ca().to_string_lossy().into_owned(),
        ),
    ];

    server.cli_ok(&["users", "create", "alice", "--email", "alice@example.com"]);
    let web_key = server.create_preauthkey(
        "alice",
        &KeyOptions {
            tags: vec!["tag:mcp".into()],
            ..KeyOptions::default()
        },
    );
    let laptop_key = server.create_preauthkey("alice", &KeyOptions::default());
    let web = Tailscaled::start_with(
        topo.host(0),
        "web",
        TailscaledOptions {
            env: acme_env.clone(),
            ..TailscaledOptions::default()
        },
    );
    let laptop = Tailscaled::start_with(
        topo.host(1),
        "laptop",
        TailscaledOptions {
            env: acme_env,
            args: vec![format!("--socks5-server={SOCKS}")],
            ..TailscaledOptions::default()
        },
    );
    web.up_ok(&server.url(), &web_key, "web");
    laptop.up_ok(&server.url(), &laptop_key, "laptop");
    web.wait_state("Running", JOIN);
    laptop.wait_state("Running", JOIN);

    let web_name = format!("web.{BASE_DOMAIN}");
    let mcp_name = format!("mcp.{BASE_DOMAIN}");
    // The map: CertDomains and the https capability.
    let st = web.status_json().expect("status");
    let domains: Vec<String> =
        serde_json::from_value(st["CertDomains"].clone()).unwrap_or_default();
    assert_eq!(domains, vec![web_name.clone(), mcp_name.clone()], "{st}");

    // A node asking for another node's name gets nothing.
    let refused = cert(&laptop, &web_name).expect_err("laptop must not get web's certificate");
    assert!(refused.contains("invalid domain"), "{refused}");
    assert!(!laptop.state_dir().join(format!("{web_name}.crt")).exists());

    // The node's own name, and the service it hosts.
    let root = pebble.root_pem();
    let chain = cert(&web, &web_name).unwrap_or_else(|e| {
        pebble.dump_log();
        panic!("tailscale cert {web_name}: {e}")
    });
    let verdict = verify(topo.host(0), &root, &chain, &web_name);
    assert!(verdict.contains(": OK"), "openssl verify: {verdict}");
    let chain = cert(&web, &mcp_name).unwrap_or_else(|e| panic!("tailscale cert {mcp_name}: {e}"));
    let verdict = verify(topo.host(0), &root, &chain, &mcp_name);
    assert!(verdict.contains(": OK"), "openssl verify: {verdict}");
    // Against another root, the same chain fails: the check means something.
    let verdict = verify(topo.host(0), pebble.tls_ca(), &chain, &mcp_name);
    assert!(!verdict.contains(": OK"), "{verdict}");
    // The operator's view: names proved and when; nothing for the laptop.
    let list = server.cli_ok(&["nodes", "list"]).stdout;
    let row = |host: &str| {
        list.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(host))
            .unwrap_or_else(|| panic!("no row for {host}: {list}"))
            .to_string()
    };
    let web_row = row("web");
    assert!(
        web_row.contains(&format!("{web_name} (challenge ")),
        "{list}"
    );
    assert!(
        web_row.contains(&format!("{mcp_name} (challenge ")),
        "{list}"
    );
    assert!(!row("laptop").contains("(challenge "), "{list}");
    assert!(
        metric(
            &topo,
            &server,
            "clawscale_acme_challenges_total{result=\"accepted\"}"
        ) >= 2.0
    );
    assert!(metric(&topo, &server, "clawscale_acme_challenges_served_total") >= 2.0);

    // `tailscale serve --https=443` in front of the MCP server; the node's
    // name and the service name (same host) both get a valid certificate.
    let _mcp = McpServer::start(topo.host(0), MCP_PORT);
    let serve = web.cli(
        &[
            "serve",
            "--bg",
            "--https=443",
            &format!("http://127.0.0.1:{MCP_PORT}"),
        ],
        Duration::from_secs(30),
    );
    assert!(serve.success(), "tailscale serve: {}", serve.combined());
    let reply = wait_for("MCP initialize over HTTPS", Duration::from_secs(60), || {
        mcp_initialize(&laptop, &root, &format!("https://{web_name}/mcp"))
    });
    assert!(
        reply["result"]["serverInfo"]["name"].is_string(),
        "initialize result: {reply}"
    );
    assert!(reply["result"]["protocolVersion"].is_string(), "{reply}");

    // The service name on the same listener: `tailscale serve` only keys
    // its own name, so add `mcp.<base_domain>:443` to the serve config.
    let status = web.cli(&["serve", "status", "--json"], Duration::from_secs(10));
    let mut config: Value = serde_json::from_str(&status.stdout)
        .unwrap_or_else(|e| panic!("serve status --json: {e}: {}", status.combined()));
    let handlers = config["Web"][format!("{web_name}:443")].clone();
    assert!(handlers.is_object(), "serve config: {config}");
    config["Web"][format!("{mcp_name}:443")] = handlers;
    let set = web.cli_with_stdin(
        &["serve", "set-raw"],
        &config.to_string(),
        Duration::from_secs(30),
    );
    assert!(set.success(), "serve set-raw: {}", set.combined());
    let reply = wait_for(
        "MCP initialize over HTTPS at the service name",
        Duration::from_secs(60),
        || mcp_initialize(&laptop, &root, &format!("https://{mcp_name}/mcp")),
    );
    assert!(
        reply["result"]["serverInfo"]["name"].is_string(),
        "initialize result: {reply}"
    );
}
