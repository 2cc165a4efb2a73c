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

use std::collections::HashMap;
use std::sync::Arc;
use tessera_core::wire::Rpc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use crate::authority::{Acting, Authority};
use crate::error::{Error, TokenError};
use crate::pb;
use crate::store::Store;
use crate::transport::callers::{Callers, TenantScope};
use crate::transport::web::Peer;

mod exchange;
mod token;
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
    let mut auth_methods = vec!["client_secret_basic"];
    if settings.client_certificates {
        auth_methods.push("tls_client_auth");
    }
    let mut document = json!({
        "issuer": settings.issuer,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "introspection_endpoint": format!("{base}/oauth2/introspect"),
        "revocation_endpoint": format!("{base}/oauth2/revoke"),
        // No authorization endpoint: sessions are issued over gRPC.
        "response_types_supported": [],
        // Without the token endpoint, no grant (an absent member would
        // mean RFC 8414's default, authorization_code and implicit).
        "grant_types_supported": [],
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "tls_client_certificate_bound_access_tokens": true,
    });
    if settings.token_endpoint {
        document["token_endpoint"] = json!(format!("{base}/oauth2/token"));
        document["grant_types_supported"] =
            json!(["refresh_token", tessera_core::wire::TOKEN_EXCHANGE_GRANT]);
        // Public clients send none; a caller of the callers file may
        // authenticate (presented credentials must then be right).
        // (A client certificate there binds a session, RFC 8705 §3; it
        // does not authenticate a client: no `tls_client_auth`.)
        document["token_endpoint_auth_methods_supported"] =
            json!(["none", "client_secret_basic", "client_secret_post"]);
        document["dpop_signing_alg_values_supported"] = json!(tessera_core::dpop::PROOF_ALGS);
    }
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
    let response = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    crate::trace::record_http_status(&span, response.status());
    response
}

// === answers ===

/// An OAuth error answer (RFC 6749 §5.2): `{"error", "error_description"}`.
#[derive(Debug)]
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    headers: Vec<(HeaderName, String)>,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
            headers: Vec::new(),
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    fn with_header(mut self, name: HeaderName, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// [`OAuthError::from_service`], or `invalid_request` with the reason
    /// for anything else (introspection, revocation, caller budgets).
    fn from_error(rpc: Rpc, e: &Error) -> Self {
        crate::trace::record_reason(e.reason());
        Self::from_service(rpc, e).unwrap_or_else(|| Self::invalid_request(e.reason()))
    }

    /// The answer to a failure of the authority itself (store, budget),
    /// the same on every endpoint.
    fn from_service(rpc: Rpc, e: &Error) -> Option<Self> {
        match e {
            Error::Store(_) | Error::Internal(_) | Error::Token(TokenError::Internal(_)) => {
                crate::error::log_failed(rpc, e);
                Some(Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "token store unavailable, retry later",
                ))
            }
            Error::RateLimited { retry_after } => {
                crate::error::log_failed(rpc, e);
                let seconds = retry_after.as_millis().div_ceil(1000).max(1);
                Some(
                    Self::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "temporarily_unavailable",
                        e.reason(),
                    )
                    .with_header(header::RETRY_AFTER, seconds.to_string()),
                )
            }
            _ => None,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "error_description": self.description });
        let mut response = json_response(self.status, body.to_string());
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

/// A JSON answer that no cache keeps (RFC 6749 §5.1, RFC 7662 §2.2).
fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        body,
    )
        .into_response()
}

type Answer = Result<Response, OAuthError>;

fn answer(result: Answer) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

// === input ===

/// A decoded form: each parameter once, UTF-8.
type Form = HashMap<String, String>;

/// Parse an `application/x-www-form-urlencoded` body strictly.
fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<Form, OAuthError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut parts = content_type.split(';');
    let mime = parts.next().unwrap_or("").trim();
    let charset_ok = parts.all(|p| match p.trim().split_once('=') {
        Some((k, v)) if k.trim().eq_ignore_ascii_case("charset") => {
            v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        }
        _ => true,
    });
    if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") || !charset_ok {
        return Err(OAuthError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded (UTF-8)",
        ));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| OAuthError::invalid_request("the body is not UTF-8"))?;
    let decode = |s: &str| {
        crate::authority::convert::percent_decode(s, true)
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| OAuthError::invalid_request("a parameter is not UTF-8 form encoding"))
    };
    let mut form = Form::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(name)?;
        if form.insert(name.clone(), decode(value)?).is_some() {
            return Err(OAuthError::invalid_request(format!(
                "parameter {:?} given more than once",
                name.chars().take(64).collect::<String>()
            )));
        }
    }
    Ok(form)
}

/// A form POST: the connection's peer, the headers, and the body, not yet
/// read: an endpoint that needs a caller authenticates it from the headers
/// first, so a caller without credentials never gets to send a body (and
/// `--http-request-timeout` bounds how long any body may take).
struct FormRequest {
    peer: Arc<Peer>,
    headers: HeaderMap,
    body: axum::body::Body,
}

impl<St: Send + Sync> axum::extract::FromRequest<St> for FormRequest {
    type Rejection = std::convert::Infallible;

    async fn from_request(
        req: axum::extract::Request,
        _state: &St,
    ) -> Result<Self, Self::Rejection> {
        let peer = req
            .extensions()
            .get::<Arc<Peer>>()
            .cloned()
            .unwrap_or_default();
        let (parts, body) = req.into_parts();
        Ok(FormRequest {
            peer,
            headers: parts.headers,
            body,
        })
    }
}

impl FormRequest {
    /// The caller (allowed `rpc`, budget spent) and its tenant scope, and
    /// only then the form.
    async fn authorized<S: Store>(
        self,
        o: &OAuth<S>,
        rpc: Rpc,
    ) -> Result<(String, TenantScope, Form), OAuthError> {
        let (caller, scope) = o.caller(&self.headers, &self.peer, rpc).await?;
        Ok((caller, scope, read_form(&self.headers, self.body).await?))
    }
}

/// Read and parse a form body of at most [`MAX_FORM_BYTES`] (413 over it).
async fn read_form(headers: &HeaderMap, body: axum::body::Body) -> Result<Form, OAuthError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_FORM_BYTES as u64) {
        return Err(too_large());
    }
    use futures::StreamExt as _;
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| OAuthError::invalid_request("the body could not be read"))?;
        if bytes.len() + chunk.len() > MAX_FORM_BYTES {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    parse_form(headers, &bytes)
}

fn too_large() -> OAuthError {
    OAuthError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request",
        format!("the body exceeds {MAX_FORM_BYTES} bytes"),
    )
}

fn required<'f>(form: &'f Form, name: &str) -> Result<&'f str, OAuthError> {
    form.get(name)
        .map(String::as_str)
        .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
}

// === callers ===

/// HTTP Basic credentials (RFC 7617), each part form-decoded (RFC 6749
/// §2.3.1): `(name, key)`. `Err` for a header that is Basic but broken.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, Vec<u8>)>, ()> {
    use base64::Engine as _;
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ())?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| ())?;
    let text = String::from_utf8(decoded).map_err(|_| ())?;
    let (name, key) = text.split_once(':').ok_or(())?;
    let name = crate::authority::convert::percent_decode(name, true)
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(())?;
    let key = crate::authority::convert::percent_decode(key, true).ok_or(())?;
    Ok(Some((name, key)))
}

impl<S: Store> OAuth<S> {
    /// The caller of a request to an endpoint that needs one, allowed to
    /// call `rpc`, with its `--caller-rate` budget spent, and its scope.
    async fn caller(
        &self,
        headers: &HeaderMap,
        peer: &Peer,
        rpc: Rpc,
    ) -> Result<(String, TenantScope), OAuthError> {
        let unauthenticated = || {
            OAuthError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "caller authentication failed",
            )
            .with_header(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"tessera\"".to_owned(),
            )
        };
        let basic = basic_credentials(headers).map_err(|()| unauthenticated())?;
        let header_key = headers
            .get(tessera_core::wire::API_KEY_HEADER)
            .map(|v| v.as_bytes());
        let key = basic.as_ref().map(|(_, k)| k.as_slice()).or(header_key);
        let ip = peer.addr.map(|a| a.ip().to_string()).unwrap_or_default();
        let (name, scope) =
            match self
                .callers
                .authorize_scoped(rpc.as_str(), key, &peer.identities, &ip)
            {
                Ok(None) => ("anonymous".to_owned(), TenantScope::All),
                Ok(Some((found, scope))) => {
                    // Basic names the caller: the key must be that caller's.
                    if basic.as_ref().is_some_and(|(name, _)| *name != found) {
                        return Err(unauthenticated());
                    }
                    (found, scope)
                }
                Err(Error::CallerNotAllowed) => {
                    return Err(OAuthError::new(
                        StatusCode::FORBIDDEN,
                        "unauthorized_client",
                        format!("this caller may not call {rpc}"),
                    ))
                }
                Err(_) => return Err(unauthenticated()),
            };
        let rates = &self.authority.policy.caller_rates;
        if let Some(limit) = crate::transport::caller_limits::budget_for(rates, rpc) {
            let spent = crate::authority::caller::charge(
                self.authority.store.as_ref(),
                limit,
                (&name, &scope.label()),
                rpc,
            )
            .await;
            if let Err(e) = spent {
                return Err(OAuthError::from_error(rpc, &e));
            }
        }
        Ok((name, scope))
    }

    /// CORS (`--http-cors-origin`): the allowed origin of the request, if any.
    fn allowed_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        let text = origin.to_str().ok()?;
        self.cors_origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(text))
            .then(|| origin.clone())
    }

    fn with_cors(&self, headers: &HeaderMap, mut response: Response) -> Response {
        if self.cors_origins.is_empty() {
            return response;
        }
        let h = response.headers_mut();
        h.insert(header::VARY, HeaderValue::from_static("origin"));
        if let Some(origin) = self.allowed_origin(headers) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("dpop-nonce, www-authenticate"),
            );
        }
        response
    }
}

// === endpoints ===

async fn introspect<S: Store>(State(o): State<Arc<OAuth<S>>>, req: FormRequest) -> Response {
    answer(introspection(&o, req).await)
}

async fn introspection<S: Store>(o: &OAuth<S>, req: FormRequest) -> Answer {
    let (caller, scope, form) = req.authorized(o, Rpc::Verify).await?;
    let token = required(&form, "token")?;
    // `token_type_hint` is optional and needs no use: a refresh token is
    // never active here (it is no JWT), an access token is looked up alike.
    let started = tokio::time::Instant::now();
    // Another tenant's token is inactive for a scoped caller (RFC 7662
    // §2.2), after the same floor as any inactive answer.
    let who = Acting::new(Rpc::Verify, &caller, &scope);
    let verified = o
        .authority
        .introspect(token, &who)
        .await
        .map_err(|e| OAuthError::from_error(Rpc::Verify, &e))?;
    let Some(v) = verified else {
        metrics::counter!(crate::telemetry::INTROSPECTIONS, "active" => "false").increment(1);
        // A genuine token seen before answers from the verified-token
        // cache in microseconds, a forged one only after a failed
        // signature check: the time would tell the two apart although the
        // answer does not. Every inactive answer waits for the same floor.
        tokio::time::sleep_until(started + INACTIVE_FLOOR).await;
        return Ok(json_response(
            StatusCode::OK,
            r#"{"active":false}"#.to_owned(),
        ));
    };
    metrics::counter!(crate::telemetry::INTROSPECTIONS, "active" => "true").increment(1);
    let mut body = Map::new();
    body.insert("active".into(), Value::Bool(true));
    let c = &**v;
    let dpop_bound = c.cnf.as_ref().is_some_and(|cnf| cnf.jkt.is_some());
    for (name, value) in [
        ("sub", json!(c.sub)),
        ("aud", json!(c.aud)),
        ("iss", json!(c.iss)),
        ("exp", json!(c.exp)),
        ("iat", json!(c.iat)),
        ("nbf", json!(c.nbf)),
        ("jti", json!(c.jti)),
        ("scope", json!(c.scope)),
        // RFC 9449 §6.2: a DPoP-bound token's type is DPoP.
        (
            "token_type",
            json!(if dpop_bound { "DPoP" } else { "Bearer" }),
        ),
        ("tid", json!(c.tid)),
        ("sid", json!(c.sid)),
        ("roles", json!(c.roles)),
    ] {
        // Members with nothing to say are left out (RFC 7662 §2.2).
        let empty = match &value {
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => false,
        };
        if !empty {
            body.insert(name.into(), value);
        }
    }
    if let Some(cnf) = &c.cnf {
        body.insert("cnf".into(), json!(cnf));
    }
    // RFC 8693 §4.1: an exchanged token's actor chain, as the token has it.
    if let Some(act) = &c.act {
        body.insert("act".into(), json!(act));
    }
    Ok(json_response(
        StatusCode::OK,
        Value::Object(body).to_string(),
    ))
}

async fn revoke<S: Store>(State(o): State<Arc<OAuth<S>>>, req: FormRequest) -> Response {
    answer(revocation(&o, req).await)
}

async fn revocation<S: Store>(o: &OAuth<S>, req: FormRequest) -> Answer {
    let (caller, scope, form) = req.authorized(o, Rpc::Revoke).await?;
    let token = required(&form, "token")?;
    let request = pb::RevokeRequest {
        target: Some(pb::revoke_request::Target::Token(token.to_owned())),
        reason: "oauth2/revoke".into(),
        ..Default::default()
    };
    let who = Acting::new(Rpc::Revoke, &caller, &scope);
    match o.authority.revoke(request, &who).await {
        // RFC 7009 §2.2: an invalid token is no error; neither is one
        // that breaks a field bound (it cannot be ours).
        Ok(_) | Err(Error::InvalidArgument(_)) => Ok(json_response(StatusCode::OK, "{}".into())),
        // RFC 7009 §2.1: a token the client may not revoke is refused; the
        // description is the reason, as the gRPC ErrorInfo's.
        Err(e @ Error::TenantNotAllowed) => Err(OAuthError::new(
            StatusCode::FORBIDDEN,
            "unauthorized_client",
            e.reason(),
        )),
        Err(e) => Err(OAuthError::from_error(Rpc::Revoke, &e)),
    }
}

async fn metadata<S: Store>(State(o): State<Arc<OAuth<S>>>, headers: HeaderMap) -> Response {
    let response = (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        o.metadata.clone(),
    )
        .into_response();
    o.with_cors(&headers, response)
}

async fn jwks<S: Store>(State(o): State<Arc<OAuth<S>>>, headers: HeaderMap) -> Response {
    let response = crate::transport::admin::jwks_response(&o.authority.keys, &o.jwks_cache_control);
    o.with_cors(&headers, response)
}

/// The answer of a `/t/{tenant}/...` path: `answer(jwks, issuer)` with the
/// tenant's keys (its own, else the default ones) and issuer, with CORS; a
/// name Issue would refuse as a tenant is answered 404, as an unknown path.
fn for_tenant<S: Store>(
    o: &OAuth<S>,
    tenant: &str,
    headers: &HeaderMap,
    answer: impl FnOnce(String, String) -> Response,
) -> Response {
    if !crate::authority::tenant_name_ok(tenant) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let (jwks, issuer) = o.authority.jwks_of(tenant);
    o.with_cors(headers, answer(jwks, issuer))
}

/// `/t/{tenant}/.well-known/openid-configuration`: the metadata with the
/// tenant's issuer (its own, else `--issuer`) and its JWK set's URL.
async fn tenant_metadata<S: Store>(
    State(o): State<Arc<OAuth<S>>>,
    axum::extract::Path(tenant): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    for_tenant(&o, &tenant, &headers, |_, issuer| {
        let mut document = o.tenant_metadata.clone();
        document["issuer"] = json!(issuer);
        document["jwks_uri"] = json!(format!(
            "{}/t/{}/.well-known/jwks.json",
            o.public_url,
            encode_path_segment(&tenant)
        ));
        (
            [
                (header::CONTENT_TYPE, "application/json"),
                // Short: a reload (SIGHUP) may change a tenant's issuer.
                (header::CACHE_CONTROL, "public, max-age=300"),
            ],
            document.to_string(),
        )
            .into_response()
    })
}

/// `/t/{tenant}/.well-known/jwks.json`: the tenant's own keys only, else
/// the default keys (which sign every tenant without its own).
async fn tenant_jwks<S: Store>(
    State(o): State<Arc<OAuth<S>>>,
    axum::extract::Path(tenant): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    for_tenant(&o, &tenant, &headers, |jwks, _| {
        crate::transport::admin::jwks_body(jwks, &o.jwks_cache_control)
    })
}

/// RFC 3986 §3.3: a path segment, every byte but the unreserved ones
/// percent-encoded.
fn encode_path_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A CORS preflight: 204 with the allowed method and headers for an
/// allowed origin, 403 for any other.
async fn preflight<S: Store>(State(o): State<Arc<OAuth<S>>>, headers: HeaderMap) -> Response {
    if o.allowed_origin(&headers).is_none() {
        return StatusCode::FORBIDDEN.into_response();
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, dpop"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    o.with_cors(&headers, response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form_headers(content_type: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        h
    }

    #[test]
    fn forms_parse_strictly() {
        let h = form_headers("application/x-www-form-urlencoded; charset=UTF-8");
        let form = parse_form(&h, b"token=a%2Bb+c&token_type_hint=access_token&").unwrap();
        assert_eq!(form["token"], "a+b c");
        assert_eq!(form["token_type_hint"], "access_token");
        for bad in [
            &b"token=a&token=b"[..],
            b"token=%ff",
            b"token=%zz",
            b"token=%4",
            b"token=\xff",
        ] {
            let e = parse_form(&h, bad).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad:?}");
            assert_eq!(e.error, "invalid_request");
        }
        for content_type in [
            "application/json",
            "text/plain",
            "application/x-www-form-urlencoded; charset=latin1",
        ] {
            let e = parse_form(&form_headers(content_type), b"token=a").unwrap_err();
            assert_eq!(
                e.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{content_type}"
            );
        }
        assert!(parse_form(&HeaderMap::new(), b"token=a").is_err());
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        use base64::Engine as _;
        let mut h = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("gate%3Away:k%2By");
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {encoded}").parse().unwrap(),
        );
        assert_eq!(
            basic_credentials(&h),
            Ok(Some(("gate:way".to_owned(), b"k+y".to_vec())))
        );
        h.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert_eq!(basic_credentials(&h), Err(()));
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(basic_credentials(&h), Ok(None));
    }
}
