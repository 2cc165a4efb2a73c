//! Admin HTTP on `--admin-listen`: `/livez` and its older name `/healthz`
//! (the process is alive: 200 whatever the store does), `/readyz` (store answers and the revocation cache is in sync),
//! `/.well-known/jwks.json`, `/metrics` (Prometheus text).

use std::future::Future;
use std::sync::Arc;

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
    jwks_response(&s.keys, &s.jwks_cache_control)
}

/// `/t/{tenant}/.well-known/jwks.json`: a tenant's keys (its own under
/// `--tenants`, else the default ones), as the OAuth port serves them; a
/// name Issue would refuse as a tenant: 404.
async fn tenant_jwks(
    State(s): State<AdminState>,
    axum::extract::Path(tenant): axum::extract::Path<String>,
) -> Response {
    if !crate::authority::tenant_name_ok(&tenant) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let keys = s.keys.current();
    jwks_body(
        keys.signer_for(&tenant).jwks_json().to_owned(),
        &s.jwks_cache_control,
    )
}

/// The JWK set in force, as `/.well-known/jwks.json` serves it (here and on
/// the OAuth port).
pub(crate) fn jwks_response(keys: &KeyRing, cache_control: &str) -> Response {
    jwks_body(
        keys.current().default_keys().jwks_json().to_owned(),
        cache_control,
    )
}

/// A JWK set as an HTTP answer.
pub(crate) fn jwks_body(jwks_json: String, cache_control: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/jwk-set+json".to_owned()),
            (header::CACHE_CONTROL, cache_control.to_owned()),
        ],
        jwks_json,
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

/// Serve the admin endpoints until `shutdown` resolves: HTTP/1 with a
/// header-read timeout, an idle timeout and a connection cap (the port is
/// reachable by probes and scrapers, so by anyone who can reach those).
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    limits: crate::transport::web::HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let app = Router::new()
        .route("/livez", get(healthz))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/t/{tenant}/.well-known/jwks.json", get(tenant_jwks))
        .route("/metrics", get(metrics))
        .with_state(state);
    crate::transport::web::serve(listener, app, limits, None, "admin", shutdown).await;
}
