//! SSH rules for a destination node (`tailcfg.SSHPolicy`), mirroring what
//! Tailscale's control plane sends:
//! - principals are the source nodes' addresses (one `nodeIP` each; a node
//!   `autogroup:tagged` selects is listed once per tag, as Tailscale does);
//! - `users` become `sshUsers`: `root` maps to itself only when listed
//!   (otherwise `"root": ""`, i.e. "this rule does not grant root"),
//!   `autogroup:nonroot` is `"*": "="`, other names map to themselves;
//! - `localpart:*@domain` splits the rule per source user (ascending user
//!   id): the common rule, then `{local: local}` for users of that domain,
//!   then one common rule for tagged sources. A source node that is not a
//!   destination still gets these rules for its own user (Tailscale does);
//! - `check` rules hold and delegate to the control server and are sorted
//!   before `accept` rules (stable), since the first matching rule wins.
//!
//! Depends on the parsed doc, the topology and alias resolution. The
//! per-entry work that does not depend on the destination (sources,
//! principals, user maps) is done once per (doc, topology) in an
//! [`SshIndex`], built once per compiled policy (`output`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::policy::model::{Alias, Doc, SshRule, Topology, localpart_domain};
use crate::policy::resolve::alias::{Resolver, node_ips};
use crate::tailcfg::{SshAction, SshPolicy, SshPrincipal, SshRule as WireRule};

/// Base URL `check` rules delegate to, as Tailscale's control plane sends
/// it: tailscaled fetches an `https://` URL over its Noise channel to its
/// login server, whatever the host. An `http://` one it fetches in the
/// clear from that address, which after a reconnect is not the Noise
/// channel at all (measured with 1.96.4 behind a balancer: 404s from the
/// server's public port).
pub const CHECK_URL_BASE: &str = "https://unused";

/// Path (with tailscaled's `$VAR` placeholders) a `check` rule delegates to.
pub const CHECK_URL_PATH: &str =
    "/machine/ssh/action/$SRC_NODE_ID/to/$DST_NODE_ID?local_user=$LOCAL_USER";

/// How long a passed check lets the same person in again without asking
/// when a `check` rule names no `checkPeriod` (Tailscale's default).
pub const DEFAULT_CHECK_PERIOD: Duration = Duration::from_secs(12 * 3600);

/// The full placeholder URL emitted by the compiler.
pub const CHECK_URL: &str =
    "https://unused/machine/ssh/action/$SRC_NODE_ID/to/$DST_NODE_ID?local_user=$LOCAL_USER";

fn accept_action() -> SshAction {
    SshAction {
        accept: true,
        allow_agent_forwarding: true,
        allow_local_port_forwarding: true,
        allow_remote_port_forwarding: true,
        ..Default::default()
    }
}

fn check_action() -> SshAction {
    SshAction {
        hold_and_delegate: CHECK_URL.into(),
        ..Default::default()
    }
}

/// One principal per address, IPv4 before IPv6, each sorted, no repeats.
fn principals(addrs: impl IntoIterator<Item = IpAddr>) -> Vec<SshPrincipal> {
    repeated(addrs, &[])
}

/// As [`principals`], with `extra` listed once more each: Tailscale lists
/// a node that `autogroup:tagged` selects once per tag it carries.
fn repeated(addrs: impl IntoIterator<Item = IpAddr>, extra: &[IpAddr]) -> Vec<SshPrincipal> {
    let mut ips: Vec<IpAddr> = addrs.into_iter().collect();
    ips.sort();
    ips.dedup();
    ips.extend(extra);
    ips.sort();
    ips.into_iter()
        .map(|ip| SshPrincipal {
            node_ip: ip.to_string(),
            ..Default::default()
        })
        .collect()
}

/// The `sshUsers` every rule of an ssh entry carries (localparts aside).
fn base_users(users: &[String]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for u in users {
        if u == "autogroup:nonroot" {
            m.insert("*".to_string(), "=".to_string());
        } else if localpart_domain(u).is_none() {
            m.insert(u.clone(), u.clone());
        }
    }
    m.entry("root".to_string()).or_insert_with(String::new);
    m
}

/// One `ssh` entry resolved against the topology: everything but the
/// destination-dependent choice of which rules to emit.
struct Entry {
    /// Per node: selected by `src` / by a non-`autogroup:self` `dst`.
    is_src: Vec<bool>,
    is_dst: Vec<bool>,
    has_self: bool,
    has_other: bool,
    has_localpart: bool,
    base: BTreeMap<String, String>,
    /// User id → local part, for users of a `localpart:*@` domain.
    localparts: BTreeMap<u64, String>,
    action: SshAction,
    /// For a `check` rule, how long a passed check counts (zero:
    /// `"always"`, ask every time).
    check_period: Option<Duration>,
    accept_env: Vec<String>,
    /// User id → principals of that user's (untagged) source nodes.
    by_user: BTreeMap<u64, Vec<SshPrincipal>>,
    /// Principals of the tagged source nodes.
    tagged: Vec<SshPrincipal>,
    /// Principals of every source node.
    all: Vec<SshPrincipal>,
}

/// The `ssh` section resolved against one topology.
pub(crate) struct SshIndex {
    entries: Vec<Entry>,
}

impl SshIndex {
    pub(crate) fn build(doc: &Doc, topo: &Topology) -> SshIndex {
        let r = Resolver { doc, topo };
        let nodes = &topo.nodes;
        let entries = doc
            .ssh
            .iter()
            .map(|rule| {
                let is_src: Vec<bool> = (0..nodes.len())
                    .map(|i| rule.src.iter().any(|a| r.node_matches(a, i)))
                    .collect();
                let is_dst: Vec<bool> = (0..nodes.len())
                    .map(|i| {
                        rule.dst
                            .iter()
                            .any(|a| *a != Alias::SelfDevices && r.node_matches(a, i))
                    })
                    .collect();
                let mut user_addrs: BTreeMap<u64, Vec<IpAddr>> = BTreeMap::new();
                let mut tagged = Vec::new();
                let mut extra = Vec::new();
                let per_tag = rule.src.contains(&Alias::Tagged);
                for (n, _) in nodes.iter().zip(&is_src).filter(|(_, s)| **s) {
                    if !n.tags.is_empty() {
                        tagged.extend(node_ips(n));
                        if per_tag {
                            for _ in 1..n.tags.len() {
                                extra.extend(node_ips(n));
                            }
                        }
                    } else if let Some(u) = n.user {
                        user_addrs.entry(u).or_default().extend(node_ips(n));
                    }
                }
                let all = repeated(
                    user_addrs.values().flatten().chain(&tagged).copied(),
                    &extra,
                );
                let has_localpart = rule.users.iter().any(|u| localpart_domain(u).is_some());
                Entry {
                    has_self: rule.dst.contains(&Alias::SelfDevices),
                    has_other: rule.dst.iter().any(|a| *a != Alias::SelfDevices),
                    has_localpart,
                    base: base_users(&rule.users),
                    localparts: if has_localpart {
                        localparts(topo, &rule.users)
                    } else {
                        BTreeMap::new()
                    },
                    action: if rule.check {
                        check_action()
                    } else {
                        accept_action()
                    },
                    check_period: check_period(rule),
                    accept_env: rule.accept_env.clone(),
                    by_user: user_addrs
                        .into_iter()
                        .map(|(u, a)| (u, principals(a)))
                        .collect(),
                    tagged: repeated(tagged, &extra),
                    all,
                    is_src,
                    is_dst,
                }
            })
            .collect();
        SshIndex { entries }
    }

    /// The SSH policy of node `d`, an index into the nodes of the
    /// topology this index was built from.
    pub(crate) fn policy(&self, topo: &Topology, d: usize) -> SshPolicy {
        let mut rules = Vec::new();
        for e in &self.entries {
            e.emit(topo, d, &mut rules);
        }
        // Most restrictive first: check rules ahead of accept rules, each
        // group keeping policy order (the sort is stable).
        rules.sort_by_key(|r| r.action.hold_and_delegate.is_empty());
        SshPolicy { rules }
    }

    /// The period of the first `check` rule that node `d` got for a source
    /// at one of `src` logging in as local user `local`, or `None` when no
    /// such rule exists (the SSH check endpoint's authorisation).
    ///
    /// tailscaled maps the requested ssh user through a rule's `sshUsers`
    /// (`*` as the fallback, `=` for "the same name") and tells control
    /// only the resulting local user, so a rule matches when some entry can
    /// yield `local`.
    pub(crate) fn check_period(
        &self,
        topo: &Topology,
        d: usize,
        src: &[IpAddr],
        local: &str,
    ) -> Option<Duration> {
        let mut rules = Vec::new();
        for e in &self.entries {
            let Some(period) = e.check_period else {
                continue;
            };
            rules.clear();
            e.emit(topo, d, &mut rules);
            let hit = rules.iter().any(|r| {
                r.principals
                    .iter()
                    .any(|p| p.node_ip.parse().is_ok_and(|ip| src.contains(&ip)))
                    && yields(&r.ssh_users, local)
            });
            if hit {
                return Some(period);
            }
        }
        None
    }
}

/// Whether some ssh user maps to local user `local` through `users`: by an
/// entry naming `local` (`"root": ""` names nobody), or by `=` for an ssh
/// user of that very name (through `*` only when `local` has no entry of
/// its own, tailscaled's lookup order).
fn yields(users: &BTreeMap<String, String>, local: &str) -> bool {
    !local.is_empty()
        && users.iter().any(|(k, v)| match v.as_str() {
            "=" => k == local || (k == "*" && !users.contains_key(local)),
            v => v == local,
        })
}

/// A `check` rule's `checkPeriod`, [`DEFAULT_CHECK_PERIOD`] when it names
/// none.
fn check_period(rule: &SshRule) -> Option<Duration> {
    rule.check
        .then(|| rule.check_period.unwrap_or(DEFAULT_CHECK_PERIOD))
}

/// User id → local part for every user whose login is in a domain named
/// by one of `users`' `localpart:*@<domain>` entries.
fn localparts(topo: &Topology, users: &[String]) -> BTreeMap<u64, String> {
    let mut m = BTreeMap::new();
    for dom in users.iter().filter_map(|u| localpart_domain(u)) {
        for u in topo.users.iter() {
            if let Some((local, d)) = u.login.rsplit_once('@')
                && d.eq_ignore_ascii_case(dom)
            {
                m.insert(u.id, local.to_string());
            }
        }
    }
    m
}

impl Entry {
    /// The common rule for `p`, then the localpart rule of user `uid`.
    fn push(&self, out: &mut Vec<WireRule>, p: &[SshPrincipal], uid: Option<u64>) {
        if p.is_empty() {
            return;
        }
        let rule = |users| WireRule {
            rule_expires: None,
            principals: p.to_vec(),
            ssh_users: users,
            action: self.action.clone(),
            accept_env: self.accept_env.clone(),
        };
        out.push(rule(self.base.clone()));
        if let Some(lp) = uid.and_then(|u| self.localparts.get(&u)) {
            out.push(rule(BTreeMap::from([(lp.clone(), lp.clone())])));
        }
    }

    /// Rules this entry contributes to destination node `d`.
    fn emit(&self, topo: &Topology, d: usize, out: &mut Vec<WireRule>) {
        let dn = &topo.nodes[d];
        let d_user = dn.user.filter(|_| dn.tags.is_empty());
        let own = || d_user.and_then(|u| self.by_user.get(&u));
        if self.has_self
            && let Some(p) = own()
        {
            self.push(out, p, d_user);
        }
        if self.is_dst[d] {
            if self.has_localpart {
                for (&uid, p) in &self.by_user {
                    self.push(out, p, Some(uid));
                }
                self.push(out, &self.tagged, None);
            } else {
                self.push(out, &self.all, None);
            }
        } else if self.has_localpart && self.has_other && self.is_src[d] {
            // A source that is not a destination gets its own rules.
            if !dn.tags.is_empty() {
                self.push(out, &principals(node_ips(dn)), None);
            } else if let Some(p) = own() {
                self.push(out, p, d_user);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::policy::{Policy, TopoNode, TopoUser, Topology};

    /// odin (example.com) owns bulbasaur (2 addresses), thor (example.org)
    /// ivysaur, freya (example.com) venusaur; beedrill is tag:server,
    /// kakuna tag:prod.
    pub(crate) fn topo() -> Topology {
        let user = |id: u64, name: &str, dom: &str| TopoUser {
            id,
            name: name.into(),
            login: format!("{name}@{dom}"),
            groups: vec![],
        };
        let node = |id: u64, name: &str, user: Option<u64>, tag: Option<&str>| TopoNode {
            id,
            name: name.into(),
            hostname: name.into(),
            user,
            tags: tag.map(|t| vec![t.to_string()]).unwrap_or_default(),
            ipv4: Some(std::net::Ipv4Addr::new(100, 64, 0, id as u8)),
            ipv6: (id == 1).then(|| "fd7a:115c:a1e0::1".parse().expect("static")),
            ..Default::default()
        };
        Topology::new(
            vec![
                user(1, "odin", "example.com"),
                user(2, "thor", "example.org"),
                user(3, "freya", "example.com"),
            ],
            vec![
                node(1, "bulbasaur", Some(1), None),
                node(2, "ivysaur", Some(2), None),
                node(3, "venusaur", Some(3), None),
                node(4, "beedrill", None, Some("tag:server")),
                node(5, "kakuna", None, Some("tag:prod")),
            ],
        )
    }

    /// The SSH rules node `id` gets for a policy whose `ssh` is `ssh`.
    fn rules(ssh: Value, id: u64) -> Vec<WireRule> {
        let src = json!({
            "tagOwners": {"tag:server": ["odin@example.com"], "tag:prod": ["odin@example.com"]},
            "ssh": ssh,
        });
        let p = Policy::parse(&src.to_string()).expect("policy parses");
        let out = p.compile(&topo()).node(id).expect("node exists");
        out.ssh_policy.expect("ssh policy present").rules
    }

    /// Rules as `[action, [principal IPs], sshUsers]` for compact asserts.
    fn brief(rules: &[WireRule]) -> Value {
        rules
            .iter()
            .map(|r| {
                let act = if r.action.accept { "accept" } else { "check" };
                let ips: Vec<&str> = r.principals.iter().map(|p| p.node_ip.as_str()).collect();
                json!([act, ips, r.ssh_users])
            })
            .collect()
    }

    const ODIN: [&str; 2] = ["100.64.0.1", "fd7a:115c:a1e0::1"];

    #[test]
    fn localpart_interleaves_per_source_user() {
        let ssh = json!([{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:server"],
            "users": ["localpart:*@example.com", "root"]}]);
        let root = json!({"root": "root"});
        assert_eq!(
            brief(&rules(ssh.clone(), 4)),
            json!([
                ["accept", ODIN, root],
                ["accept", ODIN, {"odin": "odin"}],
                ["accept", ["100.64.0.2"], root],
                ["accept", ["100.64.0.3"], root],
                ["accept", ["100.64.0.3"], {"freya": "freya"}],
            ])
        );
        // A source that is not a destination gets its own user's rules.
        assert_eq!(
            brief(&rules(ssh.clone(), 1)),
            json!([["accept", ODIN, root], ["accept", ODIN, {"odin": "odin"}]])
        );
        assert_eq!(
            brief(&rules(ssh.clone(), 2)),
            json!([["accept", ["100.64.0.2"], root]])
        );
        // Not a source, not a destination: nothing.
        assert_eq!(brief(&rules(ssh, 5)), json!([]));
    }

    #[test]
    fn localpart_only_still_emits_the_root_denying_rule() {
        // Tagged sources have no localpart: only `{"root": ""}` is left.
        let ssh = json!([{"action": "accept", "src": ["tag:prod"], "dst": ["tag:server"],
            "users": ["localpart:*@example.com"]}]);
        let want = json!([["accept", ["100.64.0.5"], {"root": ""}]]);
        assert_eq!(brief(&rules(ssh.clone(), 4)), want);
        assert_eq!(brief(&rules(ssh, 5)), want);
    }

    #[test]
    fn localpart_with_autogroup_self() {
        let ssh = json!([{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"],
            "users": ["localpart:*@example.com"]}]);
        assert_eq!(
            brief(&rules(ssh.clone(), 1)),
            json!([["accept", ODIN, {"root": ""}], ["accept", ODIN, {"odin": "odin"}]])
        );
        assert_eq!(
            brief(&rules(ssh.clone(), 2)),
            json!([["accept", ["100.64.0.2"], {"root": ""}]])
        );
        assert_eq!(brief(&rules(ssh, 4)), json!([]));
    }

    #[test]
    fn without_localpart_sources_share_one_rule() {
        let ssh = json!([{"action": "accept", "src": ["autogroup:member", "tag:prod"],
            "dst": ["tag:server"], "users": ["autogroup:nonroot", "ubuntu"]}]);
        assert_eq!(
            brief(&rules(ssh.clone(), 4)),
            json!([["accept", ["100.64.0.1", "100.64.0.2", "100.64.0.3", "100.64.0.5", "fd7a:115c:a1e0::1"],
                {"*": "=", "root": "", "ubuntu": "ubuntu"}]])
        );
        // No self-access without localpart.
        assert_eq!(brief(&rules(ssh, 1)), json!([]));
    }

    #[test]
    fn check_rules_come_first() {
        let ssh = json!([
            {"action": "accept", "src": ["thor@example.org"], "dst": ["tag:server"], "users": ["root"]},
            {"action": "check", "checkPeriod": "1h", "src": ["thor@example.org"], "dst": ["tag:server"], "users": ["root"]},
            {"action": "accept", "src": ["odin@example.com"], "dst": ["tag:server"], "users": ["root"]},
        ]);
        let root = json!({"root": "root"});
        assert_eq!(
            brief(&rules(ssh, 4)),
            json!([
                ["check", ["100.64.0.2"], root],
                ["accept", ["100.64.0.2"], root],
                ["accept", ODIN, root],
            ])
        );
    }

    #[test]
    fn users_are_trimmed_and_odd_localparts_are_literal() {
        let ssh = json!([{"action": "accept", "src": ["thor@example.org"], "dst": ["tag:server"],
            "users": [" root", "\tubuntu", "localpart:*@", "localpart:foo@example.com"]}]);
        assert_eq!(
            brief(&rules(ssh, 4)),
            json!([["accept", ["100.64.0.2"], {"root": "root", "ubuntu": "ubuntu",
                "localpart:*@": "localpart:*@", "localpart:foo@example.com": "localpart:foo@example.com"}]])
        );
    }

    #[test]
    fn check_wire_shape_and_url() {
        let ssh = json!([{"action": "check", "src": ["thor@example.org"], "dst": ["tag:server"],
            "users": ["root"], "acceptEnv": ["GIT_*"]}]);
        let r = rules(ssh, 4);
        let want = json!([{"principals": [{"nodeIP": "100.64.0.2"}], "sshUsers": {"root": "root"},
            "action": {"holdAndDelegate": CHECK_URL}, "acceptEnv": ["GIT_*"]}]);
        assert_eq!(serde_json::to_value(&r).expect("serialises"), want);
        assert_eq!(format!("{CHECK_URL_BASE}{CHECK_URL_PATH}"), CHECK_URL);
    }

    #[test]
    fn check_period_comes_from_the_first_check_rule_covering_the_login() {
        let src = json!({
            "tagOwners": {"tag:server": ["odin@example.com"]},
            "ssh": [
                {"action": "accept", "src": ["odin@example.com"], "dst": ["tag:server"], "users": ["root"]},
                {"action": "check", "src": ["thor@example.org"], "dst": ["tag:server"], "users": ["root"],
                    "checkPeriod": "1h"},
                {"action": "check", "src": ["thor@example.org"], "dst": ["tag:server"],
                    "users": ["autogroup:nonroot"]},
                {"action": "check", "src": ["freya@example.com"], "dst": ["tag:server"], "users": ["root"],
                    "checkPeriod": "always"},
            ],
        });
        let c = Policy::parse(&src.to_string())
            .expect("policy parses")
            .compile(&topo());
        let hour = Some(std::time::Duration::from_secs(3600));
        assert_eq!(c.ssh_check_period(2, 4, "root"), hour);
        assert_eq!(
            c.ssh_check_period(2, 4, "ubuntu"),
            Some(DEFAULT_CHECK_PERIOD)
        );
        assert_eq!(
            c.ssh_check_period(3, 4, "root"),
            Some(std::time::Duration::ZERO)
        );
        // An accept rule is no check; freya may not be ubuntu; kakuna is
        // no destination; node 9 does not exist.
        assert_eq!(c.ssh_check_period(1, 4, "root"), None);
        assert_eq!(c.ssh_check_period(3, 4, "ubuntu"), None);
        assert_eq!(c.ssh_check_period(2, 5, "root"), None);
        assert_eq!(c.ssh_check_period(9, 4, "root"), None);
        assert_eq!(c.ssh_check_period(2, 4, ""), None);
        // `"root": ""` (the nonroot rule) does not let `*` give root.
        let users = BTreeMap::from([("*".into(), "=".into()), ("root".into(), String::new())]);
        assert!(yields(&users, "ubuntu") && !yields(&users, "root"));
    }

    #[test]
    fn memo_follows_the_topology() {
        // Same doc, two topologies compiled back to back on one thread:
        // the second must not reuse the first one's sources.
        let src = json!({
            "tagOwners": {"tag:server": ["odin@example.com"]},
            "ssh": [{"action": "accept", "src": ["thor@example.org"], "dst": ["tag:server"],
                "users": ["root"]}],
        });
        let p = Policy::parse(&src.to_string()).expect("policy parses");
        let ssh_of = |t: &Topology| {
            let out = p.compile(t).node(4).expect("node exists");
            brief(&out.ssh_policy.expect("present").rules)
        };
        let mut t = topo();
        assert_eq!(
            ssh_of(&t),
            json!([["accept", ["100.64.0.2"], {"root": "root"}]])
        );
        std::sync::Arc::make_mut(&mut t.nodes[1]).ipv4 =
            Some(std::net::Ipv4Addr::new(100, 64, 9, 9));
        assert_eq!(
            ssh_of(&t),
            json!([["accept", ["100.64.9.9"], {"root": "root"}]])
        );
    }
}
