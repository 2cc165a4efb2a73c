//! `POST /oauth2/token` with the token-exchange grant (RFC 8693 §2): the
//! `Exchange` RPC over HTTP, for a caller of the callers file allowed
//! `Exchange` (docs/oauth.md, "Token exchange").

use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use tessera_core::wire::Rpc;

use super::token::{dpop_header, grant_error, invalid_client};
use super::{json_answer, required, Answer, Form, OAuth, OAuthError};
use crate::error::{Error, ExchangeRefusal};
use crate::pb;
use crate::store::Store;
use crate::transport::web::Peer;
use tessera_core::wire;

/// RFC 8693 §2.1: a subject or actor token type Tessera accepts (its
/// access tokens are JWTs).
fn accepted_type(form: &Form, name: &str) -> Result<(), OAuthError> {
    match required(form, name)? {
        wire::ACCESS_TOKEN_TYPE | wire::JWT_TOKEN_TYPE => Ok(()),
        _ => Err(OAuthError::invalid_request(format!(
            "{name} must be {} or {}",
            wire::ACCESS_TOKEN_TYPE,
            wire::JWT_TOKEN_TYPE
        ))),
    }
}

/// The grant: `client` is the caller its credentials (HTTP Basic or
/// `client_secret`, RFC 6749 §2.3) authenticated, if any; the grant needs
/// one. Answers RFC 8693 §2.2.1, or an error of §2.2.2.
pub(super) async fn exchange_grant<S: Store>(
    o: &OAuth<S>,
    peer: &Peer,
    headers: &HeaderMap,
    form: &Form,
    client: Option<(String, crate::authority::scope::TenantScope)>,
) -> Answer {
    let (caller, scope) = match client {
        Some(caller) => caller,
        None => header_client(o, peer, headers)?,
    };
    let request = exchange_request(o, peer, headers, form)?;
    let audiences = o.callers.exchange_audiences(&caller);
    let exchanged = o
        .authority
        .exchange(request, (&caller, &scope), &audiences, || None)
        .await
        .map_err(exchange_error)?;
    let r = exchanged.response;
    json_answer(
        StatusCode::OK,
        &ExchangeAnswer {
            access_token: &r.access_token,
            issued_token_type: &r.issued_token_type,
            // RFC 8693 §2.2.1: an access token's type for use (not bound).
            token_type: "Bearer",
            expires_in: r.expires_in,
            scope: &exchanged.claims.scope,
        },
    )
}

/// The caller of a grant without client credentials: a service may also
/// send its key as on the other endpoints (`x-tessera-key`); without one,
/// `invalid_client`.
fn header_client<S: Store>(
    o: &OAuth<S>,
    peer: &Peer,
    headers: &HeaderMap,
) -> Result<(String, crate::authority::scope::TenantScope), OAuthError> {
    let Some(key) = headers.get(wire::API_KEY_HEADER) else {
        return Err(invalid_client(false));
    };
    let name = o
        .callers
        .authenticate(key.as_bytes())
        .ok_or_else(|| invalid_client(false))?;
    o.token_client(
        &name,
        key.as_bytes(),
        peer,
        false,
        Rpc::Exchange,
        "token-exchange",
    )
}

/// The `Exchange` the form asks for (RFC 8693 §2.1), checked in the order
/// of its parameters: the tokens and their types, the requested type, the
/// target (`audience` or `resource`, required), the scopes, and the
/// `DPoP` header's proof for this endpoint.
fn exchange_request<S: Store>(
    o: &OAuth<S>,
    peer: &Peer,
    headers: &HeaderMap,
    form: &Form,
) -> Result<pb::ExchangeRequest, OAuthError> {
    let subject_token = required(form, "subject_token")?;
    accepted_type(form, "subject_token_type")?;
    let actor_token = form.get("actor_token").map_or("", String::as_str);
    match (
        actor_token.is_empty(),
        form.contains_key("actor_token_type"),
    ) {
        (false, _) => accepted_type(form, "actor_token_type")?,
        (true, true) => {
            return Err(OAuthError::invalid_request(
                "actor_token_type without actor_token",
            ))
        }
        (true, false) => {}
    }
    if let Some(t) = form.get("requested_token_type") {
        if t != wire::ACCESS_TOKEN_TYPE && t != wire::JWT_TOKEN_TYPE {
            return Err(OAuthError::invalid_request(format!(
                "requested_token_type must be {}",
                wire::ACCESS_TOKEN_TYPE
            )));
        }
    }
    // RFC 8693 §2.1: `audience` (a logical name) and `resource` (a URI)
    // both name where the token will be used.
    let audience: Vec<String> = ["audience", "resource"]
        .iter()
        .filter_map(|name| form.get(*name).cloned())
        .collect();
    if audience.is_empty() {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "audience (or resource) is required",
        ));
    }
    let scopes = form
        .get("scope")
        .map(|s| {
            s.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let proof = dpop_header(headers)?;
    Ok(pb::ExchangeRequest {
        subject_token: subject_token.to_owned(),
        actor_token: actor_token.to_owned(),
        audience,
        scopes,
        http_method: if proof.is_empty() {
            String::new()
        } else {
            "POST".into()
        },
        http_url: if proof.is_empty() {
            String::new()
        } else {
            o.token_url.clone()
        },
        dpop_proof: proof,
        cert_thumbprint: peer.cert_thumbprint.clone().unwrap_or_default(),
        ..Default::default()
    })
}

/// RFC 8693 §2.2.2 (RFC 6749 §5.2 codes): a refused audience is
/// `invalid_target`, wider scopes `invalid_scope`, any other refusal of the
/// tokens `invalid_grant`; the reason is the `error_description`.
fn exchange_error(e: Error) -> OAuthError {
    let code = match &e {
        Error::ExchangeNotAllowed { refusal, .. } => match refusal {
            ExchangeRefusal::Audience => "invalid_target",
            ExchangeRefusal::Scope => "invalid_scope",
            ExchangeRefusal::Lifetime | ExchangeRefusal::Depth | ExchangeRefusal::ActorTenant => {
                "invalid_grant"
            }
        },
        _ => return grant_error(e),
    };
    crate::error::log_failed(Rpc::Exchange, &e);
    OAuthError::new(StatusCode::BAD_REQUEST, code, e.to_string())
}

/// A token exchange's answer (RFC 8693 §2.2.1); `scope` only when the
/// token has one.
#[derive(Serialize)]
struct ExchangeAnswer<'a> {
    access_token: &'a str,
    issued_token_type: &'a str,
    token_type: &'static str,
    expires_in: i64,
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
}
