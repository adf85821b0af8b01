//! Admission by source address, decided right after `accept` and before
//! anything is read: a refused connection is closed at once.
//!
//! A [`Permit`] counts one open connection until it is dropped; [`Held`]
//! carries it inside the connection's I/O object, so it survives an HTTP
//! upgrade (a Noise tunnel or DERP stream keeps counting against its source
//! for as long as it lives). The counters sit behind one mutex: each
//! admission or release is a hash-map update, far cheaper than the accept
//! and the socket it guards.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Refusals are logged at most this often (with the count since the last
/// line), so a flood cannot flood the log too.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// What limits count: an IPv4 address, or the /64 of an IPv6 address (one
/// subscriber usually gets a whole /64, so counting single IPv6 addresses
/// would let one client use 2^64 of them). IPv4-mapped IPv6 addresses count
/// as their IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source(IpAddr);

impl Source {
    pub fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    let net = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                    Source(IpAddr::V6(net))
                }
            },
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `source` already holds `limit` connections.
    PerSource { source: Source, limit: u32 },
    /// `limit` connections are open altogether.
    Total { limit: u32 },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::PerSource { source, limit } => write!(
                f,
                "{source} already holds {limit} connections (connections.max_per_ip)"
            ),
            Refusal::Total { limit } => {
                write!(f, "{limit} connections are open (connections.max_total)")
            }
        }
    }
}

/// Counts open connections per [`Source`] and in total. Cheap to clone;
/// clones share the counters.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<Inner>,
}

struct Inner {
    max_per_source: u32,
    max_total: u32,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    open: HashMap<Source, u32>,
    total: u32,
    log: RefusalLog,
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("max_per_source", &self.inner.max_per_source)
            .field("max_total", &self.inner.max_total)
            .field("open", &self.open())
            .finish()
    }
}

impl Gate {
    /// A gate admitting at most `max_per_source` connections per source and
    /// `max_total` in all (each at least 1).
    pub fn new(max_per_source: u32, max_total: u32) -> Gate {
        Gate {
            inner: Arc::new(Inner {
                max_per_source: max_per_source.max(1),
                max_total: max_total.max(1),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Admits a connection from `ip`, or says why not (and logs it, rate
    /// limited).
    pub fn admit(&self, ip: IpAddr) -> Result<Permit, Refusal> {
        self.admit_at(ip, Instant::now())
    }

    fn admit_at(&self, ip: IpAddr, now: Instant) -> Result<Permit, Refusal> {
        let source = Source::of(ip);
        let i = &self.inner;
        let mut st = self.state();
        let held = st.open.get(&source).copied().unwrap_or(0);
        let refusal = if st.total >= i.max_total {
            Refusal::Total { limit: i.max_total }
        } else if held >= i.max_per_source {
            Refusal::PerSource {
                source,
                limit: i.max_per_source,
            }
        } else {
            *st.open.entry(source).or_insert(0) += 1;
            st.total += 1;
            return Ok(Permit {
                inner: self.inner.clone(),
                source,
            });
        };
        let report = st.log.note(now);
        drop(st);
        if let Some(refused) = report {
            tracing::warn!(
                refused,
                "connection limit reached: refused {refused} connection(s) since the last such line (at most one every {}s); latest: {refusal}",
                LOG_EVERY.as_secs()
            );
        }
        Err(refusal)
    }

    /// Connections open right now.
    pub fn open(&self) -> u32 {
        self.state().total
    }

    /// Connections open right now from `ip`'s [`Source`].
    pub fn open_from(&self, ip: IpAddr) -> u32 {
        self.state().open.get(&Source::of(ip)).copied().unwrap_or(0)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.inner.state)
    }
}

// Every update is a single counter change, consistent even if a panic
// interrupted another thread; admission must keep working after one.
fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One admitted connection; releases its slot when dropped.
pub struct Permit {
    inner: Arc<Inner>,
    source: Source,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("source", &self.source)
            .finish()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut st = lock(&self.inner.state);
        st.total = st.total.saturating_sub(1);
        if let Some(n) = st.open.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                st.open.remove(&self.source);
            }
        }
    }
}

/// Decides when a refusal is logged: the first one at once, then at most
/// one line per [`LOG_EVERY`], carrying the count since the previous line.
#[derive(Debug, Default)]
struct RefusalLog {
    last: Option<Instant>,
    unreported: u64,
}

impl RefusalLog {
    /// Notes one refusal at `now`; returns how many refusals to report if a
    /// line is due.
    fn note(&mut self, now: Instant) -> Option<u64> {
        self.unreported += 1;
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < LOG_EVERY)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unreported))
    }
}

pin_project_lite::pin_project! {
    /// An I/O object that holds its connection's [`Permit`] for as long as
    /// it lives, including after an HTTP upgrade hands it to a tunnel.
    pub struct Held<T> {
        #[pin]
        io: T,
        permit: Permit,
    }
}

impl<T> Held<T> {
    pub fn new(io: T, permit: Permit) -> Held<T> {
        Held { io, permit }
    }

    pub fn get_ref(&self) -> &T {
        &self.io
    }
}

impl<T: AsyncRead> AsyncRead for Held<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl<T: AsyncWrite> AsyncWrite for Held<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
