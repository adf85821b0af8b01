//! How much of each CPU the machine itself takes away: a child process
//! pinned to one CPU spins on the clock and records every gap between two
//! readings of at least [`GAP`]. On an idle core the only gaps are the
//! kernel's own work (and, in a VM, the host's). Any load generator on that
//! core loses the same time, and a closed-loop generator with
//! coordinated-omission correction (wrk) counts every request it could not
//! send during a gap as late by that gap, so these figures bound the p99
//! any server can show on this machine.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Gaps shorter than this are ordinary timer ticks and cache refills.
const GAP: Duration = Duration::from_micros(500);

/// Gaps seen on one CPU over a probe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stalls {
    pub seconds: f64,
    /// Gaps of at least [`GAP`].
    pub count: u64,
    /// Of them, gaps of at least 1 ms.
    pub over_1ms: u64,
    /// Time lost in all of them.
    pub lost: Duration,
    pub max: Duration,
}

impl Stalls {
    /// The share of the probe's time lost in gaps, in percent.
    pub fn lost_percent(&self) -> f64 {
        self.lost.as_secs_f64() * 100.0 / self.seconds
    }
}

/// The child: spin for `args[0]` seconds, print one line.
pub fn child_main(args: &[String]) -> anyhow::Result<()> {
    let secs: f64 = args.first().context("seconds")?.parse()?;
    let s = spin(Duration::from_secs_f64(secs));
    println!(
        "stalls {} {} {} {} {}",
        s.seconds,
        s.count,
        s.over_1ms,
        s.lost.as_nanos(),
        s.max.as_nanos()
    );
    Ok(())
}

fn spin(length: Duration) -> Stalls {
    let start = Instant::now();
    let mut prev = start;
    let mut s = Stalls {
        seconds: length.as_secs_f64(),
        count: 0,
        over_1ms: 0,
        lost: Duration::ZERO,
        max: Duration::ZERO,
    };
    loop {
        let t = Instant::now();
        let gap = t - prev;
        if gap >= GAP {
            s.count += 1;
            s.over_1ms += u64::from(gap >= Duration::from_millis(1));
            s.lost += gap;
            s.max = s.max.max(gap);
        }
        prev = t;
        if t - start >= length {
            return s;
        }
    }
}

fn parse(line: &str) -> anyhow::Result<Stalls> {
    let f: Vec<&str> = line
        .strip_prefix("stalls ")
        .context("no stalls line")?
        .split(' ')
        .collect();
    let [seconds, count, over, lost, max] = f[..] else {
        bail!("malformed stalls line {line:?}");
    };
    Ok(Stalls {
        seconds: seconds.parse()?,
        count: count.parse()?,
        over_1ms: over.parse()?,
        lost: Duration::from_nanos(lost.parse()?),
        max: Duration::from_nanos(max.parse()?),
    })
}

/// Probes every CPU in `cpus` at once for `secs` seconds (one pinned
/// child each, this binary with `--stall-probe`).
pub fn probe(cpus: &[usize], secs: f64) -> anyhow::Result<Vec<(usize, Stalls)>> {
    let exe = std::env::current_exe()?;
    let children = cpus
        .iter()
        .map(|cpu| {
            Command::new("taskset")
                .args(["-c", &cpu.to_string()])
                .arg(&exe)
                .args(["--stall-probe", &secs.to_string()])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .context("taskset")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut out = Vec::new();
    for (cpu, child) in cpus.iter().zip(children) {
        let o = child.wait_with_output()?;
        if !o.status.success() {
            bail!("stall probe on CPU {cpu} failed: {}", o.status);
        }
        out.push((*cpu, parse(String::from_utf8_lossy(&o.stdout).trim())?));
    }
    Ok(out)
}
