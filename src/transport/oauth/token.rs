//! `POST /oauth2/token` (RFC 6749 §6, the `refresh_token` grant), served
//! when `--http-token-endpoint` is on (docs/oauth.md, "The token endpoint").

use std::sync::Arc;
use tessera_core::wire::Rpc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use serde::Serialize;

use super::{
    answer, basic_credentials, json_answer, read_form, required, Answer, Form, FormRequest, OAuth,
    OAuthError, PUBLIC_CLIENT,
};
use crate::error::{Error, TokenError};
use crate::pb;
use crate::store::Store;
use crate::transport::web::Peer;
use tessera_core::wire;

/// `POST /oauth2/token`, when `--http-token-endpoint` serves it.
pub(super) async fn token<S: Store>(State(o): State<Arc<OAuth<S>>>, req: FormRequest) -> Response {
    let FormRequest {
        peer,
        headers,
        body,
    } = req;
    let result = async {
        o.token_budget(&peer).await?;
        // Credentials in the header are checked before the body is read
        // (which RPC they must allow depends on the grant, in the body).
        let basic = basic_credentials(&headers).map_err(|()| invalid_client(true))?;
        if let Some((name, key)) = &basic {
            if o.callers.authenticate(key).as_deref() != Some(name.as_str()) {
                let ip = peer.addr.map(|a| a.ip().to_string()).unwrap_or_default();
                let refusal = crate::audit::Event {
                    rpc: PUBLIC_CLIENT,
                    client_ip: &ip,
                    ..Default::default()
                };
                crate::refusals::refused(
                    tessera_core::wire::reason::CALLER_UNAUTHENTICATED,
                    &refusal,
                );
                return Err(invalid_client(true));
            }
        }
        let form = read_form(&headers, body).await?;
        let (rpc, grant) = match required(&form, "grant_type")? {
            "refresh_token" => (Rpc::Refresh, "refresh_token"),
            wire::TOKEN_EXCHANGE_GRANT => (Rpc::Exchange, "token-exchange"),
            _ => {
                return Err(OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    "grant_type must be refresh_token or urn:ietf:params:oauth:grant-type:token-exchange",
                ))
            }
        };
        let mut client = match &basic {
            Some((name, key)) => Some(o.token_client(name, key, &peer, true, rpc, grant)?),
            None => None,
        };
        if let Some(secret) = form.get("client_secret") {
            // RFC 6749 §2.3: one authentication method per request.
            if basic.is_some() {
                return Err(OAuthError::invalid_request(
                    "more than one client authentication method",
                ));
            }
            let name = form.get("client_id").ok_or_else(|| invalid_client(false))?;
            client = Some(o.token_client(name, secret.as_bytes(), &peer, false, rpc, grant)?);
        }
        if rpc == Rpc::Exchange {
            return super::exchange::exchange_grant(&o, &peer, &headers, &form, client).await;
        }
        // A public client is no caller of the callers file: the refresh
        // token is its credential, whatever its tenant. An authenticated
        // client keeps its tenant scope.
        let (caller, scope) =
            client.unwrap_or_else(|| (PUBLIC_CLIENT.to_owned(), crate::authority::scope::TenantScope::All));
        refresh_grant(&o, &peer, &headers, &form, (&caller, &scope)).await
    }
    .await;
    o.with_cors(&headers, answer(result))
}

impl<S: Store> OAuth<S> {
    /// Count the request against the endpoint's budgets, the client IP's
    /// first (a flood from one address spends its own budget, not
    /// everyone's), in the store so that replicas share them: 429 with
    /// `Retry-After` over either.
    async fn token_budget(&self, peer: &Peer) -> Result<(), OAuthError> {
        let ip = peer.addr.map(|a| a.ip().to_string()).unwrap_or_default();
        let budgets = [
            (format!("oauth-token:ip:{ip}"), self.token_rate_per_ip),
            ("oauth-token:all".to_owned(), self.token_rate),
        ];
        for (key, limit) in budgets {
            let Some(limit) = limit else { continue };
            let now = crate::clock::now_ms();
            let error = match self.authority.store.rate_limit(&key, limit, now).await {
                Ok(None) => continue,
                Ok(Some(retry_after_ms)) => Error::RateLimited {
                    retry_after: std::time::Duration::from_millis(retry_after_ms.max(1) as u64),
                },
                Err(e) => Error::Store(e),
            };
            return Err(OAuthError::from_service(Rpc::Refresh, &error)
                .unwrap_or_else(|| OAuthError::invalid_request("refused")));
        }
        Ok(())
    }
}

/// RFC 6749 §5.2 `invalid_client` (401; with the `Basic` challenge when the
/// client tried the `Authorization` header).
pub(super) fn invalid_client(basic: bool) -> OAuthError {
    let e = OAuthError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "client authentication failed",
    );
    if basic {
        e.with_header(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"tessera\"".to_owned(),
        )
    } else {
        e
    }
}

impl<S: Store> OAuth<S> {
    /// RFC 6749 §2.3: a public client sends no credentials, but credentials
    /// that are presented (HTTP Basic, or `client_id` and `client_secret`
    /// in the body) must authenticate a caller of the callers file, under
    /// that name (`invalid_client`, 401, otherwise; with no callers file,
    /// no credential can be right), allowed `Refresh`
    /// (`unauthorized_client` otherwise). Only the key decides here, not
    /// the connection's certificate: it is the credential presented.
    pub(super) fn token_client(
        &self,
        name: &str,
        key: &[u8],
        peer: &Peer,
        basic: bool,
        rpc: Rpc,
        grant: &str,
    ) -> Result<(String, crate::authority::scope::TenantScope), OAuthError> {
        let ip = peer.addr.map(|a| a.ip().to_string()).unwrap_or_default();
        let none = crate::transport::callers::PeerIdentities::default();
        match self
            .callers
            .authorize_scoped(rpc.as_str(), Some(key), &none, &ip)
        {
            Ok(Some((found, scope))) if found == name => Ok((found, scope)),
            Err(Error::CallerNotAllowed) => Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                format!("this client may not use the {grant} grant"),
            )),
            _ => Err(invalid_client(basic)),
        }
    }
}

/// A `User-Agent` worth recording with the session: the session store
/// refuses control characters and more than 512 bytes, and a browser's
/// header must not fail its refresh, so anything else is not recorded.
fn recordable_user_agent(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .filter(|ua| ua.len() <= 512 && !ua.chars().any(char::is_control))
        .unwrap_or("")
        .to_owned()
}

async fn refresh_grant<S: Store>(
    o: &OAuth<S>,
    peer: &Peer,
    headers: &HeaderMap,
    form: &Form,
    (caller, scope): (&str, &crate::authority::scope::TenantScope),
) -> Answer {
    let refresh_token = required(form, "refresh_token")?;
    let proof = dpop_header(headers)?;
    let had_proof = !proof.is_empty();
    let request = pb::RefreshRequest {
        refresh_token: refresh_token.to_owned(),
        http_method: if had_proof {
            "POST".into()
        } else {
            String::new()
        },
        http_url: if had_proof {
            o.token_url.clone()
        } else {
            String::new()
        },
        dpop_proof: proof,
        ip_address: peer.addr.map(|a| a.ip().to_string()).unwrap_or_default(),
        user_agent: recordable_user_agent(headers),
        // RFC 8705 §3: a certificate-bound session refreshes only over a
        // connection with its client certificate.
        cert_thumbprint: peer.cert_thumbprint.clone().unwrap_or_default(),
        ..Default::default()
    };
    // A public client's `client_id` must be the session's (RFC 6749 §6:
    // the token was issued to that client); with credentials, `client_id`
    // names the authenticated caller instead, and is not compared.
    let public_client_id = (caller == PUBLIC_CLIENT)
        .then(|| form.get("client_id").map(String::as_str))
        .flatten();
    let refreshed = match o
        .authority
        .refresh_counted(request, caller, scope, public_client_id)
        .await
    {
        Ok(r) => r,
        Err(e) => return Err(grant_error(e)),
    };
    let tokens = refreshed.response.tokens.unwrap_or_default();
    let dpop_bound = refreshed
        .claims
        .cnf
        .as_ref()
        .is_some_and(|c| c.jkt.is_some());
    let body = TokenAnswer {
        access_token: &tokens.access_token,
        token_type: if dpop_bound { "DPoP" } else { "Bearer" },
        expires_in: tokens.expires_in,
        refresh_token: &tokens.refresh_token,
        refresh_expires_in: tokens.refresh_expires_in,
        scope: &refreshed.claims.scope,
    };
    let mut response = json_answer(StatusCode::OK, &body)?;
    if had_proof && o.authority.policy.dpop_nonce {
        if let Ok((nonce, _)) = o.authority.dpop_nonces(crate::clock::now_ms()).await {
            if let Ok(value) = HeaderValue::from_str(&nonce) {
                response.headers_mut().insert("dpop-nonce", value);
            }
        }
    }
    Ok(response)
}

/// RFC 6749 §5.2 (and RFC 9449 §5, §8) for a refused refresh; the
/// `ErrorInfo` reason of the gRPC API is the `error_description`.
pub(super) fn grant_error(e: Error) -> OAuthError {
    if let Some(answer) = OAuthError::from_service(Rpc::Refresh, &e) {
        return answer;
    }
    crate::error::log_failed(Rpc::Refresh, &e);
    match e {
        Error::InvalidArgument(violations) => OAuthError::invalid_request(
            violations
                .iter()
                .map(|v| format!("{}: {}", v.field, v.description))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Error::Token(TokenError::DpopProofInvalid | TokenError::DpopProofReplayed) => {
            OAuthError::new(StatusCode::BAD_REQUEST, "invalid_dpop_proof", e.reason())
        }
        Error::DpopNonce { ref nonce } => {
            let nonce = nonce.clone();
            OAuthError::new(StatusCode::BAD_REQUEST, "use_dpop_nonce", e.reason())
                .with_header(HeaderName::from_static("dpop-nonce"), nonce)
        }
        _ => OAuthError::new(StatusCode::BAD_REQUEST, "invalid_grant", e.reason()),
    }
}

/// The request's DPoP proof (RFC 9449 §4.3: at most one `DPoP` header);
/// "" without one.
pub(super) fn dpop_header(headers: &HeaderMap) -> Result<String, OAuthError> {
    let mut proofs = headers.get_all("dpop").iter();
    match (proofs.next(), proofs.next()) {
        (None, _) => Ok(String::new()),
        (Some(p), None) => p.to_str().map(str::to_owned).map_err(|_| {
            OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_dpop_proof",
                "DPOP_PROOF_INVALID",
            )
        }),
        (Some(_), Some(_)) => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_dpop_proof",
            "more than one DPoP header",
        )),
    }
}

/// A refresh grant's answer (RFC 6749 §5.1); `scope` only when the token
/// has one.
#[derive(Serialize)]
struct TokenAnswer<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    refresh_token: &'a str,
    refresh_expires_in: i64,
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
}
