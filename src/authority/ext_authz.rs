//! Envoy external authorization (`envoy.service.auth.v3.Authorization/Check`)
//! on the gRPC port: Envoy, Istio and other meshes ask Tessera about each
//! request, and Tessera answers with the same code path as `Verify`.
//!
//! - The token is the `authorization: Bearer …` header; per-route
//!   requirements come from `context_extensions`: `audience`, `scopes`
//!   (space-separated), `consistency` (`strong`), `renew` (`true`).
//! - DPoP (RFC 9449): the `dpop` header is the proof, for the request's
//!   method and `scheme://host/path`. Certificate-bound tokens (RFC 8705):
//!   the client certificate Envoy saw (`source.certificate`, URL-encoded
//!   PEM) gives the thumbprint.
//! - Allowed: `OkResponse` setting `x-tessera-subject`, `x-tessera-tenant`,
//!   `x-tessera-session`, `x-tessera-scopes`, `x-tessera-roles` and
//!   `x-tessera-actor` (the `act` chain of an exchanged token, a JSON array
//!   of the actors' `sub`, the current actor first) upstream
//!   (the prefix is `--ext-authz-header-prefix`; values a client sent under
//!   these names are overwritten), removing `authorization` with
//!   `--ext-authz-strip-authorization`, and a renewed token as
//!   `x-new-token` downstream.
//! - Denied: 401 (403 for a missing scope) with `WWW-Authenticate: Bearer
//!   error="invalid_token", error_description="…"` (RFC 6750 §3) and
//!   `x-tessera-reason`; 429 if a budget refused; 503 when Tessera cannot
//!   answer — never an allow. (A gateway over its own `--caller-rate Check`
//!   budget gets the gRPC `RESOURCE_EXHAUSTED` itself, which Envoy treats as
//!   a failure of the check: with `failure_mode_allow: false`, a denial.)
//!
//! The gateway is a caller like any other: `allow = ["Check"]`.

use envoy_types::ext_authz::v3::pb::{Authorization, CheckRequest, CheckResponse, HttpStatusCode};
use envoy_types::ext_authz::v3::{
    CheckRequestExt, CheckResponseExt, DeniedHttpResponseBuilder, OkHttpResponseBuilder,
};
use tessera_core::wire::Rpc;
use tonic::{Request, Response, Status};

use super::Authority;
use crate::error::Error;
use crate::pb;
use crate::store::Store;

/// The RFC 8705 thumbprint of the client certificate Envoy reports.
fn source_cert_thumbprint(req: &CheckRequest) -> Option<String> {
    let pem_text = &req.attributes.as_ref()?.source.as_ref()?.certificate;
    if pem_text.is_empty() {
        return None;
    }
    let block = pem::parse(crate::authority::convert::percent_decode(pem_text, false)?).ok()?;
    Some(tessera_core::checks::cert_thumbprint(block.contents()))
}

fn denied(status: HttpStatusCode, reason: &'static str, description: &str) -> CheckResponse {
    let mut http = DeniedHttpResponseBuilder::new();
    http.set_http_status(status);
    let challenge = if reason.is_empty() {
        // No credentials at all (RFC 6750 §3.1: no error code then).
        "Bearer".to_owned()
    } else if reason == tessera_core::wire::reason::SCOPE_MISSING {
        format!("Bearer error=\"insufficient_scope\", error_description=\"{description}\"")
    } else {
        format!("Bearer error=\"invalid_token\", error_description=\"{description}\"")
    };
    if matches!(
        status,
        HttpStatusCode::Unauthorized | HttpStatusCode::Forbidden
    ) {
        http.add_header("www-authenticate", challenge, None, false);
    }
    http.add_header(tessera_core::wire::REASON_HEADER, reason, None, false);
    crate::trace::record_reason(reason);
    let grpc_status = match status {
        HttpStatusCode::Forbidden => Status::permission_denied(description),
        HttpStatusCode::TooManyRequests => Status::resource_exhausted(description),
        HttpStatusCode::ServiceUnavailable => Status::unavailable(description),
        _ => Status::unauthenticated(description),
    };
    let mut response = CheckResponse::with_status(grpc_status);
    response.set_http_response(http);
    response
}

/// The client's token: the `authorization` header's `Bearer` (or `DPoP`)
/// credentials; else why a check without one is denied.
fn bearer_token(authorization: Option<&String>) -> Result<&str, &'static str> {
    let authorization = authorization.ok_or("no bearer token")?;
    authorization
        .strip_prefix("Bearer ")
        .or_else(|| authorization.strip_prefix("bearer "))
        .or_else(|| authorization.strip_prefix("DPoP "))
        .ok_or("not a bearer token")
}

/// The `Verify` a check stands for: `token`, the route's requirements
/// (`context_extensions`), and the `dpop` header's proof with the checked
/// request's method and `scheme://host/path` (neither without a proof).
fn verify_request(
    req: &CheckRequest,
    headers: &std::collections::HashMap<String, String>,
    token: &str,
) -> pb::VerifyRequest {
    let attributes = req.attributes.as_ref();
    let route = attributes.map(|a| &a.context_extensions);
    let ext = |k: &str| route.and_then(|r| r.get(k)).cloned().unwrap_or_default();
    let http = attributes
        .and_then(|a| a.request.as_ref())
        .and_then(|r| r.http.as_ref());
    let (method, url) = http.map_or((String::new(), String::new()), |h| {
        let scheme = if h.scheme.is_empty() {
            "https"
        } else {
            &h.scheme
        };
        (h.method.clone(), format!("{scheme}://{}{}", h.host, h.path))
    });
    let dpop_proof = headers.get("dpop").cloned().unwrap_or_default();
    pb::VerifyRequest {
        access_token: token.trim().to_owned(),
        audience: ext("audience"),
        required_scopes: ext("scopes")
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        consistency: if ext("consistency").eq_ignore_ascii_case("strong") {
            pb::Consistency::Strong as i32
        } else {
            pb::Consistency::Unspecified as i32
        },
        renew: ext("renew") == "true",
        http_method: if dpop_proof.is_empty() {
            String::new()
        } else {
            method
        },
        http_url: if dpop_proof.is_empty() {
            String::new()
        } else {
            url
        },
        dpop_proof,
        ..Default::default()
    }
}

/// The denial of a token `Verify` refused: 503 when Tessera cannot
/// answer, 403 for a missing scope or another tenant's token, 429 for a
/// budget, 401 otherwise.
fn refused(e: &Error) -> CheckResponse {
    let reason = e.reason();
    let description = e.to_string().replace('"', "'");
    let status = match e {
        Error::Store(_) | Error::Internal(_) => HttpStatusCode::ServiceUnavailable,
        Error::Token(tessera_core::error::TokenError::ScopeMissing) | Error::TenantNotAllowed => {
            HttpStatusCode::Forbidden
        }
        Error::RateLimited { .. } => HttpStatusCode::TooManyRequests,
        _ => HttpStatusCode::Unauthorized,
    };
    denied(status, reason, &description)
}

impl<S: Store> Authority<S> {
    async fn check_request(
        &self,
        req: CheckRequest,
        who: &super::tenancy::Acting<'_>,
    ) -> CheckResponse {
        let empty = Default::default();
        let headers = req.get_client_headers().unwrap_or(&empty);
        let token = match bearer_token(headers.get("authorization")) {
            Ok(token) => token,
            // No credentials at all (RFC 6750 §3.1): no reason, no error code.
            Err(description) => return denied(HttpStatusCode::Unauthorized, "", description),
        };
        let verify = verify_request(&req, headers, token);
        match self
            .verify(verify, who, || source_cert_thumbprint(&req))
            .await
        {
            Ok((response, renewed)) => self.allowed(response, renewed),
            Err(e) => refused(&e),
        }
    }

    /// The allowance of a verified token: the identity headers upstream
    /// (under `--ext-authz-header-prefix`, overwriting the client's), the
    /// `authorization` header removed with `--ext-authz-strip-authorization`,
    /// and a renewed token downstream.
    fn allowed(&self, response: pb::VerifyResponse, renewed: Option<String>) -> CheckResponse {
        let claims = response.claims.unwrap_or_default();
        let mut ok = OkHttpResponseBuilder::new();
        let prefix = &self.policy.ext_authz_header_prefix;
        for (name, value) in [
            ("subject", claims.subject),
            ("tenant", claims.tenant),
            ("session", claims.session_id),
            ("scopes", claims.scopes.join(" ")),
            ("roles", claims.roles.join(" ")),
            // The `act` chain of an exchanged token, as a JSON array
            // (a `sub` may hold spaces or commas); `[]` otherwise.
            (
                tessera_core::wire::ACTOR_HEADER_SUFFIX,
                serde_json::to_string(&claims.actors).unwrap_or_default(),
            ),
        ] {
            // Overwrite: a client cannot smuggle its own identity headers.
            ok.add_header(
                format!("{prefix}{name}"),
                value,
                Some(envoy_types::ext_authz::v3::pb::HeaderAppendAction::OverwriteIfExistsOrAdd),
                true,
            );
        }
        if self.policy.ext_authz_strip_authorization {
            ok.remove_header("authorization");
        }
        if let Some(token) = renewed {
            ok.add_response_header(tessera_core::wire::NEW_TOKEN_HEADER, token, None, false);
        }
        let mut response = CheckResponse::with_status(Status::ok("authorized"));
        response.set_http_response(ok);
        response
    }
}

#[tonic::async_trait]
impl<S: Store> Authorization for Authority<S> {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let (metadata, extensions, request) = request.into_parts();
        let caller = crate::authority::caller::caller_name(&extensions);
        let scope = crate::authority::scope::of(&extensions);
        let who = super::tenancy::Acting::new(Rpc::Check, caller, &scope);
        // The span is made here, not in the gRPC layer: only the handler
        // sees the checked request's own `traceparent`.
        let span = match crate::trace::on() {
            true => {
                crate::trace::check_span(&metadata.into_headers(), request.get_client_headers())
            }
            false => None,
        };
        let Some(span) = span else {
            return Ok(Response::new(self.check_request(request, &who).await));
        };
        let answer = span.run(self.check_request(request, &who)).await;
        span.grpc_code(0);
        Ok(Response::new(answer))
    }
}
