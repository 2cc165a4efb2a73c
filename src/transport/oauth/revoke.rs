//! `POST /oauth2/revoke` (RFC 7009): Revoke over HTTP, for an access or
//! a refresh token; 200 for any well-formed request.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use tessera_core::wire::Rpc;

use super::{answer, json_response, required, Answer, FormRequest, OAuth, OAuthError};
use crate::authority::Acting;
use crate::error::Error;
use crate::pb;
use crate::store::Store;

pub(super) async fn revoke<S: Store>(State(o): State<Arc<OAuth<S>>>, req: FormRequest) -> Response {
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
