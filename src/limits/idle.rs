//! Serving one hyper connection until it stops making progress.
//!
//! hyper bounds some of this itself once it has a timer: HTTP/1 request
//! heads (`header_read_timeout`, which also covers the wait between
//! keep-alive requests) and unanswered HTTP/2 PINGs. The rest is here:
//! - [`Activity`] counts requests in flight on one connection; [`Tracked`]
//!   wraps the connection's service so a request counts from its head until
//!   its response body has been sent or dropped ([`Guarded`]);
//! - [`serve_connection`] closes the connection once nothing was in flight
//!   for the idle timeout, or no request arrived by the first-request
//!   deadline (HTTP/2 prefaces, partial HTTP/2 headers and the HTTP version
//!   sniff of the auto builder have no timer of their own);
//! - [`Deadlined`] ends a request body that has not fully arrived within
//!   `read_body` of its head (a body trickled a byte at a time).

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use super::Timeouts;

/// How long a connection told to close (HTTP/2 GOAWAY) may take to finish
/// before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

type BoxError = Box<dyn StdError + Send + Sync>;

/// What a service behind [`Tracked`] receives from hyper.
pub type IncomingRequest = Request<Deadlined<hyper::body::Incoming>>;

/// A public-port style builder: HTTP/1 and HTTP/2 (prior knowledge), with
/// the header timeout and keep-alive PINGs of `t`.
pub fn auto_builder(t: &Timeouts) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(t.read_header);
    b.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(t.keepalive_interval)
        .keep_alive_timeout(t.keepalive_timeout);
    b
}

/// An HTTP/2-only builder (Noise tunnels, the admin socket) with the
/// keep-alive PINGs of `t`.
pub fn http2_builder(t: &Timeouts) -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .keep_alive_interval(t.keepalive_interval)
        .keep_alive_timeout(t.keepalive_timeout);
    b
}

/// Requests in flight on one connection. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Activity {
    tx: Arc<watch::Sender<usize>>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

impl Activity {
    pub fn new() -> Activity {
        Activity {
            tx: Arc::new(watch::Sender::new(0)),
        }
    }

    /// Marks a request in flight until the returned guard is dropped.
    pub fn begin(&self) -> Busy {
        self.tx.send_modify(|n| *n += 1);
        Busy {
            tx: self.tx.clone(),
        }
    }

    pub fn in_flight(&self) -> usize {
        *self.tx.borrow()
    }

    /// Resolves once nothing has been in flight since `first_request_by`
    /// (if no request ever came) or for `idle` (after the last change).
    pub async fn until_idle(&self, first_request_by: Instant, idle: Duration) {
        let mut rx = self.tx.subscribe();
        let mut deadline = first_request_by;
        loop {
            let busy = *rx.borrow_and_update() > 0;
            if busy {
                if rx.changed().await.is_err() {
                    // Unreachable: `self` holds the sender.
                    std::future::pending::<()>().await;
                }
            } else {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => return,
                    _ = rx.changed() => {}
                }
            }
            // A request began or ended: the idle clock restarts.
            deadline = Instant::now() + idle;
        }
    }
}

/// One request in flight (see [`Activity::begin`]).
#[derive(Debug)]
pub struct Busy {
    tx: Arc<watch::Sender<usize>>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.tx.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Drives `conn` to its end, or, once `activity` has been idle (see
/// [`Activity::until_idle`]), asks it to close (HTTP/2 GOAWAY, HTTP/1
/// close after the current exchange) and drops it after a short grace.
pub async fn serve_connection<C>(
    conn: C,
    activity: &Activity,
    first_request_by: Instant,
    idle: Duration,
) -> Result<(), C::Error>
where
    C: GracefulConnection,
{
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        biased;
        r = conn.as_mut() => return r,
        () = activity.until_idle(first_request_by, idle) => {}
    }
    tracing::debug!("closing a connection without progress");
    conn.as_mut().graceful_shutdown();
    match tokio::time::timeout(CLOSE_GRACE, conn).await {
        Ok(r) => r,
        Err(_) => Ok(()),
    }
}

/// A hyper service wrapper that counts each request in an [`Activity`]
/// until its response body is done, and bounds the request body's arrival
/// ([`Deadlined`]).
#[derive(Clone, Debug)]
pub struct Tracked<S> {
    inner: S,
    activity: Activity,
    read_body: Duration,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, activity: Activity, read_body: Duration) -> Tracked<S> {
        Tracked {
            inner,
            activity,
            read_body,
        }
    }
}

impl<S, ReqB, ResB> hyper::service::Service<Request<ReqB>> for Tracked<S>
where
    S: hyper::service::Service<Request<Deadlined<ReqB>>, Response = Response<ResB>>,
{
    type Response = Response<Guarded<ResB>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn call(&self, req: Request<ReqB>) -> Self::Future {
        let busy = self.activity.begin();
        let read_body = self.read_body;
        let req = req.map(|body| Deadlined::new(body, read_body));
        TrackedFuture {
            inner: self.inner.call(req),
            busy: Some(busy),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Tracked`]: hands the request's guard to the body.
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        busy: Option<Busy>,
    }
}

impl<F, ResB, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<Guarded<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let resp = ready!(this.inner.poll(cx))?;
        let busy = this.busy.take();
        Poll::Ready(Ok(resp.map(|body| Guarded { body, _busy: busy })))
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted until it is done.
    pub struct Guarded<B> {
        #[pin]
        body: B,
        _busy: Option<Busy>,
    }
}

impl<B: Body> Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("request body not received within {0:?}")]
pub struct BodyTimeout(pub Duration);

pin_project_lite::pin_project! {
    /// A request body that fails with [`BodyTimeout`] unless it has fully
    /// arrived within its limit of the request's head.
    pub struct Deadlined<B> {
        #[pin]
        body: B,
        #[pin]
        deadline: Sleep,
        limit: Duration,
    }
}

impl<B> Deadlined<B> {
    pub fn new(body: B, limit: Duration) -> Deadlined<B> {
        Deadlined {
            body,
            deadline: tokio::time::sleep(limit),
            limit,
        }
    }
}

impl<B> Body for Deadlined<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.body.poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        ready!(this.deadline.poll(cx));
        Poll::Ready(Some(Err(Box::new(BodyTimeout(*this.limit)))))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests;
