//! HTTP/1 serving shared by the admin port and the OAuth port: a
//! connection cap, an idle timeout, a header-read timeout, a deadline for
//! each whole request (`--http-request-timeout`), optional TLS
//! (handshake bounded by the header-read timeout), and the peer of each
//! connection as a request extension ([`Peer`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::transport::callers::PeerIdentities;

/// Connection limits of an HTTP port (docs/security.md).
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub header_read_timeout: Duration,
    /// The whole request, its body included, once its head is in
    /// (`--http-request-timeout`).
    pub request_timeout: Duration,
}

/// Who is at the other end of a connection.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    /// The TCP peer (a proxy in front is the peer: no forwarded header is trusted).
    pub addr: Option<SocketAddr>,
    /// What the verified client certificate proves (TLS with `--tls-client-ca`).
    pub identities: PeerIdentities,
    /// The RFC 8705 `x5t#S256` of that certificate: a certificate-bound
    /// session refreshes on the token endpoint only with it.
    pub cert_thumbprint: Option<String>,
}

/// How long a shutdown waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(5);

/// Serve `app` on `listener` until `shutdown` resolves. Each request
/// carries an `Arc<Peer>` extension.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    tls: Option<TlsAcceptor>,
    port: &'static str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use futures::StreamExt;
    let incoming = crate::transport::limits::incoming(
        listener,
        limits.max_connections,
        limits.idle_timeout,
        port,
    );
    tokio::pin!(incoming, shutdown);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let io = tokio::select! {
            io = incoming.next() => match io {
                Some(Ok(io)) => io,
                _ => break,
            },
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let tls = tls.clone();
        let graceful = graceful.watcher();
        // The TLS handshake runs in the connection's task, not the accept loop.
        tokio::spawn(async move {
            let addr = io.peer_addr();
            match tls {
                None => {
                    let peer = Peer {
                        addr,
                        ..Peer::default()
                    };
                    connection(io, app, peer, limits, graceful).await;
                }
                Some(tls) => {
                    let handshake =
                        tokio::time::timeout(limits.header_read_timeout, tls.accept(io)).await;
                    let Ok(Ok(stream)) = handshake else {
                        tracing::debug!(port, "TLS handshake failed or timed out");
                        return;
                    };
                    let leaf = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|certs| certs.first());
                    let peer = Peer {
                        addr,
                        identities: leaf
                            .map(|leaf| {
                                crate::transport::callers::certificate_identities(leaf.as_ref())
                            })
                            .unwrap_or_default(),
                        cert_thumbprint: leaf
                            .map(|leaf| tessera_core::checks::cert_thumbprint(leaf.as_ref())),
                    };
                    connection(stream, app, peer, limits, graceful).await;
                }
            }
        });
    }
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(port, "HTTP connections still open at shutdown");
    }
}

/// 408, and the connection is not kept.
fn request_timed_out() -> axum::response::Response {
    use axum::response::IntoResponse as _;
    (
        http::StatusCode::REQUEST_TIMEOUT,
        [(http::header::CONNECTION, "close")],
        "request timed out\n",
    )
        .into_response()
}

async fn connection<IO>(
    io: IO,
    app: Router,
    peer: Peer,
    limits: HttpLimits,
    graceful: hyper_util::server::graceful::Watcher,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let peer = Arc::new(peer);
    let deadline = limits.request_timeout;
    // Every request is answered within the deadline, its body read
    // included: a body trickled a byte at a time (each byte resetting the
    // idle timer) cannot hold a connection slot past it. On the deadline
    // the answer is 408 with `Connection: close`, and the connection goes.
    let service = tower::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(peer.clone());
        let app = app.clone();
        async move {
            use tower::ServiceExt as _;
            match tokio::time::timeout(deadline, app.oneshot(req)).await {
                Ok(answer) => answer,
                Err(_) => {
                    metrics::counter!(crate::telemetry::HTTP_REQUEST_TIMEOUTS).increment(1);
                    Ok(request_timed_out())
                }
            }
        }
    });
    let service = hyper_util::service::TowerToHyperService::new(service);
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service);
    if let Err(e) = graceful.watch(connection).await {
        tracing::debug!(error = %e, "HTTP connection ended");
    }
}
