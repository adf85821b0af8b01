//! A fixed-rate (open-loop) HTTP/1.1 load generator, run as its own
//! process: request k is due at `start + k / rate` whatever happened to the
//! ones before it, goes out on an idle keep-alive connection (or waits in a
//! backlog until one is free), and its latency is counted from when it was
//! due, not from when it could be sent. So a stall of the server shows in
//! the percentiles in full, which a closed loop like wrk's hides
//! (coordinated omission). One thread, non-blocking sockets; it naps when
//! nothing arrives, so it needs well under a core at 50,000 requests/s.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// Pause between polls when nothing arrived; the kernel's default timer
/// slack (50 us) comes on top.
const NAP: Duration = Duration::from_micros(10);

pub struct Spec {
    pub addr: SocketAddr,
    /// Requests per second offered.
    pub rate: f64,
    pub connections: usize,
    /// Measured span; a first second of load before it is not counted.
    pub duration: Duration,
    /// Raw requests; request k uses `requests[k % len]`.
    pub requests: Vec<Vec<u8>>,
}

pub struct Report {
    pub offered: f64,
    pub completed: usize,
    /// Completed per second of the measured span.
    pub throughput: f64,
    pub non_2xx: usize,
    /// Latency percentiles, microseconds.
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

struct Conn {
    stream: TcpStream,
    /// Unsent bytes of the current request.
    out: Vec<u8>,
    input: Vec<u8>,
    /// When the request on this connection was due, while it is open.
    due: Option<Instant>,
}

/// A complete response at the front of `buf`: (status, length).
fn response(buf: &[u8]) -> anyhow::Result<Option<(u16, usize)>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).context("response head")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .context("status line")?;
    let mut len = 0;
    for l in lines {
        if let Some((k, v)) = l.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().context("content-length")?;
        }
    }
    let total = end + 4 + len;
    Ok((buf.len() >= total).then_some((status, total)))
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

pub fn run(spec: &Spec) -> anyhow::Result<Report> {
    if spec.requests.is_empty() || spec.connections == 0 || spec.rate <= 0.0 {
        bail!("nothing to send");
    }
    let mut poll = Poll::new()?;
    let mut conns = Vec::with_capacity(spec.connections);
    for i in 0..spec.connections {
        let std = std::net::TcpStream::connect(spec.addr)?;
        std.set_nodelay(true)?;
        std.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(std);
        poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        conns.push(Conn {
            stream,
            out: Vec::new(),
            input: Vec::with_capacity(4096),
            due: None,
        });
    }
    let mut idle: Vec<usize> = (0..spec.connections).rev().collect();
    let interval = Duration::from_secs_f64(1.0 / spec.rate);
    let warmup = Duration::from_secs(1);
    let start = Instant::now() + Duration::from_millis(20);
    let measured_from = start + warmup;
    let end = measured_from + spec.duration;
    let mut backlog: VecDeque<Instant> = VecDeque::new();
    let (mut next, mut sent): (u32, usize) = (0, 0);
    let due = |k: u32| start + interval * k;
    let mut lat: Vec<u64> =
        Vec::with_capacity((spec.rate * spec.duration.as_secs_f64()) as usize + 1);
    let (mut non_2xx, mut open) = (0usize, 0usize);
    let mut events = Events::with_capacity(256);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let now = Instant::now();
        while due(next) <= now && due(next) < end {
            backlog.push_back(due(next));
            next += 1;
        }
        while !backlog.is_empty() {
            let Some(i) = idle.pop() else { break };
            let d = backlog.pop_front().unwrap_or(now);
            let c = &mut conns[i];
            c.out
                .extend_from_slice(&spec.requests[sent % spec.requests.len()]);
            sent += 1;
            c.due = Some(d);
            open += 1;
            match c.stream.write(&c.out) {
                Ok(n) => {
                    c.out.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e).context("send"),
            }
        }
        if due(next) >= end && backlog.is_empty() && open == 0 {
            break;
        }
        poll.poll(&mut events, Some(Duration::ZERO))?;
        if events.is_empty() {
            // Nothing arrived: nap instead of spinning, so the generator
            // leaves most of its CPU to others (a server worker, kernel
            // threads). What the nap delays (sends, reading answers) is
            // counted against the server, as latency runs from the due time.
            std::thread::sleep(NAP);
        }
        for ev in events.iter() {
            let i = ev.token().0;
            let c = &mut conns[i];
            if ev.is_writable() && !c.out.is_empty() {
                match c.stream.write(&c.out) {
                    Ok(n) => {
                        c.out.drain(..n);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e).context("send"),
                }
            }
            if !ev.is_readable() {
                continue;
            }
            loop {
                match c.stream.read(&mut chunk) {
                    Ok(0) => bail!("server closed a connection"),
                    Ok(n) => c.input.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e).context("receive"),
                }
            }
            while let Some((status, len)) = response(&c.input)? {
                let done = Instant::now();
                c.input.drain(..len);
                let d = c.due.take().context("response without a request")?;
                open -= 1;
                idle.push(i);
                if d >= measured_from {
                    lat.push(done.duration_since(d).as_micros() as u64);
                    if !(200..300).contains(&status) {
                        non_2xx += 1;
                    }
                }
            }
        }
    }
    let completed = lat.len();
    lat.sort_unstable();
    Ok(Report {
        offered: spec.rate,
        completed,
        throughput: completed as f64 / spec.duration.as_secs_f64(),
        non_2xx,
        p50: percentile(&lat, 50.0),
        p99: percentile(&lat, 99.0),
        p999: percentile(&lat, 99.9),
        max: lat.last().copied().unwrap_or(0),
    })
}

/// Runs as the child process: `--load-client ADDR RATE CONNS SECS FILE`,
/// FILE holding the raw requests separated by NUL bytes. Prints one
/// `report` line for [`parse_report`].
pub fn child_main(args: &[String]) -> anyhow::Result<()> {
    let [addr, rate, conns, secs, file] = args else {
        bail!("--load-client ADDR RATE CONNS SECS FILE");
    };
    let requests = std::fs::read(file)?
        .split(|b| *b == 0)
        .filter(|r| !r.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let r = run(&Spec {
        addr: addr.parse()?,
        rate: rate.parse()?,
        connections: conns.parse()?,
        duration: Duration::from_secs_f64(secs.parse()?),
        requests,
    })?;
    println!(
        "report {} {} {} {} {} {} {} {}",
        r.offered, r.completed, r.throughput, r.non_2xx, r.p50, r.p99, r.p999, r.max
    );
    Ok(())
}

/// Reads the child's `report` line.
pub fn parse_report(out: &str) -> anyhow::Result<Report> {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("report "))
        .context("no report from the load generator")?;
    let f: Vec<&str> = line.split(' ').collect();
    let [offered, completed, throughput, non_2xx, p50, p99, p999, max] = f[..] else {
        bail!("malformed report {line:?}");
    };
    Ok(Report {
        offered: offered.parse()?,
        completed: completed.parse()?,
        throughput: throughput.parse()?,
        non_2xx: non_2xx.parse()?,
        p50: p50.parse()?,
        p99: p99.parse()?,
        p999: p999.parse()?,
        max: max.parse()?,
    })
}
