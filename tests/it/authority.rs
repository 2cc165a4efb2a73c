//! The authority end to end over real gRPC, on both stores: issue, verify,
//! refresh with rotation, grace window and reuse detection, revocation, and
//! argument validation.

use std::time::Duration;

use crate::support::*;
use serde_json::json;
use tessera::pb;
use tessera::tokens::{self, AccessClaims};

fn custom_claims() -> prost_types::Struct {
    tessera::authority::convert::json_to_struct(
        json!({"plan": "pro", "org": {"id": 7, "tags": ["a", "b"]}, "beta": true})
            .as_object()
            .unwrap(),
    )
}

/// Claims like the server would mint, for tokens the test signs itself.
fn test_claims(now: i64) -> AccessClaims {
    AccessClaims {
        iss: "tessera-test".into(),
        sub: "eve".into(),
        aud: vec!["api".into()],
        exp: now + 600,
        nbf: now,
        iat: now,
        jti: "test-jti".into(),
        sid: "test-sid".into(),
        tid: "acme".into(),
        roles: vec![],
        scope: "read".into(),
        cnf: None,
        act: None,
        custom: Default::default(),
    }
}

fn now() -> i64 {
    tessera::clock::now_ms() / 1000
}

async fn issue_then_verify_returns_every_claim(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env.server(&[]).await;
    let mut c = server.client().await;
    let mut req = issue_request("alice");
    req.claims = Some(custom_claims());
    let pair = c.issue(req).await.unwrap().into_inner().tokens.unwrap();
    assert_eq!(pair.token_type, "Bearer");
    assert!(
        pair.expires_in > 890 && pair.expires_in <= 900,
        "{}",
        pair.expires_in
    );
    assert!(!pair.session_id.is_empty());

    let r = c
        .verify(verify_request(&pair.access_token))
        .await
        .unwrap()
        .into_inner();
    let claims = r.claims.unwrap();
    assert_eq!(claims.subject, "alice");
    assert_eq!(claims.tenant, "acme");
    assert_eq!(claims.session_id, pair.session_id);
    assert_eq!(claims.audience, vec!["api"]);
    assert_eq!(claims.roles, vec!["admin"]);
    assert_eq!(claims.scopes, vec!["read", "write"]);
    assert_eq!(claims.issuer, "tessera-test");
    assert!(!claims.token_id.is_empty());
    assert_eq!(
        claims.expires_at.unwrap().seconds,
        pair.access_expires_at.unwrap().seconds
    );
    let custom = tessera::authority::convert::struct_to_json_lossy(&claims.custom.unwrap());
    assert_eq!(
        custom,
        json!({"plan": "pro", "org": {"id": 7, "tags": ["a", "b"]}, "beta": true})
    );
    assert!(r.server_time.is_some());
    assert!(r.renewed_access_token.is_empty());

    // The header names the key, and the JWKS publishes it.
    let header = jsonwebtoken::decode_header(&pair.access_token).unwrap();
    let jwks: serde_json::Value = serde_json::from_str(
        &c.get_jwks(pb::GetJwksRequest::default())
            .await
            .unwrap()
            .into_inner()
            .jwks_json,
    )
    .unwrap();
    assert_eq!(jwks["keys"][0]["kid"].as_str(), header.kid.as_deref());
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
}

async fn expired_and_not_yet_valid_tokens_are_refused(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env.server(&["--leeway=30s"]).await;
    let mut c = server.client().await;
    let keys = env.key.keyset();

    let mut expired = test_claims(now() - 1000);
    expired.exp = now() - 31;
    let token = tokens::mint(&keys, &expired).unwrap();
    expect_reason(c.verify(verify_request(&token)).await, "TOKEN_EXPIRED");

    // Within the leeway it still verifies.
    let mut recent = test_claims(now() - 1000);
    recent.exp = now() - 5;
    let token = tokens::mint(&keys, &recent).unwrap();
    c.verify(verify_request(&token))
        .await
        .expect("inside leeway");

    let mut future = test_claims(now());
    future.nbf = now() + 120;
    let token = tokens::mint(&keys, &future).unwrap();
    expect_reason(
        c.verify(verify_request(&token)).await,
        "TOKEN_NOT_YET_VALID",
    );
}

async fn short_access_ttl_from_config_expires(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env.server(&["--access-ttl=1s", "--leeway=0s"]).await;
    let mut c = server.client().await;
    let pair = issue(&mut c, "bob").await;
    assert!(pair.expires_in <= 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match c.verify(verify_request(&pair.access_token)).await {
            Ok(_) => assert!(std::time::Instant::now() < deadline, "token never expired"),
            Err(s) => {
                assert_eq!(reason(&s), "TOKEN_EXPIRED");
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn forged_tokens_are_refused(backend: Backend) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    let env = Env::new(backend).await;
    let server = env.server(&[]).await;
    let mut c = server.client().await;
    let pair = issue(&mut c, "alice").await;
    let parts: Vec<&str> = pair.access_token.split('.').collect();

    // Payload swapped under a valid signature.
    let mut payload: serde_json::Value =
        serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    payload["sub"] = json!("mallory");
    let swapped = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(payload.to_string()),
        parts[2]
    );
    expect_reason(
        c.verify(verify_request(&swapped)).await,
        "TOKEN_SIGNATURE_INVALID",
    );

    // Signature bytes flipped.
    let mut sig = B64.decode(parts[2]).unwrap();
    sig[0] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], B64.encode(sig));
    expect_reason(
        c.verify(verify_request(&flipped)).await,
        "TOKEN_SIGNATURE_INVALID",
    );

    // alg: none, signature stripped.
    let mut header: serde_json::Value =
        serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
    header["alg"] = json!("none");
    let none = format!("{}.{}.", B64.encode(header.to_string()), parts[1]);
    expect_reason(
        c.verify(verify_request(&none)).await,
        "TOKEN_SIGNATURE_INVALID",
    );

    // Not a JWT at all.
    expect_reason(c.verify(verify_request("garbage")).await, "TOKEN_MALFORMED");

    // A token signed by a key the server does not have.
    let other = tessera::keys::KeySet::ephemeral().unwrap();
    let foreign = tokens::mint(&other, &test_claims(now())).unwrap();
    expect_reason(
        c.verify(verify_request(&foreign)).await,
        "TOKEN_SIGNATURE_INVALID",
    );
}

async fn issuer_and_audience_are_checked(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env.server(&[]).await;
    let mut c = server.client().await;
    let pair = issue(&mut c, "alice").await;

    let mut req = verify_request(&pair.access_token);
    req.audience = "billing".into();
    expect_reason(c.verify(req).await, "AUDIENCE_MISMATCH");
    let mut req = verify_request(&pair.access_token);
    req.audience = "api".into();
    c.verify(req).await.expect("right audience");

    let mut other = test_claims(now());
    other.iss = "someone-else".into();
    let token = tokens::mint(&env.key.keyset(), &other).unwrap();
    expect_reason(c.verify(verify_request(&token)).await, "ISSUER_MISMATCH");

    let mut req = verify_request(&pair.access_token);
    req.required_scopes = vec!["read".into(), "admin".into()];
    let status = expect_reason(c.verify(req).await, "SCOPE_MISSING");
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
}

async fn refresh_rotates_and_keeps_the_old_access_token(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env.server(&[]).await;
    let mut c = server.client().await;
    let first = issue(&mut c, "alice").await;
    let second = refreshed(&mut c, &first.refresh_token).await;
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_ne!(second.access_token, first.access_token);
    assert_eq!(second.session_id, first.session_id);
    // The in-flight access token is not killed by rotation (zitadel#9331).
    c.verify(verify_request(&first.access_token))
        .await
        .expect("old access token still valid");
    let claims = c
        .verify(verify_request(&second.access_token))
        .await
        .unwrap()
        .into_inner()
        .claims
        .unwrap();
    assert_eq!(claims.subject, "alice");
    assert_eq!(claims.scopes, vec!["read", "write"]);
    // The successor rotates too.
    c.refresh(refresh_req(&second.refresh_token))
        .await
        .expect("second rotation");
}

async fn concurrent_refreshes_get_one_pair(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env.server(&[]).await;
    let mut c = server.client().await;
    let pair = issue(&mut c, "alice").await;
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let mut c = c.clone();
        let token = pair.refresh_token.clone();
        tasks.push(tokio::spawn(async move {
            c.refresh(refresh_req(&token))
                .await
                .map(|r| r.into_inner().tokens.unwrap())
        }));
    }
    let mut pairs = Vec::new();
    for t in tasks {
        pairs.push(t.await.unwrap().expect("every concurrent refresh succeeds"));
    }
    let first = &pairs[0];
    for p in &pairs {
        assert_eq!(p.refresh_token, first.refresh_token);
        assert_eq!(p.access_token, first.access_token);
        assert_eq!(p.access_expires_at, first.access_expires_at);
    }
    assert_ne!(first.refresh_token, pair.refresh_token);
}

async fn replay_after_grace_revokes_the_session(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env.server(&["--refresh-grace=300ms"]).await;
    let mut c = server.client().await;
    let first = issue(&mut c, "alice").await;
    let refresh = refresh_req;
    let second = refreshed(&mut c, &first.refresh_token).await;
    // Inside the window: the same successor.
    let again = refreshed(&mut c, &first.refresh_token).await;
    assert_eq!(again.refresh_token, second.refresh_token);
    tokio::time::sleep(Duration::from_millis(400)).await;
    expect_reason(
        c.refresh(refresh(&first.refresh_token)).await,
        "REFRESH_TOKEN_REUSED",
    );
    // The whole session is dead: refresh and access tokens alike.
    expect_reason(
        c.refresh(refresh(&second.refresh_token)).await,
        "REFRESH_TOKEN_INVALID",
    );
    expect_reason(
        c.verify(strong(&second.access_token)).await,
        "TOKEN_REVOKED",
    );
    expect_reason(
        c.verify(verify_request(&first.access_token)).await,
        "TOKEN_REVOKED",
    );
}

async fn older_generations_are_reuse_too(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env.server(&["--refresh-grace=0s"]).await;
    let mut c = server.client().await;
    let refresh = refresh_req;
    let g0 = issue(&mut c, "alice").await;
    let g1 = refreshed(&mut c, &g0.refresh_token).await;
    let _g2 = refreshed(&mut c, &g1.refresh_token).await;
    // Two generations old: never honoured, and it is theft.
    expect_reason(
        c.refresh(refresh(&g0.refresh_token)).await,
        "REFRESH_TOKEN_REUSED",
    );
}

async fn bad_refresh_tokens_are_invalid(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env.server(&[]).await;
    let mut c = server.client().await;
    let pair = issue(&mut c, "alice").await;
    let refresh = refresh_req;
    expect_reason(
        c.refresh(refresh("nonsense")).await,
        "REFRESH_TOKEN_INVALID",
    );
    // Right session, wrong secret: refused, and the session is NOT revoked
    // (a guess at a session id must not log someone out).
    let (sid, _) = pair.refresh_token.split_once('.').unwrap();
    let guess = format!("{sid}.{}", "A".repeat(43));
    expect_reason(c.refresh(refresh(&guess)).await, "REFRESH_TOKEN_INVALID");
    c.refresh(refresh(&pair.refresh_token))
        .await
        .expect("the real token still works");
    let status = expect_reason(c.refresh(refresh("")).await, "FIELD_INVALID");
    assert_eq!(violations(&status), vec!["refresh_token"]);
}

async fn revoke_by_every_target(backend: Backend) {
    use pb::revoke_request::Target;
    let env = Env::new(backend).await;
    let server = env.server(&[]).await;
    let mut c = server.client().await;
    let revoke = |t: Target| pb::RevokeRequest {
        target: Some(t),
        reason: "test".into(),
        ..Default::default()
    };

    // One access token: only that token dies.
    let a = issue(&mut c, "alice").await;
    let cursor = c
        .revoke(revoke(Target::Token(a.access_token.clone())))
        .await
        .unwrap()
        .into_inner()
        .cursor;
    assert!(!cursor.is_empty());
    expect_reason(
        c.verify(verify_request(&a.access_token)).await,
        "TOKEN_REVOKED",
    );
    expect_reason(c.verify(strong(&a.access_token)).await, "TOKEN_REVOKED");
    c.refresh(refresh_req(&a.refresh_token))
        .await
        .expect("the session lives on");
    // Twice: same event, success.
    let again = c
        .revoke(revoke(Target::Token(a.access_token.clone())))
        .await
        .unwrap()
        .into_inner()
        .cursor;
    assert_eq!(again, cursor);

    // By refresh token: the whole session.
    let b = issue(&mut c, "bob").await;
    c.revoke(revoke(Target::Token(b.refresh_token.clone())))
        .await
        .unwrap();
    expect_reason(
        c.verify(verify_request(&b.access_token)).await,
        "TOKEN_REVOKED",
    );
    expect_reason(
        c.refresh(refresh_req(&b.refresh_token)).await,
        "REFRESH_TOKEN_INVALID",
    );

    // By session id.
    let d = issue(&mut c, "dave").await;
    c.revoke(revoke(Target::SessionId(d.session_id.clone())))
        .await
        .unwrap();
    expect_reason(c.verify(strong(&d.access_token)).await, "TOKEN_REVOKED");
    wait_revoked(&mut c, &d.access_token).await;

    // By subject: every session of carol in acme, nobody else's.
    let c1 = issue(&mut c, "carol").await;
    let c2 = issue(&mut c, "carol").await;
    let other_tenant = c
        .issue(pb::IssueRequest {
            tenant: "globex".into(),
            ..issue_request("carol")
        })
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    let e = issue(&mut c, "erin").await;
    c.revoke(revoke(Target::Subject(pb::SubjectRef {
        tenant: "acme".into(),
        subject: "carol".into(),
    })))
    .await
    .unwrap();
    for t in [&c1, &c2] {
        expect_reason(
            c.verify(verify_request(&t.access_token)).await,
            "TOKEN_REVOKED",
        );
        expect_reason(c.verify(strong(&t.access_token)).await, "TOKEN_REVOKED");
        expect_reason(
            c.refresh(refresh_req(&t.refresh_token)).await,
            "REFRESH_TOKEN_INVALID",
        );
    }
    c.verify(verify_request(&other_tenant.access_token))
        .await
        .expect("other tenant unaffected");
    c.verify(verify_request(&e.access_token))
        .await
        .expect("other subject unaffected");

    // Garbage, unknown session, expired token: success with no event (RFC 7009).
    for t in [
        Target::Token("garbage".into()),
        Target::Token(format!("{}.{}", "A".repeat(22), "B".repeat(43))),
    ] {
        let r = c
            .revoke(revoke(t))
            .await
            .expect("revoking garbage succeeds")
            .into_inner();
        assert!(r.cursor.is_empty());
    }
    let mut old = test_claims(now() - 10_000);
    old.exp = now() - 5_000;
    let expired = tokens::mint(&env.key.keyset(), &old).unwrap();
    assert!(c
        .revoke(revoke(Target::Token(expired)))
        .await
        .unwrap()
        .into_inner()
        .cursor
        .is_empty());
    c.revoke(revoke(Target::SessionId("no-such-session".into())))
        .await
        .expect("unknown session");
    let status = expect_reason(
        c.revoke(pb::RevokeRequest::default()).await,
        "FIELD_INVALID",
    );
    assert_eq!(violations(&status), vec!["target"]);
}

async fn invalid_arguments_are_refused_and_nothing_is_stored(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env.server(&[]).await;
    let mut c = server.client().await;

    let status = expect_reason(c.issue(issue_request("")).await, "FIELD_INVALID");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(violations(&status), vec!["subject"]);
    expect_reason(
        c.issue(issue_request(&"x".repeat(257))).await,
        "FIELD_INVALID",
    );
    c.issue(issue_request(&"x".repeat(256)))
        .await
        .expect("256 bytes is fine");

    for name in ["exp", "sub", "iss", "jti"] {
        let mut req = issue_request("alice");
        req.claims = Some(tessera::authority::convert::json_to_struct(
            json!({ name: 1 }).as_object().unwrap(),
        ));
        let status = expect_reason(c.issue(req).await, "FIELD_INVALID");
        assert_eq!(violations(&status), vec!["claims"], "{name}");
    }
    let mut req = issue_request("");
    req.scopes = vec!["has space".into()];
    req.access_ttl = Some(prost_types::Duration {
        seconds: -5,
        nanos: 0,
    });
    let status = expect_reason(c.issue(req).await, "FIELD_INVALID");
    assert_eq!(
        violations(&status),
        vec!["subject", "scopes", "access_ttl"],
        "all violations at once"
    );

    // Claims that would make a token Verify refuses (> 8 KiB) are refused at Issue.
    let mut req = issue_request("alice");
    req.roles = (0..60)
        .map(|i| format!("role-{i}-{}", "r".repeat(200)))
        .collect();
    let status = expect_reason(c.issue(req).await, "FIELD_INVALID");
    assert_eq!(violations(&status), vec!["claims"]);
    let status = expect_reason(
        c.revoke(pb::RevokeRequest {
            target: Some(pb::revoke_request::Target::SessionId("s".into())),
            reason: "line\nbreak".into(),
            ..Default::default()
        })
        .await,
        "FIELD_INVALID",
    );
    assert_eq!(violations(&status), vec!["reason"]);

    let huge = "a".repeat(8 * 1024 + 1);
    let status = expect_reason(c.verify(verify_request(&huge)).await, "FIELD_INVALID");
    assert_eq!(violations(&status), vec!["access_token"]);
    expect_reason(c.refresh(refresh_req(&huge)).await, "FIELD_INVALID");
    expect_reason(c.revoke(revoke_token(&huge)).await, "FIELD_INVALID");

    if let Some(redis) = &env.redis {
        // Only the one valid 256-byte subject session is in Redis.
        let keys = redis.command("KEYS *").await;
        assert_eq!(keys.matches("}:s:").count(), 1, "{keys}");
    }
}

async fn requested_ttls_are_capped(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env
        .server(&[
            "--max-access-ttl=30m",
            "--refresh-ttl=12h",
            "--max-refresh-ttl=1d",
        ])
        .await;
    let mut c = server.client().await;
    let mut req = issue_request("alice");
    req.access_ttl = Some(prost_types::Duration {
        seconds: 86_400,
        nanos: 0,
    });
    req.refresh_ttl = Some(prost_types::Duration {
        seconds: 90 * 86_400,
        nanos: 0,
    });
    let pair = c.issue(req).await.unwrap().into_inner().tokens.unwrap();
    assert!(
        pair.expires_in <= 1800 && pair.expires_in > 1790,
        "{}",
        pair.expires_in
    );
    assert!(pair.refresh_expires_in <= 86_400 && pair.refresh_expires_in > 86_300);
    let mut req = issue_request("alice");
    req.access_ttl = Some(prost_types::Duration {
        seconds: 60,
        nanos: 0,
    });
    let pair = c.issue(req).await.unwrap().into_inner().tokens.unwrap();
    assert!(pair.expires_in <= 60 && pair.expires_in > 55);
}

on_both_stores!(
    issue_then_verify_returns_every_claim,
    expired_and_not_yet_valid_tokens_are_refused,
    short_access_ttl_from_config_expires,
    forged_tokens_are_refused,
    issuer_and_audience_are_checked,
    refresh_rotates_and_keeps_the_old_access_token,
    concurrent_refreshes_get_one_pair,
    replay_after_grace_revokes_the_session,
    older_generations_are_reuse_too,
    bad_refresh_tokens_are_invalid,
    revoke_by_every_target,
    invalid_arguments_are_refused_and_nothing_is_stored,
    requested_ttls_are_capped,
);
