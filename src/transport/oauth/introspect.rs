//! `POST /oauth2/introspect` (RFC 7662): Verify's checks over HTTP,
//! any refusal answered `{"active": false}` after the same floor.

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
use crate::store::Store;
use crate::tokens::AccessClaims;

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
    Ok(json_response(StatusCode::OK, active_body(&v)))
}

/// The answer for an active token (RFC 7662 §2.2): its claims, those with
/// nothing to say left out, its `token_type`, binding and actor chain.
fn active_body(c: &AccessClaims) -> String {
    let mut body = Map::new();
    body.insert("active".into(), Value::Bool(true));
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
    Value::Object(body).to_string()
}
