//! `POST /oauth2/introspect` (RFC 7662) and `POST /oauth2/revoke`
//! (RFC 7009): Verify's and Revoke's checks over HTTP.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Map, Value};
use tessera_core::wire::Rpc;

use super::{
    answer, json_response, required, Answer, FormRequest, OAuth, OAuthError, INACTIVE_FLOOR,
};
use crate::authority::Acting;
use crate::error::Error;
use crate::pb;
use crate::store::Store;

pub(super) async fn introspect<S: Store>(
    State(o): State<Arc<OAuth<S>>>,
    req: FormRequest,
) -> Response {
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
