//! What the bench reads about processes from `/proc`, and the fd limit.

use std::process::Command;
use std::time::Duration;

use anyhow::Context;

/// Marks the process as already re-executed with a raised fd limit.
const REEXEC_ENV: &str = "CLAWSCALE_BENCH_FD_RAISED";

#[derive(Debug, Clone, Copy)]
pub struct Rss {
    pub current_kib: u64,
}

/// VmRSS of process `pid` (`"self"` for this one).
pub fn rss(pid: &str) -> anyhow::Result<Rss> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Rss {
        current_kib: field("VmRSS:"),
    })
}

/// User plus system CPU time of process `pid` so far. `/proc` reports it
/// in USER_HZ ticks, which Linux fixes at 100 per second for userspace.
pub fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime, stime are 14, 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// Bytes process `pid` has passed to `write`, `send` and their kin so far
/// (`wchar` in `/proc/PID/io`: sockets and files alike); 0 if unreadable.
pub fn written(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("wchar:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The 1-minute load average, recorded with every figure.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// The CPU the figures were taken on, as one token (`AMD_EPYC/f23m1`):
/// model name with spaces as `_`, then family and model. The same code ran
/// at half the speed on two days of this kind of machine
/// (docs/performance.md, "Writes and enrollment"), so figures are only
/// compared on the same CPU.
pub fn cpu() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    // The first processor's block: every core of these machines is alike.
    let field = |name: &str| {
        info.lines()
            .take_while(|l| !l.trim().is_empty())
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == name).then(|| v.trim().to_string())
            })
    };
    let model = field("model name").map_or_else(
        || "?".to_string(),
        |m| m.split_whitespace().collect::<Vec<_>>().join("_"),
    );
    match (field("cpu family"), field("model")) {
        (Some(f), Some(m)) => format!("{model}/f{f}m{m}"),
        _ => model,
    }
}

/// Makes sure `want` file descriptors can be opened. `unsafe` is forbidden
/// in this crate, so instead of `setrlimit` the process re-executes itself
/// once through `sh -c 'ulimit -n …'` when the soft limit is too low.
pub fn raise_fd_limit(want: u64) -> anyhow::Result<()> {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let Some((soft, hard)) = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| {
            let mut v = l.split_whitespace().skip(3);
            Some((
                v.next()?.parse::<u64>().ok()?,
                v.next()?.parse::<u64>().unwrap_or(u64::MAX),
            ))
        })
    else {
        return Ok(());
    };
    if soft >= want || std::env::var_os(REEXEC_ENV).is_some() {
        if soft < want {
            eprintln!("warning: only {soft} file descriptors available, want {want}");
        }
        return Ok(());
    }
    let target = want.min(hard);
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(r#"ulimit -n "$1" && shift && exec "$@""#)
        .arg("sh")
        .arg(target.to_string())
        .arg(std::env::current_exe()?)
        .args(std::env::args_os().skip(1))
        .env(REEXEC_ENV, "1")
        .status()
        .context("re-executing with a raised fd limit")?;
    std::process::exit(status.code().unwrap_or(1));
}
