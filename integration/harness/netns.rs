//! Network namespaces for the real-client tests: `Netns` and `Topology`.
//!
//! Owns: creating and deleting namespaces, running commands inside them, and
//! the isolation check that must pass before any `tailscaled` starts.
//! Depends on `process` and iproute2 (`ip netns`, `ip -j`), util-linux
//! `setpriv` and bash; requires root.
//!
//! Why: a stock `tailscaled` contacts Tailscale's public hosts unless it is
//! told otherwise, and the tests must never reach the Internet. Every
//! simulated host lives in its own namespace whose only link is a veth into a
//! hub namespace holding a bridge; the hub has no uplink, so nothing can leave.
//! Nothing is created in the root namespace: both veth ends are made directly
//! inside the test namespaces, and deleting the namespaces removes them.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};
use serde_json::Value;

use super::process::{CmdOutput, run};

/// Prefix of every namespace the harness creates: `csit<pid>n<seq>...`.
const PREFIX: &str = "csit";
/// PATH given to programs started with a cleared environment.
pub const CLEAN_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const IP_TIMEOUT: Duration = Duration::from_secs(20);

static SEQ: AtomicU32 = AtomicU32::new(0);
static STALE_CLEANUP: Once = Once::new();

/// A network namespace created by the harness; cheap to clone. The namespace
/// is deleted when the last clone is dropped, so a `Server` or `Tailscaled`
/// holding a clone keeps it alive until its processes are gone.
#[derive(Clone, Debug)]
pub struct Netns(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    name: String,
    /// Set for namespaces built by `Topology`: the only subnet the namespace
    /// may route to, and the dummy default gateway.
    isolation: Option<(Ipv4Net, Ipv4Addr)>,
    /// Set once IPv6 is enabled: the only IPv6 subnet it may route to (no
    /// default route at all).
    ipv6: std::sync::OnceLock<Ipv6Net>,
    /// Set on a subnet router's namespace joined to a test LAN
    /// (`Topology::add_lan`): that LAN, on-link through `lan0`.
    lan: std::sync::OnceLock<Ipv4Net>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let out = run(
            Command::new("ip").args(["netns", "del", &self.name]),
            IP_TIMEOUT,
        );
        if !out.success() {
            eprintln!("harness: could not delete netns {}:\n{out}", self.name);
        }
    }
}

impl Netns {
    /// Creates namespace `name` with `lo` up and IPv6 disabled (nothing in
    /// the tests needs it, and it keeps the route table small and checkable).
    pub fn create(name: &str) -> Netns {
        Netns::create_inner(name, None)
    }

    fn create_inner(name: &str, isolation: Option<(Ipv4Net, Ipv4Addr)>) -> Netns {
        remove_stale_namespaces();
        let out = run(Command::new("ip").args(["netns", "add", name]), IP_TIMEOUT);
        if !out.success() {
            panic!(
                "cannot create network namespace {name}; the real-client tests need root and \
                 iproute2 (`ip netns`):\n{out}"
            );
        }
        let ns = Netns(Arc::new(Inner {
            name: name.to_owned(),
            isolation,
            ipv6: std::sync::OnceLock::new(),
            lan: std::sync::OnceLock::new(),
        }));
        ns.ip(&["link", "set", "lo", "up"]);
        ns.run(
            &[
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
            IP_TIMEOUT,
        )
        .expect_success("disabling IPv6 in the test namespace");
        ns
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Runs `ip -n <ns> <args>` and panics if it fails.
    pub fn ip(&self, args: &[&str]) -> CmdOutput {
        run(
            Command::new("ip").args(["-n", self.name()]).args(args),
            IP_TIMEOUT,
        )
        .expect_success(&format!("ip -n {} {}", self.name(), args.join(" ")))
    }

    /// A `Command` that runs `program` inside this namespace. The process gets
    /// SIGKILL if the spawning thread dies (`setpriv --pdeathsig`), so even a
    /// test process killed without unwinding leaves no client running. Spawn
    /// long-lived children from the test's own thread for that reason.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.name()])
            .args(["setpriv", "--pdeathsig", "KILL", "--"])
            .arg(program);
        cmd
    }

    /// Joins `other` to this namespace's bridge `br0`: a veth whose end
    /// `port` is on the bridge here and whose end `name` is in `other`
    /// (created there directly, never in the root namespace).
    fn bridge_veth(&self, port: &str, other: &Netns, name: &str) {
        self.ip(&[
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            name,
            "netns",
            other.name(),
        ]);
        self.ip(&["link", "set", port, "master", "br0", "up"]);
    }

    /// Runs `args[0] args[1..]` inside the namespace with a timeout.
    pub fn run(&self, args: &[&str], timeout: Duration) -> CmdOutput {
        let (program, rest) = args.split_first().expect("empty command");
        run(self.command(program).args(rest), timeout)
    }

    /// Plain HTTP/1.0 GET from inside the namespace, using bash's /dev/tcp so
    /// no curl is needed. Returns (status code, body).
    pub fn http_get(&self, ip: Ipv4Addr, port: u16, path: &str) -> Result<(u16, String), String> {
        // `exec cat` so killing the shell on timeout leaves no reader behind.
        let script = "exec 3<>\"/dev/tcp/$0/$1\" || exit 7; \
                      printf 'GET %s HTTP/1.0\\r\\nHost: %s:%s\\r\\n\\r\\n' \"$2\" \"$0\" \"$1\" >&3; \
                      exec cat <&3";
        let out = self.run(
            &[
                "bash",
                "-c",
                script,
                &ip.to_string(),
                &port.to_string(),
                path,
            ],
            Duration::from_secs(10),
        );
        if !out.success() {
            return Err(format!("GET http://{ip}:{port}{path} failed:\n{out}"));
        }
        let (head, body) = out
            .stdout
            .split_once("\r\n\r\n")
            .unwrap_or((out.stdout.as_str(), ""));
        let code = head
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("no HTTP status line from {ip}:{port}: {:?}", out.stdout))?;
        Ok((code, body.to_owned()))
    }

    /// Panics unless every route in the namespace stays inside its test
    /// subnet, apart from the dummy default route, and the only interfaces are
    /// loopback, the bridge and veths. Must hold before `tailscaled` starts.
    pub fn assert_isolated(&self) {
        let Some((subnet, gateway)) = self.0.isolation else {
            panic!(
                "namespace {} was not built by Topology; refusing to treat it as isolated",
                self.name()
            );
        };
        let loopback: Ipv4Net = "127.0.0.0/8".parse().expect("constant");
        let mut bad = Vec::new();
        for route in self.json(&["-4", "route", "show", "table", "all"]) {
            let dst = route["dst"].as_str().unwrap_or("");
            let dev = route["dev"].as_str().unwrap_or("");
            let via = route["gateway"].as_str();
            let ok = if dst == "default" {
                via == Some(gateway.to_string().as_str())
            } else {
                let net = dst
                    .parse::<Ipv4Net>()
                    .or_else(|_| dst.parse::<Ipv4Addr>().map(Ipv4Net::from));
                let lan = self.0.lan.get();
                match net {
                    Ok(net) if subnet.contains(&net) => via.is_none(),
                    Ok(net) if lan.is_some_and(|l| l.contains(&net)) => {
                        via.is_none() && dev == "lan0"
                    }
                    Ok(net) if loopback.contains(&net) => dev == "lo",
                    _ => false,
                }
            };
            if !ok {
                bad.push(route.to_string());
            }
        }
        // With IPv6 disabled not even link-local routes may exist; with it
        // enabled (`enable_ipv6`), only on-link ones: its subnet, link-local,
        // multicast and the namespace's own addresses, never a default.
        let link_local: Ipv6Net = "fe80::/10".parse().expect("constant");
        let multicast: Ipv6Net = "ff00::/8".parse().expect("constant");
        for route in self.json(&["-6", "route", "show", "table", "all"]) {
            let ok = self.0.ipv6.get().is_some_and(|net6| {
                let dst = route["dst"].as_str().unwrap_or("");
                let net = dst
                    .parse::<Ipv6Net>()
                    .or_else(|_| dst.parse::<Ipv6Addr>().map(Ipv6Net::from));
                route["gateway"].is_null()
                    && match net {
                        Ok(n) => {
                            net6.contains(&n)
                                || link_local.contains(&n)
                                || multicast.contains(&n)
                                || (n == Ipv6Net::from(Ipv6Addr::LOCALHOST)
                                    && route["dev"].as_str() == Some("lo"))
                        }
                        Err(_) => false,
                    }
            });
            if !ok {
                bad.push(route.to_string());
            }
        }
        for link in self.json(&["link", "show"]) {
            let name = link["ifname"].as_str().unwrap_or("");
            let kind_ok = name == "lo"
                || name == "eth0"
                || name == "br0"
                || (name == "lan0" && self.0.lan.get().is_some())
                || (name.starts_with("vh") && name[2..].parse::<u32>().is_ok());
            if !kind_ok {
                bad.push(format!("unexpected interface {link}"));
            }
        }
        assert!(
            bad.is_empty(),
            "namespace {} is not isolated to {subnet} (default via {gateway}):\n  {}",
            self.name(),
            bad.join("\n  ")
        );
    }

    fn json(&self, args: &[&str]) -> Vec<Value> {
        let mut full = vec!["-j"];
        full.extend_from_slice(args);
        let out = self.ip(&full);
        if out.stdout.trim().is_empty() {
            return Vec::new();
        }
        match serde_json::from_str::<Value>(&out.stdout) {
            Ok(Value::Array(items)) => items,
            other => panic!("unexpected `ip -j {}` output: {other:?}", args.join(" ")),
        }
    }

    /// Enables IPv6 with `addr` (in `net`, no default route) on `dev`, as a
    /// host with working IPv6 has it: clients then probe DERP nodes over
    /// IPv6 too. `nodad` so the address is usable at once.
    pub fn enable_ipv6(&self, dev: &str, addr: Ipv6Addr, net: Ipv6Net) {
        self.0.ipv6.set(net.trunc()).expect("IPv6 enabled once");
        self.run(
            &[
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=0",
                "net.ipv6.conf.default.disable_ipv6=0",
                &format!("net.ipv6.conf.{dev}.disable_ipv6=0"),
                &format!("net.ipv6.conf.{dev}.accept_ra=0"),
            ],
            IP_TIMEOUT,
        )
        .expect_success("enabling IPv6 in the test namespace");
        let cidr = format!("{addr}/{}", net.prefix_len());
        self.ip(&["-6", "addr", "add", &cidr, "dev", dev, "nodad"]);
    }

    /// Which namespace (by name) process `pid` lives in, per `ip netns identify`.
    pub fn identify(pid: u32) -> String {
        run(
            Command::new("ip").args(["netns", "identify", &pid.to_string()]),
            IP_TIMEOUT,
        )
        .stdout
        .trim()
        .to_owned()
    }

    /// PIDs of all processes inside this namespace (`ip netns pids`).
    pub fn pids(&self) -> Vec<u32> {
        run(
            Command::new("ip").args(["netns", "pids", self.name()]),
            IP_TIMEOUT,
        )
        .stdout
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
    }

    /// Names of all namespaces currently known to `ip netns`.
    pub fn list() -> BTreeSet<String> {
        let out = run(Command::new("ip").args(["netns", "list"]), IP_TIMEOUT)
            .expect_success("ip netns list");
        out.stdout
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    }
}

/// Deletes namespaces left by an earlier test process that died without
/// unwinding (their names embed its PID). Its children died with it
/// (`--pdeathsig`), so only the names remain.
fn remove_stale_namespaces() {
    STALE_CLEANUP.call_once(|| {
        for name in Netns::list() {
            let Some(rest) = name.strip_prefix(PREFIX) else {
                continue;
            };
            let Some((pid, _)) = rest.split_once('n') else {
                continue;
            };
            if pid.parse::<u32>().is_err() || Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            eprintln!("harness: removing stale namespace {name}");
            let _ = run(Command::new("ip").args(["netns", "del", &name]), IP_TIMEOUT);
        }
    });
}

/// A hub namespace with a bridge (`10.213.X.1/24`, where the server listens)
/// and `hosts` host namespaces, each joined to the bridge by a veth, with
/// address `10.213.X.(10+i)/24` and a default route via `10.213.X.254`, which
/// nobody owns: `tailscaled` only believes the network is up when it sees a
/// non-loopback default route.
#[derive(Debug)]
pub struct Topology {
    octet: u8,
    tag: String,
    hub: Netns,
    hosts: Vec<Netns>,
}

impl Topology {
    pub fn new(hosts: usize) -> Topology {
        assert!(hosts <= 200, "at most 200 hosts per topology");
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // Topologies are fully separate L2 islands, so equal X in two tests
        // would still work; distinct X just makes logs unambiguous.
        let octet = u8::try_from((pid + seq) % 250 + 1).expect("in range");
        let tag = format!("{PREFIX}{pid}n{seq}");
        let subnet = Ipv4Net::new(Ipv4Addr::new(10, 213, octet, 0), 24).expect("valid prefix");
        let gateway = Ipv4Addr::new(10, 213, octet, 254);

        let isolated = |name: String| Netns::create_inner(&name, Some((subnet, gateway)));
        let hub = isolated(format!("{tag}hub"));
        let hub_cidr = format!("{}/24", Ipv4Addr::new(10, 213, octet, 1));
        hub.ip(&["link", "add", "br0", "type", "bridge"]);
        hub.ip(&["addr", "add", &hub_cidr, "dev", "br0"]);
        hub.ip(&["link", "set", "br0", "up"]);

        let mut host_nss = Vec::with_capacity(hosts);
        for i in 0..hosts {
            let ns = isolated(format!("{tag}h{i}"));
            hub.bridge_veth(&format!("vh{i}"), &ns, "eth0");
            let cidr = format!("{}/24", Ipv4Addr::new(10, 213, octet, 10 + i as u8));
            ns.ip(&["addr", "add", &cidr, "dev", "eth0"]);
            ns.ip(&["link", "set", "eth0", "up"]);
            ns.ip(&["route", "add", "default", "via", &gateway.to_string()]);
            host_nss.push(ns);
        }
        Topology {
            octet,
            tag,
            hub,
            hosts: host_nss,
        }
    }

    /// Unique per topology; used to name namespaces and temp files.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    pub fn hub(&self) -> &Netns {
        &self.hub
    }

    pub fn host(&self, i: usize) -> &Netns {
        &self.hosts[i]
    }

    pub fn hosts(&self) -> &[Netns] {
        &self.hosts
    }

    pub fn subnet(&self) -> Ipv4Net {
        Ipv4Net::new(Ipv4Addr::new(10, 213, self.octet, 0), 24).expect("valid prefix")
    }

    pub fn hub_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.octet, 1)
    }

    pub fn host_ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.octet, 10 + i as u8)
    }

    /// The IPv6 subnet `enable_ipv6` uses (a ULA, on the same bridge).
    pub fn subnet6(&self) -> Ipv6Net {
        Ipv6Net::new(
            Ipv6Addr::new(0xfd5c, 0x213, u16::from(self.octet), 0, 0, 0, 0, 0),
            64,
        )
        .expect("valid prefix")
    }

    /// Gives every host an IPv6 address in `subnet6` (no IPv6 default
    /// route): tailscaled then sees working IPv6 and probes DERP over it.
    pub fn enable_ipv6(&self) {
        let net = self.subnet6();
        for (i, ns) in self.hosts.iter().enumerate() {
            let mut seg = net.network().segments();
            seg[7] = 0x10 + i as u16;
            ns.enable_ipv6("eth0", Ipv6Addr::from(seg), net);
        }
    }

    /// The default gateway of every host: an address nobody answers for.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.octet, 254)
    }

    /// A LAN behind subnet routers: a namespace whose bridge holds the LAN
    /// host's address `10.214.X.1/24`, joined by a veth (`lan0`,
    /// `10.214.X.(10+i)/24`) to each host `i` in `routers`. Nothing else
    /// reaches it: other hosts only get there through the routers'
    /// tailnet subnet routes. The LAN namespace has no default route and
    /// runs no client; the routers' isolation check accepts their leg.
    pub fn add_lan(&self, routers: &[usize]) -> Lan {
        let subnet = Ipv4Net::new(Ipv4Addr::new(10, 214, self.octet, 0), 24).expect("prefix");
        let ns = Netns::create(&format!("{}lan", self.tag));
        ns.ip(&["link", "add", "br0", "type", "bridge"]);
        let host = Ipv4Addr::new(10, 214, self.octet, 1);
        ns.ip(&["addr", "add", &format!("{host}/24"), "dev", "br0"]);
        ns.ip(&["link", "set", "br0", "up"]);
        for &i in routers {
            let router = &self.hosts[i];
            router.0.lan.set(subnet).expect("one LAN per router");
            ns.bridge_veth(&format!("vl{i}"), router, "lan0");
            let cidr = format!("{}/24", Ipv4Addr::new(10, 214, self.octet, 10 + i as u8));
            router.ip(&["addr", "add", &cidr, "dev", "lan0"]);
            router.ip(&["link", "set", "lan0", "up"]);
        }
        Lan { ns, subnet, host }
    }
}

/// A LAN only subnet routers reach (`Topology::add_lan`).
#[derive(Debug)]
pub struct Lan {
    ns: Netns,
    subnet: Ipv4Net,
    host: Ipv4Addr,
}

impl Lan {
    pub fn subnet(&self) -> Ipv4Net {
        self.subnet
    }

    /// The LAN host: answers ping (the LAN namespace's kernel).
    pub fn host(&self) -> Ipv4Addr {
        self.host
    }

    pub fn netns(&self) -> &Netns {
        &self.ns
    }
}
