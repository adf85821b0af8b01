//! Policy compile benchmark (harness = false; `cargo bench --bench policy`).
//!
//! For N nodes × R rules of a realistic mix (users, groups, tags,
//! autogroups incl. self/member/internet, port lists and ranges, protocols,
//! grants with `ip` and `app` capabilities, subnet routes with HA pairs,
//! exit nodes, autoApprovers, nodeAttrs) it prints:
//! - `compile`: `Policy::compile` (shared state; node outputs are lazy);
//! - `+all outputs`: compile plus `materialize()` (every node's output:
//!   what a full netmap push costs);
//! - `join update`: `Compiled::update` for one new user device (outputs
//!   of all nodes materialised beforehand, as in a running server);
//! - `join +outputs`: update plus `node_arc()` for every changed node;
//! - `changed`: how many nodes the join affects;
//! - `step rebuilt` / `step shared`: the server's per-batch policy step
//!   for that join, making the next topology and then `Compiled::update`:
//!   with every node built anew (as the state writer did before) and with
//!   the compiled topology's nodes shared and only the new one added
//!   (`Topology::with_nodes`, what it does now).
//!
//! Each figure is the best of `RUNS` runs (the build machine is shared).

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use clawscale::policy::{Policy, TopoNode, TopoUser, Topology};

const USERS: usize = 200;
const TAGS: usize = 30;
const GROUPS: usize = 20;

fn user_node(i: usize, id: u64) -> TopoNode {
    TopoNode {
        id,
        name: format!("n{i}"),
        hostname: format!("n{i}"),
        user: Some((i % USERS) as u64 + 1),
        ipv4: Some(Ipv4Addr::from(0x6440_0000u32 + 1 + i as u32)),
        ipv6: Some(format!("fd7a:115c:a1e0::{:x}", i + 1).parse().expect("v6")),
        ..Default::default()
    }
}

fn topology(nodes: usize) -> Topology {
    let users: Vec<TopoUser> = (0..USERS)
        .map(|i| TopoUser {
            id: i as u64 + 1,
            name: format!("u{i}"),
            login: format!(
                "u{i}@{}",
                if i % 4 == 0 {
                    "corp.org"
                } else {
                    "example.com"
                }
            ),
            groups: vec![],
        })
        .collect();
    let nodes = (0..nodes)
        .map(|i| {
            let mut n = user_node(i, i as u64 + 1);
            if i % 3 == 0 {
                n.user = None;
                n.tags = vec![format!("tag:t{}", i % TAGS)];
            }
            if i % 100 == 3 {
                // Subnet routers, in HA pairs (two routers per prefix).
                n.user = None;
                n.tags = vec!["tag:router".into()];
                let r = format!("10.{}.0.0/16", (i / 200) % 250)
                    .parse()
                    .expect("net");
                n.routable_ips = vec![r];
            }
            if i % 500 == 7 {
                n.user = None;
                n.tags = vec!["tag:exit".into()];
                n.routable_ips = vec![
                    "0.0.0.0/0".parse().expect("net"),
                    "::/0".parse().expect("net"),
                ];
            }
            n
        })
        .collect();
    Topology::new(users, nodes)
}

fn policy(rules: usize) -> Policy {
    let mut tag_owners: Vec<String> = (0..TAGS)
        .map(|i| format!("\"tag:t{i}\": [\"group:g0\"]"))
        .collect();
    tag_owners.push("\"tag:router\": [\"group:g0\"]".into());
    tag_owners.push("\"tag:exit\": [\"group:g0\"]".into());
    let groups: Vec<String> = (0..GROUPS)
        .map(|g| {
            let members: Vec<String> = (0..10)
                .map(|k| format!("\"u{}@example.com\"", ((g * 7 + k * 3) % USERS) | 1))
                .collect();
            format!("\"group:g{g}\": [{}]", members.join(","))
        })
        .collect();
    let port = |i: usize| match i % 5 {
        0 => "22".to_string(),
        1 => "80,443".to_string(),
        2 => format!("{}-{}", 8000 + i % 100, 8100 + i % 100),
        3 => "*".to_string(),
        _ => format!("{}", 1000 + i),
    };
    let (mut acls, mut grants) = (Vec::new(), Vec::new());
    for i in 0..rules {
        let user = format!("u{}@example.com", ((i * 13) % USERS) | 1);
        let group = format!("group:g{}", i % GROUPS);
        let tag = format!("tag:t{}", i % TAGS);
        let tag2 = format!("tag:t{}", (i * 7 + 3) % TAGS);
        match i % 20 {
            0..=5 => acls.push(format!(
                r#"{{"action":"accept","src":["{group}","{user}"],"dst":["{tag}:{}"]}}"#,
                port(i)
            )),
            6 | 7 => acls.push(format!(
                r#"{{"action":"accept","src":["{tag}"],"dst":["{tag2}:{}"],"proto":"tcp"}}"#,
                port(i)
            )),
            8 => acls.push(
                r#"{"action":"accept","src":["autogroup:member"],"dst":["autogroup:self:*"]}"#
                    .to_string(),
            ),
            9 => acls.push(format!(
                r#"{{"action":"accept","src":["{group}"],"dst":["{user}:{}","10.{}.0.0/16:*"]}}"#,
                port(i),
                i % 25
            )),
            10..=13 => grants.push(format!(
                r#"{{"src":["{group}","{tag}"],"dst":["{tag2}"],"ip":["tcp:{}","udp:53"]}}"#,
                1000 + i
            )),
            14 | 15 => grants.push(format!(
                r#"{{"src":["{group}"],"dst":["{tag}"],"app":{{"example.com/cap/svc{}":[{{"role":"r{}"}}]}}}}"#,
                i % 50,
                i
            )),
            16 => grants.push(format!(
                r#"{{"src":["{group}"],"dst":["autogroup:internet"],"ip":["*"]}}"#
            )),
            17 => grants.push(format!(
                r#"{{"src":["autogroup:tagged"],"dst":["{tag}"],"ip":["icmp:*","tcp:{}"]}}"#,
                2000 + i
            )),
            18 => acls.push(format!(
                r#"{{"action":"accept","src":["user:*@corp.org"],"dst":["{tag}:443","{group}:22"]}}"#
            )),
            _ => grants.push(format!(
                r#"{{"src":["{user}"],"dst":["10.{}.0.0/16"],"ip":["*"],"via":["tag:router"]}}"#,
                i % 25
            )),
        }
    }
    let src = format!(
        r#"{{
  // generated bench policy
  "groups": {{{}}},
  "tagOwners": {{{}}},
  "acls": [{}],
  "grants": [{}],
  "autoApprovers": {{"routes": {{"10.0.0.0/8": ["tag:router"]}}, "exitNode": ["tag:exit"]}},
  "nodeAttrs": [{{"target": ["group:g1"], "attr": ["funnel"]}}, {{"target": ["tag:t2"], "attr": ["mullvad"]}}],
}}"#,
        groups.join(","),
        tag_owners.join(","),
        acls.join(","),
        grants.join(",")
    );
    Policy::parse(&src).expect("bench policy parses")
}

const RUNS: usize = 3;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    println!(
        "{:>6} {:>6} {:>11} {:>13} {:>12} {:>14} {:>8} {:>13} {:>12}",
        "nodes",
        "rules",
        "compile ms",
        "+all outputs",
        "join update",
        "join +outputs",
        "changed",
        "step rebuilt",
        "step shared"
    );
    for &(n, r) in &[(1000, 100), (1000, 1000), (5000, 100), (5000, 1000)] {
        let p = policy(r);
        let topo = topology(n);
        let mut best = [Duration::MAX; 6];
        let mut changed_n = 0;
        for _ in 0..RUNS {
            let t = Instant::now();
            let c = p.compile(&topo);
            let compile = t.elapsed();
            let t = Instant::now();
            c.materialize();
            let all = compile + t.elapsed();

            let mut t2 = topo.clone();
            let id = n as u64 + 1;
            t2.nodes.push(user_node(n + 1, id).into());
            let t = Instant::now();
            let (c2, changed) = c.update(t2, &[id]);
            let join = t.elapsed();
            for id in &changed {
                black_box(c2.node_arc(*id));
            }
            let join_out = t.elapsed();
            changed_n = changed.len();
            drop(c2);

            let id = n as u64 + 1;
            let t = Instant::now();
            let mut rebuilt = Topology::new(
                topo.users.to_vec(),
                topo.nodes.iter().map(|x| (**x).clone()).collect(),
            );
            rebuilt.nodes.push(user_node(n + 1, id).into());
            black_box(c.update(rebuilt, &[id]));
            let step_rebuilt = t.elapsed();
            let t = Instant::now();
            let shared =
                c.topology()
                    .with_nodes(topo.users.clone(), vec![user_node(n + 1, id)], &[]);
            black_box(c.update(shared, &[id]));
            let step_shared = t.elapsed();
            let figures = [compile, all, join, join_out, step_rebuilt, step_shared];
            for (b, x) in best.iter_mut().zip(figures) {
                *b = (*b).min(x);
            }
        }
        println!(
            "{n:>6} {r:>6} {:>11.1} {:>13.1} {:>12.2} {:>14.2} {:>8} {:>13.2} {:>12.2}",
            ms(best[0]),
            ms(best[1]),
            ms(best[2]),
            ms(best[3]),
            changed_n,
            ms(best[4]),
            ms(best[5])
        );
    }
}
