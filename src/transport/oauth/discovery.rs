//! Discovery (RFC 8414, and OpenID's name for the same document), the JWK
//! sets (the default one and a tenant's under `/t/{tenant}/...`), and CORS
//! (`--http-cors-origin`) with its preflight.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{OAuth, Settings};
use crate::store::Store;

/// The metadata document (RFC 8414 §2) of the endpoints `settings`
/// serves: what a client library needs to find them and how to
/// authenticate.
pub(super) fn metadata_document(settings: &Settings) -> Value {
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
    document
}

pub(super) async fn metadata<S: Store>(
    State(o): State<Arc<OAuth<S>>>,
    headers: HeaderMap,
) -> Response {
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

pub(super) async fn jwks<S: Store>(State(o): State<Arc<OAuth<S>>>, headers: HeaderMap) -> Response {
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
pub(super) async fn tenant_metadata<S: Store>(
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
pub(super) async fn tenant_jwks<S: Store>(
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
pub(super) async fn preflight<S: Store>(
    State(o): State<Arc<OAuth<S>>>,
    headers: HeaderMap,
) -> Response {
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

impl<S: Store> OAuth<S> {
    /// CORS (`--http-cors-origin`): the allowed origin of the request, if any.
    pub(super) fn allowed_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        let text = origin.to_str().ok()?;
        self.cors_origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(text))
            .then(|| origin.clone())
    }

    pub(super) fn with_cors(&self, headers: &HeaderMap, mut response: Response) -> Response {
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
