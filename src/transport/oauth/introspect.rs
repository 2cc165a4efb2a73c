//! `POST /oauth2/introspect` (RFC 7662): Verify's checks over HTTP,
//! any refusal answered `{"active": false}` after the same floor.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use tessera_core::wire::Rpc;

use super::{
    answer, json_answer, json_response, required, Answer, FormRequest, OAuth, OAuthError,
    INACTIVE_FLOOR,
};
use crate::authority::Acting;
use crate::store::Store;
use crate::tokens::{AccessClaims, Actor, Confirmation};

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
    json_answer(StatusCode::OK, &active_body(&v))
}

/// The answer for an active token (RFC 7662 §2.2): its claims, those with
/// nothing to say left out, its `token_type`, binding and actor chain.
/// Its top-level members keep the sorted order of the `serde_json::Map`
/// that built it before.
fn active_body(c: &AccessClaims) -> Active<'_> {
    let dpop_bound = c.cnf.as_ref().is_some_and(|cnf| cnf.jkt.is_some());
    Active {
        act: c.act.as_ref(),
        active: true,
        aud: &c.aud,
        cnf: c.cnf.as_ref(),
        exp: c.exp,
        iat: c.iat,
        iss: &c.iss,
        jti: &c.jti,
        nbf: c.nbf,
        roles: &c.roles,
        scope: &c.scope,
        sid: &c.sid,
        sub: &c.sub,
        tid: &c.tid,
        // RFC 9449 §6.2: a DPoP-bound token's type is DPoP.
        token_type: if dpop_bound { "DPoP" } else { "Bearer" },
    }
}

/// An active token's introspection. Members with nothing to say are left
/// out (RFC 7662 §2.2); `act` is an exchanged token's actor chain as the
/// token has it (RFC 8693 §4.1).
#[derive(Serialize)]
struct Active<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    act: Option<&'a Actor>,
    active: bool,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    aud: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<&'a Confirmation>,
    exp: i64,
    iat: i64,
    #[serde(skip_serializing_if = "str::is_empty")]
    iss: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    jti: &'a str,
    nbf: i64,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    roles: &'a [String],
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    sid: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    sub: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    tid: &'a str,
    token_type: &'static str,
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Map, Value};

    use super::active_body;
    use crate::tokens::{AccessClaims, Actor, Confirmation};

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: "tessera".into(),
            sub: "alice".into(),
            aud: vec!["api".into(), "web".into()],
            exp: 1_900,
            nbf: 1_000,
            iat: 1_000,
            jti: "j1".into(),
            sid: "s1".into(),
            tid: "acme".into(),
            roles: vec!["admin".into()],
            scope: "read write".into(),
            cnf: Some(Confirmation {
                device_fingerprint_sha256: Some("dfp".into()),
                cert_thumbprint_sha256: None,
                jkt: Some("thumb".into()),
            }),
            act: Some(Actor {
                sub: "svc-a".into(),
                act: Some(Box::new(Actor {
                    sub: "svc-b".into(),
                    act: None,
                })),
            }),
            custom: Map::from_iter([("team".to_owned(), json!("blue"))]),
        }
    }

    fn body(c: &AccessClaims) -> Value {
        serde_json::to_value(active_body(c)).unwrap()
    }

    #[test]
    fn an_active_token_answers_its_claims_binding_and_actors() {
        assert_eq!(
            body(&claims()),
            json!({
                "active": true, "iss": "tessera", "sub": "alice", "aud": ["api", "web"],
                "exp": 1_900, "nbf": 1_000, "iat": 1_000, "jti": "j1", "sid": "s1",
                "tid": "acme", "roles": ["admin"], "scope": "read write",
                "token_type": "DPoP",
                "cnf": {"dfp#S256": "dfp", "jkt": "thumb"},
                "act": {"sub": "svc-a", "act": {"sub": "svc-b"}},
            })
        );
    }

    #[test]
    fn members_with_nothing_to_say_are_left_out() {
        let c = AccessClaims {
            aud: vec![],
            tid: String::new(),
            roles: vec![],
            scope: String::new(),
            cnf: None,
            act: None,
            ..claims()
        };
        assert_eq!(
            body(&c),
            json!({
                "active": true, "iss": "tessera", "sub": "alice", "exp": 1_900,
                "nbf": 1_000, "iat": 1_000, "jti": "j1", "sid": "s1",
                "token_type": "Bearer",
            })
        );
    }
}
