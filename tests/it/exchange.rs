//! RFC 8693 token exchange (issue #29) against real servers on both
//! stores: narrowing (scopes, audience, lifetime), `act` chains and their
//! depth, the cascade of revocations from the parent session and subject
//! to every derived token (Verify at both consistencies, introspection,
//! Envoy's `Check`, the Rust `LocalVerifier`, on a replica other than the
//! one that revoked), revocation of a derived token alone, the
//! token-exchange grant over HTTP (RFC 8693 §2.2 field by field, §2.2.2
//! errors), hostile subject and actor tokens, bindings and budgets.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use serde_json::Value;
use tessera_client::{pb, ClientError, LocalVerifier, TesseraClient, VerifierOptions};
use tonic::transport::Channel;

use crate::ext_authz::{check_request, outcome};
use crate::oauth::{basic, form, post, FORM};
use crate::support::*;

const ACCESS_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// A callers file: `svc` may exchange for `billing`, `ledger` and `audit`
/// (and call what the cascade checks need), `plain` may call Exchange but
/// request no audience, `reader` may not call Exchange at all.
fn callers(dir: &tempfile::TempDir) -> String {
    let key = tessera::transport::callers::api_key_sha256;
    let text = format!(
        r#"
[[caller]]
name = "svc"
api_key_sha256 = "{}"
allow = ["Issue", "Verify", "Revoke", "Exchange", "WatchRevocations", "GetJwks", "Check"]
exchange_audiences = ["billing", "ledger", "audit"]

[[caller]]
name = "plain"
api_key_sha256 = "{}"
allow = ["Exchange", "Verify"]

[[caller]]
name = "reader"
api_key_sha256 = "{}"
allow = ["Issue", "Verify"]
"#,
        key("svc-key"),
        key("plain-key"),
        key("reader-key")
    );
    let path = dir.path().join("callers.toml");
    std::fs::write(&path, text).unwrap();
    format!("--callers={}", path.display())
}

struct Setup {
    env: Env,
    servers: Vec<Server>,
    _dir: tempfile::TempDir,
}

impl Setup {
    /// `replicas` servers on one store (one on memory), with the OAuth port.
    async fn start(backend: Backend, replicas: usize, extra: &[&str]) -> Setup {
        let env = Env::new(backend).await;
        let dir = tempfile::tempdir().unwrap();
        let callers = callers(&dir);
        let mut flags = vec![
            callers.as_str(),
            "--issue-rate=off",
            "--http-listen=127.0.0.1:0",
            "--http-token-endpoint",
        ];
        flags.extend_from_slice(extra);
        let mut servers = Vec::new();
        for _ in 0..replicas {
            servers.push(env.server(&flags).await);
        }
        Setup {
            env,
            servers,
            _dir: dir,
        }
    }

    async fn client(&self, i: usize, key: &str) -> TesseraClient {
        TesseraClient::connect(&self.servers[i].url(), Some(key))
            .await
            .unwrap()
    }

    fn http(&self, i: usize) -> SocketAddr {
        self.servers[i].http.expect("http port")
    }
}

fn issue_req(subject: &str, tenant: &str) -> pb::IssueRequest {
    pb::IssueRequest {
        subject: subject.into(),
        tenant: tenant.into(),
        audience: vec!["api".into()],
        roles: vec!["admin".into()],
        scopes: vec!["read".into(), "write".into()],
        ..Default::default()
    }
}

fn exchange_req(subject_token: &str, audience: &str, scopes: &[&str]) -> pb::ExchangeRequest {
    pb::ExchangeRequest {
        subject_token: subject_token.into(),
        audience: vec![audience.into()],
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// The reason code of a failed SDK call.
fn why(e: ClientError) -> String {
    match e {
        ClientError::SessionEnded { reason } => reason,
        ClientError::Rpc(s) => tessera_client::reason(&s).unwrap_or_else(|| format!("{s:?}")),
        other => format!("{other:?}"),
    }
}

async fn exchange(
    c: &TesseraClient,
    r: pb::ExchangeRequest,
) -> Result<pb::ExchangeResponse, String> {
    c.exchange(r).await.map_err(why)
}

/// Verify `token` expecting `audience`; the claims, or the reason.
async fn verify(
    c: &TesseraClient,
    token: &str,
    audience: &str,
    strong: bool,
) -> Result<pb::Claims, String> {
    let r = pb::VerifyRequest {
        access_token: token.into(),
        audience: audience.into(),
        consistency: if strong {
            pb::Consistency::Strong as i32
        } else {
            pb::Consistency::Unspecified as i32
        },
        ..Default::default()
    };
    match c.verify(r).await {
        Ok(r) => Ok(r.into_inner().claims.unwrap_or_default()),
        Err(s) => Err(tessera_client::reason(&s).unwrap_or_default()),
    }
}

/// `POST /oauth2/introspect` as `svc`: the JSON answer.
async fn introspect(http: SocketAddr, token: &str) -> Value {
    let auth = basic("svc", "svc-key");
    let a = post(
        http,
        "/oauth2/introspect",
        &[FORM, ("Authorization", &auth)],
        &form(&[("token", token)]),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.json()
}

/// Envoy's `Check` of a request bearing `token`, as the gateway `svc`:
/// (allowed, upstream or denial headers).
async fn check(server: &Server, token: &str) -> (bool, std::collections::HashMap<String, String>) {
    let channel = Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let bearer = format!("Bearer {token}");
    let mut r = tonic::Request::new(check_request(&[("authorization", &bearer)], &[], ""));
    r.metadata_mut()
        .insert("x-tessera-key", "svc-key".parse().unwrap());
    let answer = AuthorizationClient::new(channel)
        .check(r)
        .await
        .expect("Check answered")
        .into_inner();
    let (allowed, _, headers, _) = outcome(&answer);
    (allowed, headers)
}

async fn local_verifier(c: &TesseraClient) -> LocalVerifier {
    let options = VerifierOptions {
        issuer: "tessera-test".into(),
        ..Default::default()
    };
    let v = LocalVerifier::start(c.clone(), options).await.unwrap();
    assert!(
        v.wait_in_sync(Duration::from_secs(5)).await,
        "verifier in sync"
    );
    v
}

// === narrowing ===

/// `plain`, allowed Exchange with no `exchange_audiences`, is refused.
async fn plain_may_not_exchange(s: &Setup, token: &str) {
    let plain = s.client(0, "plain-key").await;
    let r = exchange_req(token, "billing", &[]);
    assert_eq!(
        exchange(&plain, r).await.unwrap_err(),
        "EXCHANGE_NOT_ALLOWED"
    );
}

async fn exchange_narrows_and_shows_the_actor(backend: Backend) {
    let s = Setup::start(backend, 1, &["--max-access-ttl=20m"]).await;
    let svc = s.client(0, "svc-key").await;
    let user = svc.issue(issue_req("alice", "acme")).await.unwrap();

    let derived = exchange(&svc, exchange_req(&user.access_token, "billing", &["read"]))
        .await
        .expect("a narrower exchange");
    assert_eq!(derived.issued_token_type, ACCESS_TYPE);
    assert_eq!(derived.scopes, ["read"]);
    // The default lifetime: --access-ttl (15 min), within the subject token's.
    assert!(
        derived.expires_in > 0 && derived.expires_in <= user.expires_in,
        "{} vs {}",
        derived.expires_in,
        user.expires_in
    );

    // Verify with audience billing passes and shows the actor; the derived
    // token is in the parent's session and tenant.
    let claims = verify(&svc, &derived.access_token, "billing", true)
        .await
        .unwrap();
    assert_eq!(claims.subject, "alice");
    assert_eq!(claims.tenant, "acme");
    assert_eq!(claims.session_id, user.session_id);
    assert_eq!(claims.actors, ["svc"]);
    assert_eq!(claims.scopes, ["read"]);
    assert_eq!(claims.roles, ["admin"]);
    // The original audience is refused.
    assert_eq!(
        verify(&svc, &derived.access_token, "api", false)
            .await
            .unwrap_err(),
        "AUDIENCE_MISMATCH"
    );
    // The parent itself shows no actor.
    assert!(verify(&svc, &user.access_token, "api", false)
        .await
        .unwrap()
        .actors
        .is_empty());

    // Anything wider: EXCHANGE_NOT_ALLOWED, and no token.
    let max_ttl = 20 * 60;
    let wider = [
        (
            "wider scopes",
            exchange_req(&user.access_token, "billing", &["read", "admin"]),
        ),
        (
            "an audience the caller may not request",
            exchange_req(&user.access_token, "payroll", &[]),
        ),
        (
            "over --max-access-ttl",
            pb::ExchangeRequest {
                ttl_seconds: max_ttl + 1,
                ..exchange_req(&user.access_token, "billing", &[])
            },
        ),
        (
            "longer than the subject token",
            pb::ExchangeRequest {
                ttl_seconds: user.expires_in + 60,
                ..exchange_req(&user.access_token, "billing", &[])
            },
        ),
    ];
    for (what, r) in wider {
        let e = svc.exchange(r).await.expect_err(what);
        let ClientError::Rpc(status) = e else {
            panic!("{what}: {e:?}")
        };
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{what}");
        assert_eq!(
            tessera_client::reason(&status).as_deref(),
            Some("EXCHANGE_NOT_ALLOWED"),
            "{what}"
        );
    }
    // A caller with no exchange_audiences may request none.
    plain_may_not_exchange(&s, &user.access_token).await;
    // A shorter lifetime is granted as asked.
    let short = exchange(
        &svc,
        pb::ExchangeRequest {
            ttl_seconds: 60,
            ..exchange_req(&user.access_token, "ledger", &[])
        },
    )
    .await
    .unwrap();
    assert!(
        (55..=60).contains(&short.expires_in),
        "{}",
        short.expires_in
    );
    // Empty scopes: the subject token's.
    assert_eq!(short.scopes, ["read", "write"]);

    // Introspection and Check show the actor chain.
    let body = introspect(s.http(0), &derived.access_token).await;
    assert_eq!(body["active"], true);
    assert_eq!(body["act"], serde_json::json!({"sub": "svc"}));
    assert_eq!(body["aud"], serde_json::json!(["billing"]));
    assert!(introspect(s.http(0), &user.access_token)
        .await
        .get("act")
        .is_none());
    let (allowed, headers) = check(&s.servers[0], &derived.access_token).await;
    assert!(allowed, "{headers:?}");
    assert_eq!(headers[tessera_core::wire::ACTOR_HEADER], r#"["svc"]"#);
    let (_, headers) = check(&s.servers[0], &user.access_token).await;
    assert_eq!(headers[tessera_core::wire::ACTOR_HEADER], "[]");

    // The RPC has its metrics labels.
    let (_, metrics) = s.servers[0].admin_get("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.contains(r#"method="Exchange""#) && l.contains(r#"code="OK""#)),
        "no Exchange series"
    );
    assert!(
        metrics.lines().any(
            |l| l.contains(r#"method="Exchange""#) && l.contains(r#"code="PERMISSION_DENIED""#)
        ),
        "no refused Exchange series"
    );
}

// === chains ===

async fn act_chains_nest_up_to_the_maximum_depth(backend: Backend) {
    let s = Setup::start(backend, 1, &[]).await;
    let svc = s.client(0, "svc-key").await;
    let user = svc.issue(issue_req("alice", "acme")).await.unwrap();
    // The actors' own tokens (services of the same tenant).
    let gateway = svc.issue(issue_req("gateway-svc", "acme")).await.unwrap();
    let orders = svc.issue(issue_req("orders-svc", "acme")).await.unwrap();

    // A acts for the user, B for A, C for B: three levels (the default maximum).
    let one = exchange(
        &svc,
        pb::ExchangeRequest {
            actor_token: gateway.access_token.clone(),
            ..exchange_req(&user.access_token, "billing", &["read"])
        },
    )
    .await
    .unwrap();
    let two = exchange(
        &svc,
        pb::ExchangeRequest {
            actor_token: orders.access_token.clone(),
            ..exchange_req(&one.access_token, "ledger", &[])
        },
    )
    .await
    .expect("two levels");
    let claims = verify(&svc, &two.access_token, "ledger", true)
        .await
        .unwrap();
    assert_eq!(claims.actors, ["orders-svc", "gateway-svc"]);
    assert_eq!(claims.session_id, user.session_id);
    assert_eq!(claims.scopes, ["read"], "a chain cannot widen again");
    let body = introspect(s.http(0), &two.access_token).await;
    assert_eq!(
        body["act"],
        serde_json::json!({"sub": "orders-svc", "act": {"sub": "gateway-svc"}})
    );
    let three = exchange(&svc, exchange_req(&two.access_token, "audit", &[]))
        .await
        .expect("three levels");
    let claims = verify(&svc, &three.access_token, "audit", false)
        .await
        .unwrap();
    assert_eq!(claims.actors, ["svc", "orders-svc", "gateway-svc"]);
    // One over the maximum.
    assert_eq!(
        exchange(&svc, exchange_req(&three.access_token, "billing", &[]))
            .await
            .unwrap_err(),
        "EXCHANGE_NOT_ALLOWED"
    );
    // A chain cannot widen the scopes back.
    assert_eq!(
        exchange(&svc, exchange_req(&one.access_token, "ledger", &["write"]))
            .await
            .unwrap_err(),
        "EXCHANGE_NOT_ALLOWED"
    );
}

async fn the_maximum_depth_is_configurable(backend: Backend) {
    let s = Setup::start(backend, 1, &["--max-exchange-depth=1"]).await;
    let svc = s.client(0, "svc-key").await;
    let user = svc.issue(issue_req("alice", "acme")).await.unwrap();
    let one = exchange(&svc, exchange_req(&user.access_token, "billing", &[]))
        .await
        .unwrap();
    assert_eq!(
        exchange(&svc, exchange_req(&one.access_token, "ledger", &[]))
            .await
            .unwrap_err(),
        "EXCHANGE_NOT_ALLOWED"
    );
}

// === the cascade ===

/// Every way of checking `token` on replica `i` says it is dead: Verify
/// at both consistencies, introspection, `Check`, and the `LocalVerifier`
/// fed by that replica within 1 s.
async fn dead_everywhere(s: &Setup, i: usize, local: &LocalVerifier, tokens: &[&str]) {
    let c = s.client(i, "svc-key").await;
    for (n, token) in tokens.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            match local.verify(token, "", "", &[]).await {
                Err(e) if e.reason() == "TOKEN_REVOKED" => break,
                other => assert!(
                    Instant::now() < deadline,
                    "token {n}: the LocalVerifier still says {:?} after 1 s",
                    other.map(|c| c.jti.clone())
                ),
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            verify(&c, token, "", true).await.unwrap_err(),
            "TOKEN_REVOKED",
            "token {n} strong"
        );
        assert_eq!(
            verify(&c, token, "", false).await.unwrap_err(),
            "TOKEN_REVOKED",
            "token {n} default"
        );
        assert_eq!(
            introspect(s.http(i), token).await["active"],
            false,
            "token {n}"
        );
        let (allowed, headers) = check(&s.servers[i], token).await;
        assert!(!allowed, "token {n}");
        assert_eq!(headers["x-tessera-reason"], "TOKEN_REVOKED", "token {n}");
    }
}

/// A user's session and three tokens derived from it (two siblings and a
/// chained one), all alive.
async fn family(c: &TesseraClient, subject: &str) -> (pb::TokenPair, Vec<String>) {
    let user = c.issue(issue_req(subject, "acme")).await.unwrap();
    let a = exchange(c, exchange_req(&user.access_token, "billing", &["read"]))
        .await
        .unwrap();
    let b = exchange(c, exchange_req(&user.access_token, "ledger", &[]))
        .await
        .unwrap();
    let chained = exchange(c, exchange_req(&a.access_token, "audit", &[]))
        .await
        .unwrap();
    for t in [&a, &b, &chained] {
        assert!(verify(c, &t.access_token, "", true).await.is_ok());
    }
    (
        user,
        vec![a.access_token, b.access_token, chained.access_token],
    )
}

async fn revoking_the_parent_kills_every_derived_token(backend: Backend) {
    // Two replicas on Redis: one revokes, the other answers. The memory
    // store is one replica: its own feed and the LocalVerifier's.
    let replicas = if backend == Backend::Redis { 2 } else { 1 };
    let s = Setup::start(backend, replicas, &[]).await;
    let (revoker, other) = (0, replicas - 1);
    let a = s.client(revoker, "svc-key").await;
    let b = s.client(other, "svc-key").await;
    let local = local_verifier(&b).await;

    // The parent session is revoked.
    let (user, derived) = family(&a, "alice").await;
    // An unrelated session of the same subject lives on.
    let (bystander, bystander_derived) = family(&a, "alice").await;
    a.revoke(pb::RevokeRequest {
        target: Some(pb::revoke_request::Target::SessionId(
            user.session_id.clone(),
        )),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut all: Vec<&str> = derived.iter().map(String::as_str).collect();
    all.push(&user.access_token);
    dead_everywhere(&s, other, &local, &all).await;
    for t in bystander_derived.iter().chain([&bystander.access_token]) {
        assert!(
            verify(&b, t, "", true).await.is_ok(),
            "another session's tokens live"
        );
        assert!(local.verify(t, "", "", &[]).await.is_ok());
    }
    // Nothing can be exchanged from a dead parent any more.
    assert_eq!(
        exchange(&b, exchange_req(&user.access_token, "billing", &[]))
            .await
            .unwrap_err(),
        "TOKEN_REVOKED"
    );

    // Then the subject: every session of alice, and what was derived.
    a.revoke(pb::RevokeRequest {
        target: Some(pb::revoke_request::Target::Subject(pb::SubjectRef {
            tenant: "acme".into(),
            subject: "alice".into(),
        })),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut all: Vec<&str> = bystander_derived.iter().map(String::as_str).collect();
    all.push(&bystander.access_token);
    dead_everywhere(&s, other, &local, &all).await;
    drop(s.env);
}

async fn revoking_a_derived_token_leaves_parent_and_siblings(backend: Backend) {
    let s = Setup::start(backend, 1, &[]).await;
    let c = s.client(0, "svc-key").await;
    let local = local_verifier(&c).await;
    let (user, derived) = family(&c, "alice").await;
    c.revoke(pb::RevokeRequest {
        target: Some(pb::revoke_request::Target::Token(derived[0].clone())),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        verify(&c, &derived[0], "", true).await.unwrap_err(),
        "TOKEN_REVOKED"
    );
    assert_eq!(
        verify(&c, &derived[0], "", false).await.unwrap_err(),
        "TOKEN_REVOKED"
    );
    for t in [&user.access_token, &derived[1], &derived[2]] {
        assert!(verify(&c, t, "", true).await.is_ok());
        assert!(verify(&c, t, "", false).await.is_ok());
        assert_eq!(introspect(s.http(0), t).await["active"], true);
    }
    // The feed carried only the token's revocation: the LocalVerifier
    // refuses it and keeps the others.
    let deadline = Instant::now() + Duration::from_secs(1);
    while local.verify(&derived[0], "", "", &[]).await.is_ok() {
        assert!(Instant::now() < deadline, "the LocalVerifier never saw it");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for t in [&user.access_token, &derived[1], &derived[2]] {
        assert!(local.verify(t, "", "", &[]).await.is_ok());
    }
    // The parent can still be exchanged.
    assert!(
        exchange(&c, exchange_req(&user.access_token, "billing", &[]))
            .await
            .is_ok()
    );
}

// === hostile ===

async fn hostile_subject_and_actor_tokens_are_refused(backend: Backend) {
    let s = Setup::start(backend, 1, &["--leeway=0s"]).await;
    let svc = s.client(0, "svc-key").await;
    let user = svc.issue(issue_req("alice", "acme")).await.unwrap();
    let ex = |subject: &str| exchange_req(subject, "billing", &[]);

    // A revoked subject token (by jti), checked in the store.
    let victim = svc.issue(issue_req("bob", "acme")).await.unwrap();
    svc.revoke(pb::RevokeRequest {
        target: Some(pb::revoke_request::Target::Token(
            victim.access_token.clone(),
        )),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        exchange(&svc, ex(&victim.access_token)).await.unwrap_err(),
        "TOKEN_REVOKED"
    );
    // A forged one: the same claims signed by another key.
    let other_key = TestKey::new();
    let payload = user.access_token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    let forged: tessera::tokens::AccessClaims = serde_json::from_value(claims).unwrap();
    let forged = tessera::tokens::mint(&other_key.keyset(), &forged).unwrap();
    assert_eq!(
        exchange(&svc, ex(&forged)).await.unwrap_err(),
        "TOKEN_SIGNATURE_INVALID"
    );
    // A tampered one.
    // A tampered one: one character of the signature changed (not the
    // last, whose low bits base64url does not carry).
    let mut tampered = user.access_token.clone().into_bytes();
    let at = tampered.len() - 10;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(
        exchange(&svc, ex(&tampered)).await.unwrap_err(),
        "TOKEN_SIGNATURE_INVALID"
    );
    // A refresh token is no access token.
    assert_eq!(
        exchange(&svc, ex(&user.refresh_token)).await.unwrap_err(),
        "TOKEN_MALFORMED"
    );
    // An expired one.
    let short = svc
        .issue(pb::IssueRequest {
            access_ttl: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
            ..issue_req("carol", "acme")
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        exchange(&svc, ex(&short.access_token)).await.unwrap_err(),
        "TOKEN_EXPIRED"
    );

    // An actor token of another tenant, a revoked one, a forged one.
    let foreign = svc
        .issue(issue_req("intruder-svc", "globex"))
        .await
        .unwrap();
    for (actor, want) in [
        (&foreign.access_token, "EXCHANGE_NOT_ALLOWED"),
        (&victim.access_token, "TOKEN_REVOKED"),
        (&forged, "TOKEN_SIGNATURE_INVALID"),
    ] {
        let r = pb::ExchangeRequest {
            actor_token: actor.clone(),
            ..ex(&user.access_token)
        };
        assert_eq!(exchange(&svc, r).await.unwrap_err(), want);
    }
    // A caller not allowed Exchange.
    let reader = s.client(0, "reader-key").await;
    assert_eq!(
        exchange(&reader, ex(&user.access_token)).await.unwrap_err(),
        "CALLER_NOT_ALLOWED"
    );
    // No audience at all.
    assert_eq!(
        exchange(
            &svc,
            pb::ExchangeRequest {
                audience: vec![],
                ..ex(&user.access_token)
            }
        )
        .await
        .unwrap_err(),
        "FIELD_INVALID"
    );
    // The refusals left the subject token as it was.
    assert!(verify(&svc, &user.access_token, "api", true).await.is_ok());
}

// === bindings ===

async fn bound_subject_tokens_need_their_proof_and_derive_bearer_tokens(backend: Backend) {
    let s = Setup::start(backend, 1, &[]).await;
    let svc = s.client(0, "svc-key").await;
    let print = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";

    // Certificate-bound (RFC 8705).
    let cert = svc
        .issue(pb::IssueRequest {
            cert_thumbprint: print.into(),
            ..issue_req("alice", "acme")
        })
        .await
        .unwrap();
    assert_eq!(
        exchange(&svc, exchange_req(&cert.access_token, "billing", &[]))
            .await
            .unwrap_err(),
        "TOKEN_BINDING_MISMATCH"
    );
    let other_print = "1ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
    assert_eq!(
        exchange(
            &svc,
            pb::ExchangeRequest {
                cert_thumbprint: other_print.into(),
                ..exchange_req(&cert.access_token, "billing", &[])
            }
        )
        .await
        .unwrap_err(),
        "TOKEN_BINDING_MISMATCH"
    );
    let derived = exchange(
        &svc,
        pb::ExchangeRequest {
            cert_thumbprint: print.into(),
            ..exchange_req(&cert.access_token, "billing", &[])
        },
    )
    .await
    .expect("with the certificate's thumbprint");
    // The derived token is a bearer token: it verifies with no certificate.
    assert!(verify(&svc, &derived.access_token, "billing", true)
        .await
        .is_ok());
    assert!(introspect(s.http(0), &derived.access_token)
        .await
        .get("cnf")
        .is_none());

    // DPoP-bound (RFC 9449).
    let key = tessera_client::DpopKey::generate().unwrap();
    let dpop = svc
        .issue(pb::IssueRequest {
            dpop_jkt: key.jkt().to_owned(),
            ..issue_req("bob", "acme")
        })
        .await
        .unwrap();
    let url = "https://orders.example.com/checkout";
    let with_proof = |proof: String| pb::ExchangeRequest {
        dpop_proof: proof,
        http_method: "POST".into(),
        http_url: url.into(),
        ..exchange_req(&dpop.access_token, "billing", &[])
    };
    assert_eq!(
        exchange(&svc, exchange_req(&dpop.access_token, "billing", &[]))
            .await
            .unwrap_err(),
        "TOKEN_BINDING_MISMATCH"
    );
    let stranger = tessera_client::DpopKey::generate().unwrap();
    let now = tessera_core::unix_now_ms() / 1000;
    let foreign_proof = stranger
        .proof("POST", url, Some(&dpop.access_token), now)
        .unwrap();
    assert_eq!(
        exchange(&svc, with_proof(foreign_proof)).await.unwrap_err(),
        "TOKEN_BINDING_MISMATCH"
    );
    let proof = key
        .proof("POST", url, Some(&dpop.access_token), now)
        .unwrap();
    // The resource server checked the proof with Verify first: Exchange
    // still takes it once (its own replay set), and never twice.
    let seen = pb::VerifyRequest {
        access_token: dpop.access_token.clone(),
        dpop_proof: proof.clone(),
        http_method: "POST".into(),
        http_url: url.into(),
        ..Default::default()
    };
    svc.verify(seen)
        .await
        .expect("the resource server's Verify");
    let derived = exchange(&svc, with_proof(proof.clone()))
        .await
        .expect("with its proof");
    assert_eq!(
        exchange(&svc, with_proof(proof)).await.unwrap_err(),
        "DPOP_PROOF_REPLAYED"
    );
    let body = introspect(s.http(0), &derived.access_token).await;
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("cnf").is_none());
    assert!(verify(&svc, &derived.access_token, "billing", false)
        .await
        .is_ok());
}

// === budget and audit ===

async fn exchanges_count_against_the_callers_budget(backend: Backend) {
    let s = Setup::start(backend, 1, &["--caller-rate=Exchange=1:2"]).await;
    let svc = s.client(0, "svc-key").await;
    let user = svc.issue(issue_req("alice", "acme")).await.unwrap();
    let mut outcomes = Vec::new();
    for _ in 0..6 {
        outcomes.push(
            exchange(&svc, exchange_req(&user.access_token, "billing", &[]))
                .await
                .err()
                .unwrap_or_default(),
        );
    }
    // A burst of 2, then one per second: of six back-to-back calls the
    // first two pass and the budget refuses the next (only a box taking a
    // second per call could let all of them through).
    assert_eq!(outcomes[..2], ["", ""], "{outcomes:?}");
    assert_eq!(outcomes[2], "RATE_LIMITED", "{outcomes:?}");
    assert!(
        outcomes.iter().all(|o| o.is_empty() || o == "RATE_LIMITED"),
        "{outcomes:?}"
    );
    // Another caller's budget is its own: `plain` gets its usual refusal.
    plain_may_not_exchange(&s, &user.access_token).await;
}

on_both_stores!(
    exchange_narrows_and_shows_the_actor,
    act_chains_nest_up_to_the_maximum_depth,
    the_maximum_depth_is_configurable,
    revoking_the_parent_kills_every_derived_token,
    revoking_a_derived_token_leaves_parent_and_siblings,
    hostile_subject_and_actor_tokens_are_refused,
    bound_subject_tokens_need_their_proof_and_derive_bearer_tokens,
    exchanges_count_against_the_callers_budget,
);

// === over HTTP ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_exchange_grant_answers_rfc8693() {
    let s = Setup::start(Backend::Memory, 1, &[]).await;
    let http = s.http(0);
    let svc = s.client(0, "svc-key").await;
    let user = svc.issue(issue_req("alice", "acme")).await.unwrap();
    let auth = basic("svc", "svc-key");
    let grant = |extra: &[(&'static str, &str)]| {
        let mut pairs = vec![("grant_type", GRANT), ("subject_token_type", ACCESS_TYPE)];
        pairs.extend_from_slice(extra);
        form(&pairs)
    };
    let token = user.access_token.as_str();

    // RFC 8693 §2.2.1, field by field.
    let a = post(
        http,
        "/oauth2/token",
        &[FORM, ("Authorization", &auth)],
        &grant(&[
            ("subject_token", token),
            ("audience", "billing"),
            ("scope", "read"),
        ]),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("cache-control").as_deref(), Some("no-store"));
    let body = a.json();
    let issued = body["access_token"].as_str().expect("access_token");
    assert_eq!(body["issued_token_type"], ACCESS_TYPE);
    assert_eq!(body["token_type"], "Bearer");
    let expires_in = body["expires_in"].as_i64().expect("expires_in");
    assert!(
        expires_in > 0 && expires_in <= user.expires_in,
        "{expires_in}"
    );
    assert_eq!(body["scope"], "read");
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh token (RFC 8693 §2.2.1)"
    );
    let claims = verify(&svc, issued, "billing", true).await.unwrap();
    assert_eq!(
        (claims.subject.as_str(), claims.actors.as_slice()),
        ("alice", &["svc".to_owned()][..])
    );

    // The credentials in the body, `resource` for the audience, an actor
    // token, and the API key header all work too.
    let actor = svc.issue(issue_req("gateway-svc", "acme")).await.unwrap();
    let a = post(
        http,
        "/oauth2/token",
        &[FORM],
        &grant(&[
            ("subject_token", token),
            ("resource", "ledger"),
            ("actor_token", &actor.access_token),
            ("actor_token_type", ACCESS_TYPE),
            ("requested_token_type", ACCESS_TYPE),
            ("client_id", "svc"),
            ("client_secret", "svc-key"),
        ]),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let issued = a.json()["access_token"].as_str().unwrap().to_owned();
    let claims = verify(&svc, &issued, "ledger", false).await.unwrap();
    assert_eq!(claims.actors, ["gateway-svc"]);
    assert_eq!(a.json()["scope"], "read write");
    let a = post(
        http,
        "/oauth2/token",
        &[FORM, ("x-tessera-key", "svc-key")],
        &grant(&[("subject_token", token), ("audience", "audit")]),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);

    // RFC 8693 §2.2.2 (RFC 6749 §5.2) errors.
    let revoked = svc.issue(issue_req("bob", "acme")).await.unwrap();
    svc.revoke(pb::RevokeRequest {
        target: Some(pb::revoke_request::Target::SessionId(
            revoked.session_id.clone(),
        )),
        ..Default::default()
    })
    .await
    .unwrap();
    /// (what, form parameters, status, RFC 6749 §5.2 error code)
    type Case<'a> = (&'a str, Vec<(&'static str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "no subject_token",
            vec![("audience", "billing")],
            400,
            "invalid_request",
        ),
        (
            "an unknown subject_token_type",
            vec![
                ("subject_token", token),
                ("audience", "billing"),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:saml2",
                ),
            ],
            400,
            "invalid_request",
        ),
        (
            "actor_token without its type",
            vec![
                ("subject_token", token),
                ("audience", "billing"),
                ("actor_token", token),
            ],
            400,
            "invalid_request",
        ),
        (
            "a refresh token requested",
            vec![
                ("subject_token", token),
                ("audience", "billing"),
                (
                    "requested_token_type",
                    "urn:ietf:params:oauth:token-type:refresh_token",
                ),
            ],
            400,
            "invalid_request",
        ),
        (
            "no audience",
            vec![("subject_token", token)],
            400,
            "invalid_target",
        ),
        (
            "an audience the caller may not request",
            vec![("subject_token", token), ("audience", "payroll")],
            400,
            "invalid_target",
        ),
        (
            "wider scopes",
            vec![
                ("subject_token", token),
                ("audience", "billing"),
                ("scope", "read admin"),
            ],
            400,
            "invalid_scope",
        ),
        (
            "a revoked subject token",
            vec![
                ("subject_token", &revoked.access_token),
                ("audience", "billing"),
            ],
            400,
            "invalid_grant",
        ),
        (
            "a refresh token as subject",
            vec![
                ("subject_token", &user.refresh_token),
                ("audience", "billing"),
            ],
            400,
            "invalid_grant",
        ),
    ];
    for (what, extra, status, error) in cases {
        let body = if what == "an unknown subject_token_type" {
            form(
                &[("grant_type", GRANT)]
                    .into_iter()
                    .chain(extra)
                    .collect::<Vec<_>>(),
            )
        } else {
            grant(&extra)
        };
        let a = post(
            http,
            "/oauth2/token",
            &[FORM, ("Authorization", &auth)],
            &body,
        )
        .await;
        assert_eq!(
            (a.status, a.json()["error"].as_str().unwrap_or("")),
            (status, error),
            "{what}: {}",
            a.body
        );
    }
    // Callers: none at all, a wrong key, one not allowed Exchange.
    let body = grant(&[("subject_token", token), ("audience", "billing")]);
    let (wrong, reader) = (basic("svc", "not-the-key"), basic("reader", "reader-key"));
    for (auth, status, error) in [
        (None, 401, "invalid_client"),
        (Some(&wrong), 401, "invalid_client"),
        (Some(&reader), 400, "unauthorized_client"),
    ] {
        let mut headers = vec![FORM];
        headers.extend(auth.map(|a| ("Authorization", a.as_str())));
        let a = post(http, "/oauth2/token", &headers, &body).await;
        assert_eq!(
            (a.status, a.json()["error"].as_str()),
            (status, Some(error))
        );
    }

    // Discovery names the grant.
    let (_, metadata) = http_get(http, "/.well-known/oauth-authorization-server").await;
    let metadata: Value = serde_json::from_str(&metadata).unwrap();
    assert!(
        metadata["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&Value::from(GRANT)),
        "{metadata}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_records_exchanges_without_tokens() {
    let env = Env::new(Backend::Memory).await;
    let dir = tempfile::tempdir().unwrap();
    let callers = callers(&dir);
    let process = Process::start(&env.flags(&[&callers])).await;
    let server = process.server();
    let svc = TesseraClient::connect(&server.url(), Some("svc-key"))
        .await
        .unwrap();
    let user = svc.issue(issue_req("alice", "acme")).await.unwrap();
    let derived = exchange(&svc, exchange_req(&user.access_token, "billing", &["read"]))
        .await
        .unwrap();
    let _ = exchange(&svc, exchange_req(&user.access_token, "payroll", &[])).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let lines = loop {
        let text = process.log_text();
        let lines: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == tessera::audit::TARGET)
            .filter(|v| v["fields"]["event"] == "exchanged")
            .collect();
        if lines.len() >= 2 || Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(lines.len(), 2, "{lines:?}");
    let ok = lines
        .iter()
        .find(|l| l["fields"]["outcome"] == "ok")
        .expect("the exchange");
    assert_eq!(ok["fields"]["subject"], "alice");
    assert_eq!(ok["fields"]["tenant"], "acme");
    assert_eq!(ok["fields"]["caller"], "svc");
    assert_eq!(ok["fields"]["session_id"], user.session_id.as_str());
    let detail: Value = serde_json::from_str(ok["fields"]["detail"].as_str().unwrap()).unwrap();
    assert_eq!(
        detail,
        serde_json::json!({"actors": ["svc"], "audience": ["billing"]})
    );
    assert!(lines.iter().any(|l| l["fields"]["outcome"] == "refused"));
    let text = process.log_text();
    for secret in [
        &user.access_token,
        &derived.access_token,
        &user.refresh_token,
    ] {
        let signature = secret.rsplit(['.']).next().unwrap();
        assert!(!text.contains(signature), "a token reached the log");
    }
}
