//! Session lifecycle: sliding renewal, absolute lifetime, clock skew,
//! device binding.

use std::collections::HashSet;
use std::time::Duration;

use crate::support::*;
use tessera::pb;
use tessera::tokens::{self, AccessClaims};

fn now() -> i64 {
    tessera::clock::now_ms() / 1000
}

/// A token of a real session (from `pair`), re-signed with the test key and
/// expiring in `remaining` seconds.
fn token_of(env: &Env, pair: &pb::TokenPair, jti: &str, remaining: i64) -> String {
    let n = now();
    let claims = AccessClaims {
        iss: "tessera-test".into(),
        sub: "alice".into(),
        aud: vec!["api".into()],
        exp: n + remaining,
        nbf: n - 60,
        iat: n - 60,
        jti: jti.into(),
        sid: pair.session_id.clone(),
        tid: "acme".into(),
        roles: vec![],
        scope: "read".into(),
        cnf: None,
        act: None,
        custom: Default::default(),
    };
    tokens::mint(&env.key.keyset(), &claims).unwrap()
}

fn renew(token: &str) -> pb::VerifyRequest {
    pb::VerifyRequest {
        access_token: token.into(),
        renew: true,
        ..Default::default()
    }
}

async fn renewal_follows_the_three_bands(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env.server(&[]).await; // warning 15m, critical 5m
    let mut c = server.client().await;
    let pair = issue(&mut c, "alice").await;

    // Above warning: nothing.
    let r = c
        .verify(renew(&token_of(&env, &pair, "j-far", 20 * 60)))
        .await
        .unwrap();
    assert!(r.metadata().get("x-new-token").is_none());
    assert!(r.into_inner().renewed_access_token.is_empty());

    // Between the thresholds: the session's idle expiry moves, no new token.
    let key = format!("{}s:{}", key_prefix_of(&pair.session_id), pair.session_id);
    if let Some(redis) = &env.redis {
        redis.command(&format!("PEXPIRE {key} 100000")).await;
    }
    let r = c
        .verify(renew(&token_of(&env, &pair, "j-mid", 10 * 60)))
        .await
        .unwrap()
        .into_inner();
    assert!(r.renewed_access_token.is_empty());
    if let Some(redis) = &env.redis {
        let ttl: i64 = redis
            .command(&format!("PTTL {key}"))
            .await
            .trim()
            .trim_start_matches(':')
            .parse()
            .unwrap();
        assert!(
            ttl > 7 * 86_400_000 - 60_000,
            "idle expiry extended to a week, got {ttl} ms"
        );
    }

    // Below critical: a new token, in the body and in `x-new-token`.
    let old = token_of(&env, &pair, "j-near", 2 * 60);
    let r = c.verify(renew(&old)).await.unwrap();
    let header = r
        .metadata()
        .get("x-new-token")
        .expect("x-new-token")
        .to_str()
        .unwrap()
        .to_owned();
    let body = r.into_inner();
    assert_eq!(body.renewed_access_token, header);
    let renewed = c
        .verify(verify_request(&header))
        .await
        .unwrap()
        .into_inner()
        .claims
        .unwrap();
    assert_eq!(renewed.session_id, pair.session_id);
    assert_ne!(renewed.token_id, "j-near");
    assert_eq!(body.renewed_expires_at, renewed.expires_at);
    assert!(
        renewed.expires_at.unwrap().seconds > now() + 2 * 60,
        "the new token lives longer"
    );
    // Without renew = true, nothing happens even below critical.
    let r = c.verify(verify_request(&old)).await.unwrap();
    assert!(r.metadata().get("x-new-token").is_none());
}

async fn renewal_can_be_switched_off(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env.server(&["--renewal=false"]).await;
    let mut c = server.client().await;
    let pair = issue(&mut c, "alice").await;
    let r = c
        .verify(renew(&token_of(&env, &pair, "j", 60)))
        .await
        .unwrap();
    assert!(r.metadata().get("x-new-token").is_none());
    assert!(r.into_inner().renewed_access_token.is_empty());
}

async fn revoked_sessions_are_never_renewed(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env.server(&[]).await;
    let mut c = server.client().await;
    let pair = issue(&mut c, "alice").await;
    c.revoke(revoke_session_id(&pair.session_id)).await.unwrap();
    let token = token_of(&env, &pair, "j", 60);
    let status = c.verify(renew(&token)).await.unwrap_err();
    assert_eq!(reason(&status), "TOKEN_REVOKED");
    assert!(status.metadata().get("x-new-token").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_renewals_on_two_replicas_agree() {
    let env = Env::new(Backend::Redis).await;
    let a = env.server(&[]).await;
    let b = env.server(&[]).await;
    let mut ca = a.client().await;
    let cb = b.client().await;
    let pair = issue(&mut ca, "alice").await;
    let token = token_of(&env, &pair, "j-shared", 60);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let mut c = if i % 2 == 0 { ca.clone() } else { cb.clone() };
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            c.verify(renew(&token))
                .await
                .unwrap()
                .into_inner()
                .renewed_access_token
        }));
    }
    let mut distinct = HashSet::new();
    for t in tasks {
        distinct.insert(t.await.unwrap());
    }
    assert_eq!(distinct.len(), 1, "one new token for all: {distinct:?}");
    assert!(!distinct.iter().next().unwrap().is_empty());
}

async fn absolute_lifetime_is_never_extended(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env
        .server(&["--session-lifetime=3s", "--refresh-grace=0s"])
        .await;
    let mut c = server.client().await;
    let start = now();
    let mut pair = issue(&mut c, "alice").await;
    assert!(pair.refresh_expires_in <= 3);
    assert!(pair.access_expires_at.unwrap().seconds <= start + 4);
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    loop {
        match c.refresh(refresh_req(&pair.refresh_token)).await {
            Ok(r) => {
                pair = r.into_inner().tokens.unwrap();
                assert!(
                    pair.access_expires_at.unwrap().seconds <= start + 4,
                    "access token outlives the session"
                );
                assert!(now() <= start + 4, "refreshed past the absolute lifetime");
            }
            Err(s) => {
                assert_eq!(reason(&s), "REFRESH_TOKEN_INVALID");
                assert!(now() >= start + 2, "ended too early");
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the session never ended"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn clock_skew_is_tolerated_within_the_leeway(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env.server(&["--leeway=30s"]).await;
    let mut c = server.client().await;
    let keys = env.key.keyset();
    let mint = |nbf_offset: i64, iat_offset: i64| {
        let n = now();
        tokens::mint(
            &keys,
            &AccessClaims {
                iss: "tessera-test".into(),
                sub: "s".into(),
                aud: vec![],
                exp: n + 600,
                nbf: n + nbf_offset,
                iat: n + iat_offset,
                jti: "j".into(),
                sid: "sid".into(),
                tid: String::new(),
                roles: vec![],
                scope: String::new(),
                cnf: None,
                act: None,
                custom: Default::default(),
            },
        )
        .unwrap()
    };
    // Minted by a server whose clock runs 20 s ahead: still fine.
    c.verify(verify_request(&mint(20, 20)))
        .await
        .expect("nbf/iat inside the leeway");
    expect_reason(
        c.verify(verify_request(&mint(90, 0))).await,
        "TOKEN_NOT_YET_VALID",
    );
    expect_reason(
        c.verify(verify_request(&mint(0, 90))).await,
        "TOKEN_NOT_YET_VALID",
    );

    // A client whose clock is an hour off still schedules its refresh right:
    // expires_in is relative, measured on the server's clock.
    let pair = issue(&mut c, "alice").await;
    let skewed_client_now = now() + 3600;
    let refresh_at = skewed_client_now + pair.expires_in - 60;
    assert!(
        refresh_at - skewed_client_now <= 900 - 60 && refresh_at - skewed_client_now >= 900 - 62
    );
    let v = c
        .verify(verify_request(&pair.access_token))
        .await
        .unwrap()
        .into_inner();
    let server_time = v.server_time.unwrap().seconds;
    assert_eq!(
        v.expires_in,
        v.claims.unwrap().expires_at.unwrap().seconds - server_time
    );
}

async fn device_binding(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env.server(&["--refresh-grace=0s"]).await;
    let mut c = server.client().await;
    let bound = c
        .issue(pb::IssueRequest {
            device_fingerprint: "device-1".into(),
            ..issue_request("alice")
        })
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    // Only a hash is in the token.
    assert!(!String::from_utf8_lossy(&base64_payload(&bound.access_token)).contains("device-1"));
    let v = |fp: &str| pb::VerifyRequest {
        access_token: bound.access_token.clone(),
        device_fingerprint: fp.into(),
        ..Default::default()
    };
    c.verify(v("device-1")).await.expect("same device");
    expect_reason(c.verify(v("device-2")).await, "FINGERPRINT_MISMATCH");
    expect_reason(c.verify(v("")).await, "FINGERPRINT_MISMATCH");
    let r = |fp: &str| refresh_on(&bound.refresh_token, fp);
    expect_reason(c.refresh(r("device-2")).await, "FINGERPRINT_MISMATCH");
    expect_reason(c.refresh(r("")).await, "FINGERPRINT_MISMATCH");
    // A mismatch changed nothing: the right device still rotates.
    let next = c
        .refresh(r("device-1"))
        .await
        .expect("same device refreshes")
        .into_inner()
        .tokens
        .unwrap();
    let v2 = pb::VerifyRequest {
        access_token: next.access_token,
        device_fingerprint: "device-1".into(),
        ..Default::default()
    };
    c.verify(v2)
        .await
        .expect("binding carries over to rotated tokens");

    // Unbound sessions ignore any fingerprint.
    let free = issue(&mut c, "bob").await;
    c.verify(pb::VerifyRequest {
        access_token: free.access_token,
        device_fingerprint: "x".into(),
        ..Default::default()
    })
    .await
    .expect("unbound");
    c.refresh(refresh_on(&free.refresh_token, "x"))
        .await
        .expect("unbound");
}

fn base64_payload(token: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').nth(1).unwrap())
        .unwrap()
}

on_both_stores!(
    renewal_follows_the_three_bands,
    renewal_can_be_switched_off,
    revoked_sessions_are_never_renewed,
    absolute_lifetime_is_never_extended,
    clock_skew_is_tolerated_within_the_leeway,
    device_binding,
);
