//! What an unauthenticated peer can make the server hold: connections,
//! idle time, streams. `docs/security.md` lists every limit and its default.
//!
//! - [`incoming`]: accepts at most `max` connections at a time per port (the
//!   next accept waits for one to close, so file descriptors and memory stay
//!   bounded), with `TCP_NODELAY` (small gRPC frames must not wait for
//!   Nagle's algorithm: it added a delayed-ACK stall of ~16 ms to p99).
//! - [`GuardedIo`]: closes a connection that has sent nothing for the idle
//!   timeout — before, during or after its TLS and HTTP/2 handshakes. So an
//!   idle socket, a half-sent preface or a stalled TLS handshake is dropped.
//!   An established HTTP/2 connection that is merely quiet stays: the server
//!   pings it more often than the idle timeout, and a live peer answers.
//! - [`StreamCapLayer`]: global caps on long-lived streams (revocation
//!   watchers, health watches); over a cap: `RESOURCE_EXHAUSTED`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::transport::layer::{Wrap, Wrapped};
use tokio::time::{Instant, Sleep};

use crate::error::{to_status, Error};

/// Open connections, by port (`grpc`, `admin`).
pub const OPEN_CONNECTIONS: &str = "tessera_open_connections";

/// Accept connections on `listener`, at most `max` open at once, each
/// closed after `idle` without a byte from the peer. Accept errors (out of
/// file descriptors, a peer that reset before accept) are logged and
/// retried after a short pause; they never end the stream.
pub(crate) fn incoming(
    listener: TcpListener,
    max: usize,
    idle: Duration,
    port: &'static str,
) -> impl Stream<Item = io::Result<GuardedIo<TcpStream>>> + Send + 'static {
    let slots = Arc::new(Semaphore::new(max.max(1)));
    async_stream::stream! {
        loop {
            // Wait for a slot before accepting: at the cap, new peers wait
            // in the kernel's backlog instead of taking descriptors.
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break; // never closed
            };
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    yield Ok(GuardedIo::new(stream, idle, permit, port));
                }
                Err(e) => {
                    tracing::warn!(error = %e, port, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// A connection with an idle timeout that holds one slot of its port.
pub(crate) struct GuardedIo<T> {
    inner: T,
    idle: Duration,
    last_read: Instant,
    timer: Pin<Box<Sleep>>,
    port: &'static str,
    _slot: OwnedSemaphorePermit,
}

impl<T> GuardedIo<T> {
    fn new(inner: T, idle: Duration, slot: OwnedSemaphorePermit, port: &'static str) -> Self {
        metrics::gauge!(OPEN_CONNECTIONS, "port" => port).increment(1.0);
        let now = Instant::now();
        GuardedIo {
            inner,
            idle,
            last_read: now,
            timer: Box::pin(tokio::time::sleep_until(now + idle)),
            port,
            _slot: slot,
        }
    }
}

impl GuardedIo<tokio::net::TcpStream> {
    /// The peer's address.
    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner.peer_addr().ok()
    }
}

impl<T> Drop for GuardedIo<T> {
    fn drop(&mut self) {
        metrics::gauge!(OPEN_CONNECTIONS, "port" => self.port).decrement(1.0);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    // Only a clock read per read: the timer is moved lazily.
                    this.last_read = Instant::now();
                }
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }
        loop {
            if this.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let deadline = this.last_read + this.idle;
            if deadline <= Instant::now() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle past --idle-timeout",
                )));
            }
            this.timer.as_mut().reset(deadline);
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for GuardedIo<TcpStream> {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

// === impl StreamCapLayer ===

/// Global caps on concurrent calls of some methods (by gRPC path); a call
/// over its cap is refused with `RESOURCE_EXHAUSTED`/`RATE_LIMITED` before
/// it runs. The slot is held by the response body, so a stream holds it
/// until it ends, however it ends.
pub(crate) type StreamCapLayer = Wrap<StreamCapList>;

/// The service [`StreamCapLayer`] makes.
pub(crate) type StreamCaps<S> = Wrapped<StreamCapList, S>;

/// The capped methods (by gRPC path) and their free slots.
#[derive(Clone, Default)]
pub(crate) struct StreamCapList(Arc<Vec<(&'static str, Arc<Semaphore>)>>);

impl StreamCapLayer {
    /// Cap the calls of `path` (e.g. `/grpc.health.v1.Health/Watch`) at `max`.
    pub fn cap(mut self, path: &'static str, max: usize) -> Self {
        Arc::make_mut(&mut (self.0).0).push((path, Arc::new(Semaphore::new(max))));
        self
    }
}

/// How long a refused stream is told to wait before trying again.
const STREAM_RETRY_AFTER: Duration = Duration::from_secs(1);

impl<S, B> tower::Service<http::Request<B>> for StreamCaps<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    // Calls of other methods pass through without an allocation.
    type Future = futures::future::Either<
        S::Future,
        futures::future::BoxFuture<'static, Result<S::Response, S::Error>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path();
        let Some((name, slots)) = self.state.0.iter().find(|(p, _)| *p == path) else {
            return futures::future::Either::Left(self.inner.call(req));
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::info!(method = name, "stream cap reached; refusing");
            let status = to_status(&Error::RateLimited {
                retry_after: STREAM_RETRY_AFTER,
            });
            return futures::future::Either::Right(Box::pin(futures::future::ready(Ok(
                status.into_http()
            ))));
        };
        let call = self.inner.call(req);
        futures::future::Either::Right(Box::pin(async move {
            let response = call.await?;
            Ok(response.map(|body| {
                tonic::body::Body::new(SlotBody {
                    inner: body,
                    _slot: slot,
                })
            }))
        }))
    }
}

/// A response body that holds a stream slot until it is dropped.
struct SlotBody<B> {
    inner: B,
    _slot: OwnedSemaphorePermit,
}

impl<B: http_body::Body + Unpin> http_body::Body for SlotBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
