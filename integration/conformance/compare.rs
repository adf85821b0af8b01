//! Semantic comparison of one case. Normalisations (documented here, applied
//! to both sides):
//! - packet filters are flattened to a set of (SrcIPs as an address set, one
//!   DstPorts entry with its IP as an address set or `*`, port range, sorted
//!   IPProto) tuples, plus CapGrant (Dsts as set, CapMap); so merging of
//!   rules and their order do not matter, as for a packet filter;
//! - peers: same peer names; AllowedIPs and PrimaryRoutes compared as sets;
//! - self CapMap: only policy-derived keys; the hosted plane's defaults
//!   (`https://tailscale.com/cap/…`, `probe-udp-lifetime`, `ssh-behavior-v1`,
//!   `ssh-env-vars`, `store-appc-routes`, `tailnet-display-name`,
//!   `default-auto-update`) are dropped; `null` equals `[]`;
//! - SSH: the rule list is compared in order (first match wins in SSH);
//! - whois: per listed address, through `whois::answer::whois` (the
//!   endpoint's builder): the node's MagicDNS label, `LoginName`, tags (as a
//!   set; `null` equals `[]`) and CapMap (`null` equals `{}`);
//! - CapMap values (CapGrant, whois): `null` equals `[]`.

use std::collections::{BTreeMap, BTreeSet};

use clawscale::policy::ipset::IpSet;
use clawscale::policy::{Policy, Topology};
use clawscale::state::World;
use clawscale::types::NodeId;
use clawscale::whois::answer::{self, Query};
use serde_json::{Value, json};

use crate::case::Case;

const DEFAULT_CAPS: &[&str] = &[
    "probe-udp-lifetime",
    "ssh-behavior-v1",
    "ssh-env-vars",
    "store-appc-routes",
    "tailnet-display-name",
    "default-auto-update",
];

/// Whois entries compared and passed, across cases.
#[derive(Default, Debug)]
pub struct Tally {
    pub pass: usize,
    pub total: usize,
}

pub fn run(c: &Case, tally: &mut Tally) -> Result<(), String> {
    let (topo, ids) = c.topology();
    // The hosted plane's rules, so no clawscale extension (`--strict`).
    let verdict = Policy::parse_strict(&c.policy_text()).and_then(|p| p.check(&topo).map(|()| p));
    let policy = match (verdict, c.accepted) {
        (Err(_), false) => return Ok(()),
        (Ok(_), false) => {
            return Err(format!(
                "accepted, but Tailscale rejects: {:?}",
                c.error_message.clone().unwrap_or_default()
            ));
        }
        (Err(e), true) => return Err(format!("rejected: {e}")),
        (Ok(p), true) => p,
    };
    let compiled = policy.compile(&topo);
    let names: BTreeMap<u64, &String> = ids.iter().map(|(k, v)| (*v, k)).collect();
    let mut world: Option<World> = None;
    let mut first_whois_err: Option<String> = None;
    for (name, exp) in &c.expect {
        let Some(&id) = ids.get(name) else { continue };
        let out = compiled.node(id).ok_or("node missing from output")?;
        // Packet filter.
        let got = flatten(&serde_json::to_value(&*out.packet_filter).unwrap_or_default());
        let want = flatten(&Value::Array(
            exp.packet_filter_rules.clone().unwrap_or_default(),
        ));
        if got != want {
            let extra: Vec<_> = got.difference(&want).take(3).collect();
            let missing: Vec<_> = want.difference(&got).take(3).collect();
            return Err(format!(
                "{name}: filter differs; extra {extra:?} missing {missing:?}"
            ));
        }
        // Peers.
        if let Some(peers) = &exp.peers {
            let got: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = compiled
                .peer_outputs(id)
                .unwrap_or_default()
                .iter()
                .map(|(pid, p)| {
                    let n = names.get(pid).map(|s| s.to_string()).unwrap_or_default();
                    (
                        n,
                        (
                            nets(p.allowed_ips.iter().map(|x| x.to_string())),
                            nets(p.primary_routes.iter().map(|x| x.to_string())),
                        ),
                    )
                })
                .collect();
            let want: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = peers
                .iter()
                .map(|(n, v)| {
                    (
                        n.clone(),
                        (
                            nets(strs(&v["AllowedIPs"])),
                            nets(strs(&v["PrimaryRoutes"])),
                        ),
                    )
                })
                .collect();
            if got != want {
                let gk: BTreeSet<_> = got.keys().collect();
                let wk: BTreeSet<_> = want.keys().collect();
                if gk != wk {
                    return Err(format!(
                        "{name}: peers differ; extra {:?} missing {:?}",
                        gk.difference(&wk).collect::<Vec<_>>(),
                        wk.difference(&gk).collect::<Vec<_>>()
                    ));
                }
                for (k, g) in &got {
                    if want.get(k) != Some(g) {
                        return Err(format!(
                            "{name}: peer {k} differs: got {g:?} want {:?}",
                            want.get(k)
                        ));
                    }
                }
            }
        }
        // Self CapMap.
        if let Some(s) = &exp.self_ {
            let want = policy_caps(&s["CapMap"]);
            let got = policy_caps(&serde_json::to_value(&out.cap_map).unwrap_or_default());
            if got != want {
                return Err(format!("{name}: CapMap got {got:?} want {want:?}"));
            }
        }
        // SSH.
        let want_ssh = exp
            .ssh_policy
            .as_ref()
            .map(|p| p["rules"].clone())
            .or_else(|| exp.ssh_rules.clone().map(Value::Array));
        if let Some(want) = want_ssh {
            let got = out
                .ssh_policy
                .as_ref()
                .map(|p| serde_json::to_value(&p.rules).unwrap_or_default());
            let want = norm_ssh(&want);
            let got = norm_ssh(&got.unwrap_or(json!([])));
            if got != want {
                return Err(format!("{name}: ssh differs: got {got} want {want}"));
            }
        }
        // Whois: node, login, tags and CapMap per listed address, through
        // the whois endpoint's own answer builder.
        if let Some(w) = &exp.whois {
            let world = world.get_or_insert_with(|| {
                crate::world::build(c, &ids, policy.clone(), compiled.clone())
            });
            for (ip, v) in w {
                let Ok(addr) = ip.parse() else { continue };
                tally.total += 1;
                match whois_entry(world, addr, id, v) {
                    Ok(()) => tally.pass += 1,
                    Err(why) => {
                        first_whois_err.get_or_insert(format!("{name}: whois {ip} {why}"));
                    }
                }
            }
        }
    }
    if let Some(e) = first_whois_err {
        return Err(e);
    }
    let _ = Topology::default;
    Ok(())
}

/// One hosted-plane whois entry (`{"node", "login", "tags", "CapMap"}`)
/// against our answer for `addr` with destination node `dst`.
fn whois_entry(world: &World, addr: std::net::IpAddr, dst: u64, v: &Value) -> Result<(), String> {
    let got = answer::whois(
        world,
        Query::Ip(addr),
        Some(NodeId(dst as i64)),
        crate::world::epoch(),
    )
    .ok_or("no answer (404)")?;
    if let Some(n) = v["node"].as_str()
        && got.short_name() != n
    {
        return Err(format!("node got {} want {n}", got.short_name()));
    }
    if let Some(l) = v["login"].as_str()
        && got.user_profile.login_name != l
    {
        return Err(format!(
            "login got {} want {l}",
            got.user_profile.login_name
        ));
    }
    let want_tags: BTreeSet<String> = strs(&v["tags"]).into_iter().collect();
    let got_tags: BTreeSet<String> = got.node.node.tags.iter().cloned().collect();
    if got_tags != want_tags {
        return Err(format!("tags got {got_tags:?} want {want_tags:?}"));
    }
    let got_caps = null_empty(&serde_json::to_value(&got.cap_map).unwrap_or_default());
    let want_caps = match &v["CapMap"] {
        Value::Null => json!({}),
        x => null_empty(x),
    };
    if got_caps != want_caps {
        return Err(format!("CapMap got {got_caps} want {want_caps}"));
    }
    Ok(())
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn nets(it: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    it.into_iter().map(|s| addrset(&s)).collect()
}

fn addrset(s: &str) -> String {
    if s == "*" {
        return "*".into();
    }
    IpSet::parse_element(s)
        .map(|x| x.to_strings().join(","))
        .unwrap_or_else(|| s.to_string())
}

fn setof(v: &Value) -> String {
    let mut all = IpSet::new();
    let mut star = false;
    for s in strs(v) {
        if s == "*" {
            star = true;
        } else if let Some(x) = IpSet::parse_element(&s) {
            all.extend(&x);
        }
    }
    let mut out = all.to_strings().join(",");
    if star {
        out.push_str(",*");
    }
    out
}

fn flatten(rules: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for r in rules.as_array().into_iter().flatten() {
        let src = setof(&r["SrcIPs"]);
        let mut protos: Vec<i64> = r["IPProto"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default();
        protos.sort();
        for d in r["DstPorts"].as_array().into_iter().flatten() {
            let ip = addrset(d["IP"].as_str().unwrap_or(""));
            out.insert(format!(
                "src={src} dst={ip}:{}-{} proto={protos:?}",
                d["Ports"]["First"], d["Ports"]["Last"]
            ));
        }
        for g in r["CapGrant"].as_array().into_iter().flatten() {
            out.insert(format!(
                "src={src} capgrant dsts={} caps={}",
                setof(&g["Dsts"]),
                null_empty(&g["CapMap"])
            ));
        }
    }
    out
}

/// A CapMap with `[]` values written as `null` (Go marshals an empty
/// `[]RawMessage` either way; tailscaled reads both the same).
fn null_empty(v: &Value) -> Value {
    let mut v = v.clone();
    for (_, x) in v.as_object_mut().into_iter().flatten() {
        if x.as_array().is_some_and(Vec::is_empty) {
            *x = Value::Null;
        }
    }
    v
}

fn policy_caps(v: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (k, val) in v.as_object().into_iter().flatten() {
        if k.starts_with("https://tailscale.com/cap/") || DEFAULT_CAPS.contains(&k.as_str()) {
            continue;
        }
        let val = match val {
            Value::Array(a) if a.is_empty() => Value::Null,
            x => x.clone(),
        };
        out.insert(k.clone(), val);
    }
    out
}

fn norm_ssh(v: &Value) -> Value {
    let mut v = v.clone();
    for r in v.as_array_mut().into_iter().flatten() {
        if let Some(p) = r.get_mut("principals").and_then(Value::as_array_mut) {
            p.sort_by_key(|x| x.to_string());
        }
        if let Some(o) = r.as_object_mut()
            && o.get("acceptEnv")
                .is_some_and(|x| x.as_array().is_some_and(Vec::is_empty) || x.is_null())
        {
            o.remove("acceptEnv");
        }
    }
    v
}
