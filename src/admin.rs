//! Admin HTTP on `--admin-listen`: `/healthz` (the process is alive),
//! `/readyz` (store answers and the revocation cache is in sync),
//! `/.well-known/jwks.json`, `/metrics` (Prometheus text).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::feed::Feed;
use crate::keys::KeyRing;

/// What `/readyz` needs to know.
#[derive(Clone)]
pub struct AdminState {
    pub keys: Arc<KeyRing>,
    pub feed: Arc<Feed>,
    /// Latest store health, kept by the health task.
    pub store_ok: tokio::sync::watch::Receiver<bool>,
    /// `Cache-Control` of the JWK set (`--jwks-max-age`).
    pub jwks_cache_control: String,
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<AdminState>) -> Response {
    let store = *s.store_ok.borrow();
    let feed = s.feed.in_sync();
    let body =
        serde_json::json!({ "store": store, "revocation_cache_in_sync": feed, "keys": true });
    let status = if store && feed {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn jwks(State(s): State<AdminState>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/jwk-set+json".to_owned()),
            (header::CACHE_CONTROL, s.jwks_cache_control.clone()),
        ],
        s.keys.current().jwks_json().to_owned(),
    )
        .into_response()
}

async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::render(),
    )
        .into_response()
}

/// Connection limits of the admin port (docs/security.md).
#[derive(Debug, Clone, Copy)]
pub struct AdminLimits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub header_read_timeout: Duration,
}

/// How long a shutdown waits for admin requests in flight.
const ADMIN_DRAIN: Duration = Duration::from_secs(5);

/// Serve the admin endpoints until `shutdown` resolves: HTTP/1 with a
/// header-read timeout, an idle timeout and a connection cap (the port is
/// reachable by probes and scrapers, so by anyone who can reach those).
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    limits: AdminLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use futures::StreamExt;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/metrics", get(metrics))
        .with_state(state);
    let incoming = crate::limits::incoming(
        listener,
        limits.max_connections,
        limits.idle_timeout,
        "admin",
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
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(hyper_util::rt::TokioIo::new(io), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "admin connection ended");
            }
        });
    }
    if tokio::time::timeout(ADMIN_DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("admin connections still open at shutdown");
    }
}
