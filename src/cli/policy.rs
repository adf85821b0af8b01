//! `clawscale policy …`: offline tools for a policy repository's CI
//! (`check`, `explain`, `compile`, which never contact a server) and, like
//! Headscale's, `get`/`set` against a running server in database mode.
//!
//! A topology file is the format of the conformance cases' `topology`:
//! `{"users": [{"id", "name", "email"}], "nodes": {NAME: {"hostname",
//! "tags", "ipv4", "ipv6", "user", "routable_ips", "approved_routes"}}}`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::{Value, json};

use super::topology::NamedTopology;
use super::{Ctx, Error, Result};
use crate::api::v1::model::{PolicyRequest, PolicyResponse};
use crate::policy::{Explanation, Policy};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Parse, validate and run the policy's `tests` and `sshTests`
    /// (offline). Exit status 0 if the policy would be accepted, 1 if not.
    Check {
        /// The policy file (HuJSON).
        #[arg(value_name = "FILE", required_unless_present = "file")]
        path: Option<PathBuf>,
        /// Same as FILE (Headscale's spelling).
        #[arg(short, long, value_name = "FILE", conflicts_with = "path")]
        file: Option<PathBuf>,
        /// Topology to run the tests against (default: one stand-in device
        /// for every user login and tag the policy names).
        #[arg(long, value_name = "FILE")]
        topology: Option<PathBuf>,
        /// Refuse every clawscale extension (`deny` rules, `services`,
        /// `svc:` selectors): accept only what Tailscale's hosted control
        /// plane accepts too.
        #[arg(long)]
        strict: bool,
    },
    /// Which rule lets SRC reach DST:PORT, or why nothing does (offline).
    Explain {
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,
        #[arg(long, value_name = "FILE")]
        topology: PathBuf,
        /// Source node name.
        #[arg(long)]
        src: String,
        /// Destination `NODE:PORT`.
        #[arg(long)]
        dst: String,
        /// IP protocol name or number (default: TCP/UDP/ICMP, as Tailscale).
        #[arg(long)]
        proto: Option<String>,
    },
    /// Compile offline and print, per node, what its map would carry.
    /// Exit status 2 (and `{"error": …}` on stdout) if rejected.
    Compile {
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,
        #[arg(long, value_name = "FILE")]
        topology: PathBuf,
    },
    /// Print the policy a running server enforces.
    Get,
    /// Replace the policy of a running server (policy.mode: database).
    Set {
        #[arg(short, long, value_name = "FILE")]
        file: PathBuf,
    },
}

impl PolicyCommand {
    /// Whether the command works without a server.
    pub fn is_offline(&self) -> bool {
        !matches!(self, PolicyCommand::Get | PolicyCommand::Set { .. })
    }
}

/// Exit status for a policy rejected by `compile` (1 is any other error).
pub const REJECTED: u8 = 2;

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))
}

fn load_topology(path: Option<&Path>) -> Result<NamedTopology> {
    let Some(path) = path else {
        return Ok(NamedTopology::default());
    };
    NamedTopology::from_json(&read(path)?)
        .map_err(|e| Error::Usage(format!("topology {}: {e}", path.display())))
}

/// Offline commands; `Ok(Some(code))` asks for a specific exit status.
pub fn run_offline(out: &mut dyn std::io::Write, cmd: PolicyCommand) -> Result<Option<u8>> {
    match cmd {
        PolicyCommand::Check {
            path,
            file,
            topology,
            strict,
        } => {
            let path = path.or(file).unwrap_or_default();
            let text = read(&path)?;
            let topo = match &topology {
                Some(t) => load_topology(Some(t))?,
                None => NamedTopology::stand_ins(&text),
            };
            let parse = if strict {
                Policy::parse_strict
            } else {
                Policy::parse
            };
            let policy =
                parse(&text).map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
            policy
                .check(&topo.topology)
                .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
            writeln!(out, "{}: policy is valid", path.display())?;
            Ok(None)
        }
        PolicyCommand::Explain {
            policy,
            topology,
            src,
            dst,
            proto,
        } => {
            let text = read(&policy)?;
            let policy = Policy::parse(&text)
                .map_err(|e| Error::Usage(format!("{}: {e}", policy.display())))?;
            let topo = load_topology(Some(&topology))?;
            let (dst_name, port) = dst
                .rsplit_once(':')
                .and_then(|(n, p)| Some((n, p.parse::<u16>().ok()?)))
                .ok_or_else(|| Error::Usage(format!("--dst {dst:?}: expected NODE:PORT")))?;
            let src_id = topo.id_of(&src)?;
            let dst_id = topo.id_of(dst_name)?;
            let proto = proto.as_deref().map(parse_proto).transpose()?;
            let compiled = policy.compile(&topo.topology);
            let e: Explanation = compiled.explain(src_id, dst_id, port, proto);
            writeln!(out, "{e}")?;
            Ok(None)
        }
        PolicyCommand::Compile { policy, topology } => {
            let text = read(&policy)?;
            let topo = load_topology(Some(&topology))?;
            let accepted = Policy::parse(&text).and_then(|p| {
                p.check(&topo.topology)?;
                Ok(p)
            });
            let p = match accepted {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("Error: {}: {e}", policy.display());
                    let v = json!({ "error": e.to_string() });
                    writeln!(
                        out,
                        "{}",
                        serde_json::to_string_pretty(&v).unwrap_or_default()
                    )?;
                    return Ok(Some(REJECTED));
                }
            };
            let v = compile_json(&p, &topo);
            let text =
                serde_json::to_string_pretty(&v).map_err(|e| Error::Encode(e.to_string()))?;
            writeln!(out, "{text}")?;
            Ok(None)
        }
        PolicyCommand::Get | PolicyCommand::Set { .. } => Ok(None),
    }
}

fn parse_proto(s: &str) -> Result<u8> {
    let named = match s.to_ascii_lowercase().as_str() {
        "icmp" => Some(1),
        "igmp" => Some(2),
        "tcp" => Some(6),
        "udp" => Some(17),
        "gre" => Some(47),
        "esp" => Some(50),
        "ah" => Some(51),
        "ipv6-icmp" | "icmpv6" => Some(58),
        "sctp" => Some(132),
        _ => None,
    };
    named
        .or_else(|| s.parse().ok())
        .ok_or_else(|| Error::Usage(format!("--proto {s:?}: unknown protocol")))
}

/// `compile`'s output: per node, what its map would carry.
pub fn compile_json(policy: &Policy, topo: &NamedTopology) -> Value {
    let compiled = policy.compile(&topo.topology);
    let mut nodes = BTreeMap::new();
    for node in &topo.topology.nodes {
        let Some(out) = compiled.node(node.id) else {
            continue;
        };
        let peers: BTreeMap<&str, Value> = compiled
            .peer_outputs(node.id)
            .unwrap_or_default()
            .iter()
            .map(|(id, p)| {
                let v = json!({
                    "AllowedIPs": p.allowed_ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "PrimaryRoutes": p.primary_routes.iter().map(ToString::to_string).collect::<Vec<_>>(),
                });
                (topo.name_of(*id), v)
            })
            .collect();
        let mut whois = BTreeMap::new();
        for peer_id in out.peers.ids() {
            let Some(peer) = topo.node(peer_id) else {
                continue;
            };
            let addrs = [peer.ipv4.map(IpAddr::from), peer.ipv6.map(IpAddr::from)];
            for ip in addrs.into_iter().flatten() {
                whois.insert(
                    ip.to_string(),
                    json!({
                        "node": topo.name_of(peer.id),
                        "login": topo.login_of(peer),
                        "tags": peer.tags,
                        "CapMap": compiled.whois_caps(ip, node.id),
                    }),
                );
            }
        }
        let ssh_rules = out
            .ssh_policy
            .as_ref()
            .map(|s| serde_json::to_value(&s.rules).unwrap_or(Value::Null))
            .unwrap_or_else(|| json!([]));
        nodes.insert(
            topo.name_of(node.id),
            json!({
                "packet_filter_rules": *out.packet_filter,
                "peers": peers,
                "ssh_rules": ssh_rules,
                "self": { "CapMap": out.cap_map },
                "whois": whois,
            }),
        );
    }
    json!({ "nodes": nodes })
}

/// Server commands (`get`, `set`).
pub(super) async fn run(ctx: &mut Ctx<'_>, cmd: PolicyCommand) -> Result<()> {
    match cmd {
        PolicyCommand::Get => {
            let r: PolicyResponse = ctx.client.get("/api/v1/policy").await?;
            let value = json!({ "policy": r.policy });
            let text = r.policy.clone();
            ctx.emit(&value, move || text)
        }
        PolicyCommand::Set { file } => {
            let policy = read(&file)?;
            let req = PolicyRequest {
                policy: Some(policy),
            };
            let _: PolicyResponse = ctx.client.put("/api/v1/policy", &req).await?;
            ctx.done("Policy updated.")
        }
        _ => Ok(()),
    }
}
