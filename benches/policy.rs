//! Policy compile benchmark (harness = false): full compile and one-node
//! incremental update for N nodes × R rules. Prints a table.

use std::time::Instant;

use clawscale::policy::{Policy, TopoNode, TopoUser, Topology};

fn topology(nodes: usize) -> Topology {
    let users: Vec<TopoUser> = (0..50)
        .map(|i| TopoUser {
            id: i + 1,
            name: format!("u{i}"),
            login: format!("u{i}@example.com"),
        })
        .collect();
    let nodes = (0..nodes)
        .map(|i| {
            let tagged = i % 3 == 0;
            TopoNode {
                id: i as u64 + 1,
                name: format!("n{i}"),
                hostname: format!("n{i}"),
                user: if tagged {
                    None
                } else {
                    Some((i % 50) as u64 + 1)
                },
                tags: if tagged {
                    vec![format!("tag:t{}", i % 20)]
                } else {
                    vec![]
                },
                ipv4: Some(std::net::Ipv4Addr::new(
                    100,
                    64 + (i / 65536) as u8,
                    (i / 256 % 256) as u8,
                    (i % 256) as u8,
                )),
                ipv6: Some(format!("fd7a:115c:a1e0::{:x}", i + 1).parse().expect("v6")),
                routable_ips: vec![],
                approved_routes: if i % 100 == 1 {
                    vec![format!("10.{}.0.0/16", i % 250).parse().expect("net")]
                } else {
                    vec![]
                },
                primary_routes: None,
            }
        })
        .collect();
    Topology { users, nodes }
}

fn policy(rules: usize) -> Policy {
    let tags: Vec<String> = (0..20)
        .map(|i| format!("\"tag:t{i}\": [\"u0@example.com\"]"))
        .collect();
    let acls: Vec<String> = (0..rules)
        .map(|i| {
            format!(
                "{{\"action\": \"accept\", \"src\": [\"u{}@example.com\", \"tag:t{}\"], \"dst\": [\"tag:t{}:{}\"]}}",
                i % 50,
                i % 20,
                (i + 7) % 20,
                1000 + i
            )
        })
        .collect();
    let src = format!(
        "{{\"tagOwners\": {{{}}}, \"acls\": [{}]}}",
        tags.join(","),
        acls.join(",")
    );
    Policy::parse(&src).expect("bench policy parses")
}

fn main() {
    println!(
        "{:>6} {:>6} {:>12} {:>14}",
        "nodes", "rules", "full (ms)", "1 join (ms)"
    );
    for &(n, r) in &[(1000, 100), (1000, 1000), (5000, 100), (5000, 1000)] {
        let p = policy(r);
        let topo = topology(n);
        let t = Instant::now();
        let c = p.compile(&topo);
        let full = t.elapsed();
        let mut t2 = topo.clone();
        let mut extra = topology(n + 1).nodes.pop().expect("node");
        extra.id = n as u64 + 1;
        t2.nodes.push(extra);
        let t = Instant::now();
        let (_c2, changed) = c.update(&t2, &[n as u64 + 1]);
        let inc = t.elapsed();
        println!(
            "{n:>6} {r:>6} {:>12.1} {:>14.1}   ({} changed)",
            full.as_secs_f64() * 1e3,
            inc.as_secs_f64() * 1e3,
            changed.len()
        );
    }
}
