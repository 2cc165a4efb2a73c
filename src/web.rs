//! HTTP/1 serving shared by the admin port and the OAuth port: a
//! connection cap, an idle timeout, a header-read timeout, optional TLS
//! (handshake bounded by the header-read timeout), and the peer of each
//! connection as a request extension ([`Peer`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::callers::PeerIdentities;

/// Connection limits of an HTTP port (docs/security.md).
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub header_read_timeout: Duration,
}

impl HttpLimits {
    /// `max_connections` with the idle and header-read timeouts of `args`.
    pub fn new(max_connections: usize, args: &crate::config::ServeArgs) -> Self {
        HttpLimits {
            max_connections,
            idle_timeout: args.idle_timeout.0,
            header_read_timeout: args.header_read_timeout.0,
        }
    }
}

/// Who is at the other end of a connection.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    /// The TCP peer (a proxy in front is the peer: no forwarded header is trusted).
    pub addr: Option<SocketAddr>,
    /// What the verified client certificate proves (TLS with `--tls-client-ca`).
    pub identities: PeerIdentities,
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
    let incoming =
        crate::limits::incoming(listener, limits.max_connections, limits.idle_timeout, port);
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
                    let identities = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|certs| certs.first())
                        .map(|leaf| crate::callers::certificate_identities(leaf.as_ref()))
                        .unwrap_or_default();
                    let peer = Peer { addr, identities };
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
    let service = tower::ServiceBuilder::new()
        .map_request(move |mut req: http::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(peer.clone());
            req
        })
        .service(app);
    let service = hyper_util::service::TowerToHyperService::new(service);
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service);
    if let Err(e) = graceful.watch(connection).await {
        tracing::debug!(error = %e, "HTTP connection ended");
    }
}
