//! OAuth 2.0 over HTTP on `--http-listen` (docs/oauth.md), for gateways
//! and standard OAuth libraries; the gRPC API stays the primary contract.
//!
//! - `POST /oauth2/introspect` (RFC 7662): `{"active": true, …claims}` or
//!   `{"active": false}` for any token that is not active (expired,
//!   revoked, forged, malformed, unknown, a refresh token). Caller
//!   credentials required; the callers file's `allow` name is `Verify`.
//! - `POST /oauth2/revoke` (RFC 7009): an access or refresh token; 200 for
//!   any well-formed request. Caller credentials required (`Revoke`).
//! - `POST /oauth2/token` with `grant_type=refresh_token` (RFC 6749 §6):
//!   the refresh token is the credential (public clients), so no caller
//!   credentials; the per-subject refresh budget applies. A `DPoP` header
//!   is the proof of a DPoP-bound session (RFC 9449 §5).
//! - `POST /oauth2/token` with
//!   `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693
//!   §2): Exchange over HTTP; caller credentials required (`Exchange`).
//! - `GET /.well-known/oauth-authorization-server` (RFC 8414) and
//!   `/.well-known/openid-configuration` (the same document: Tessera is no
//!   OpenID provider, but many libraries look only there), and the JWK set
//!   at `/.well-known/jwks.json`.
//!
//! Callers authenticate with HTTP Basic `name:api-key` (RFC 6749 §2.3.1,
//! each part form-encoded), the `x-tessera-key` header, or a client
//! certificate, against the same callers file as the gRPC port.
//!
//! Input: bodies over [`MAX_FORM_BYTES`] are refused (413), a
//! `Content-Type` other than `application/x-www-form-urlencoded` (415), a
//! parameter given twice (RFC 6749 §3.2) or bytes that are not UTF-8 (400).

use std::sync::Arc;

use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;

use crate::authority::Authority;
use crate::store::Store;
use crate::transport::callers::Callers;

mod answer;
mod client;
mod discovery;
mod exchange;
mod form;
mod introspect;
mod revoke;
mod token;

use answer::{answer, json_answer, json_response, Answer, OAuthError};
use client::basic_credentials;
use discovery::{jwks, metadata, preflight, tenant_jwks, tenant_metadata};
use form::{read_form, required, Form, FormRequest};
use introspect::introspect;
use revoke::revoke;
use token::token;

/// Largest form body accepted (bytes): a token is at most 8 KiB.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// The least time an inactive introspection answer takes (see
/// `introspection`): well above a signature check, so revoked, expired,
/// forged and malformed tokens all answer after it.
pub const INACTIVE_FLOOR: std::time::Duration = std::time::Duration::from_millis(2);

/// The caller name the token endpoint's refreshes carry in the audit trail.
const PUBLIC_CLIENT: &str = "oauth2/token";

/// What the OAuth port is told at start-up.
pub struct Settings {
    /// `--issuer`, the `issuer` of the metadata.
    pub issuer: String,
    /// The endpoints' base URL, without a trailing `/`.
    pub public_url: String,
    /// `--http-cors-origin` (`*` = any).
    pub cors_origins: Vec<String>,
    /// `Cache-Control` of the JWK set (`--jwks-max-age`).
    pub jwks_cache_control: String,
    /// Client certificates can authenticate callers (`--tls-client-ca`).
    pub client_certificates: bool,
    /// Serve `POST /oauth2/token` (`--http-token-endpoint`).
    pub token_endpoint: bool,
    /// Its budgets per client IP and overall (`--http-token-rate-per-ip`,
    /// `--http-token-rate`).
    pub token_rate_per_ip: Option<crate::store::RateLimit>,
    pub token_rate: Option<crate::store::RateLimit>,
}

struct OAuth<S: Store> {
    authority: Arc<Authority<S>>,
    callers: Callers,
    metadata: String,
    /// The metadata document, whose `issuer` and `jwks_uri` a tenant's
    /// (`/t/{tenant}/...`) replaces.
    tenant_metadata: Value,
    public_url: String,
    token_url: String,
    cors_origins: Vec<String>,
    jwks_cache_control: String,
    token_rate_per_ip: Option<crate::store::RateLimit>,
    token_rate: Option<crate::store::RateLimit>,
}

/// The OAuth endpoints as a router (served by `web::serve`).
pub fn router<S: Store>(
    authority: Arc<Authority<S>>,
    callers: Callers,
    settings: Settings,
) -> Router {
    let base = &settings.public_url;
    let document = discovery::metadata_document(&settings);
    let state = Arc::new(OAuth {
        authority,
        callers,
        metadata: document.to_string(),
        tenant_metadata: document,
        public_url: base.clone(),
        token_url: format!("{base}/oauth2/token"),
        cors_origins: settings.cors_origins,
        jwks_cache_control: settings.jwks_cache_control,
        token_rate_per_ip: settings.token_rate_per_ip,
        token_rate: settings.token_rate,
    });
    let mut router = Router::new()
        .route("/oauth2/introspect", post(introspect::<S>))
        .route("/oauth2/revoke", post(revoke::<S>));
    if settings.token_endpoint {
        router = router.route("/oauth2/token", post(token::<S>).options(preflight::<S>));
    }
    router
        .merge(well_known(get(metadata::<S>), get(jwks::<S>)))
        // A tenant's issuer and keys (`--tenants`), under the same names.
        .nest(
            "/t/{tenant}",
            well_known(get(tenant_metadata::<S>), get(tenant_jwks::<S>)),
        )
        .route_layer(axum::middleware::from_fn(count))
        .route_layer(axum::middleware::from_fn(traced))
        .with_state(state)
}

/// The discovery documents (RFC 8414, and OpenID's name for the same) and
/// the JWK set, each with its CORS preflight.
fn well_known<S: Store>(
    metadata: axum::routing::MethodRouter<Arc<OAuth<S>>>,
    jwks: axum::routing::MethodRouter<Arc<OAuth<S>>>,
) -> Router<Arc<OAuth<S>>> {
    let metadata = metadata.options(preflight::<S>);
    Router::new()
        .route("/.well-known/oauth-authorization-server", metadata.clone())
        .route("/.well-known/openid-configuration", metadata)
        .route("/.well-known/jwks.json", jwks.options(preflight::<S>))
}

/// `tessera_http_requests_total{path, status}` and the duration histogram
/// of every request to a known path (unknown paths are not labelled: no
/// cardinality for a scanner to blow up).
async fn count(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let path = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("", |p| p.as_str())
        .to_owned();
    let start = std::time::Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(crate::telemetry::HTTP_DURATION, "path" => path.clone())
        .record(start.elapsed().as_secs_f64());
    metrics::counter!(crate::telemetry::HTTP_REQUESTS, "path" => path, "status" => status)
        .increment(1);
    response
}

/// A server span around every request to a known path, with tracing on
/// (src/trace.rs), parented on the request's `traceparent`.
async fn traced(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if !crate::trace::on() {
        return next.run(req).await;
    }
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("", |p| p.as_str());
    let Some(span) = crate::trace::http_span(req.method(), route, req.headers()) else {
        return next.run(req).await;
    };
    let response = span.run(next.run(req)).await;
    span.http_status(response.status());
    response
}
