//! The verified-token cache (`--verify-cache-size`): a token seen before
//! skips parsing and the signature, and nothing else. Each test first makes
//! sure the token is cached (a hit shows in `/metrics`), then asks for what
//! the cache must not answer. Other suites run with the cache on as well
//! (it is on by default): `hostile_tokens` presents every case twice,
//! `key_rotation` drops a key whose token was cached,
//! `authority::short_access_ttl_from_config_expires` lets a cached token expire.

use std::time::{Duration, Instant};

use crate::support::*;
use tessera::pb;

async fn metrics(server: &Server) -> String {
    let (status, body) = server.admin_get("/metrics").await;
    assert_eq!(status, 200);
    body
}

async fn cache_hits(server: &Server) -> f64 {
    metric(&metrics(server).await, "tessera_verify_cache_hits_total").unwrap_or(0.0)
}

/// Verify `req` twice and check that the second answer came from the cache.
async fn verify_twice_cached(server: &Server, c: &mut Client, req: pb::VerifyRequest) {
    c.verify(req.clone()).await.expect("first verification");
    let hits = cache_hits(server).await;
    c.verify(req).await.expect("cached verification");
    assert_eq!(cache_hits(server).await, hits + 1.0, "not a cache hit");
}

async fn cached_tokens_are_checked_every_time(backend: Backend) {
    let env = Env::new(backend).await;
    // A process of its own, so that /metrics counts only this server.
    let process = Process::start(&env.flags(&[])).await;
    let server = process.server();
    let mut c = server.client().await;

    // Audience, device binding and scopes, on a cached token.
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
    let good = pb::VerifyRequest {
        audience: "api".into(),
        device_fingerprint: "device-1".into(),
        required_scopes: vec!["read".into()],
        ..verify_request(&bound.access_token)
    };
    verify_twice_cached(&server, &mut c, good.clone()).await;
    for (req, want) in [
        (
            pb::VerifyRequest {
                audience: "billing".into(),
                ..good.clone()
            },
            "AUDIENCE_MISMATCH",
        ),
        (
            pb::VerifyRequest {
                device_fingerprint: "device-2".into(),
                ..good.clone()
            },
            "FINGERPRINT_MISMATCH",
        ),
        (
            pb::VerifyRequest {
                required_scopes: vec!["admin".into()],
                ..good.clone()
            },
            "SCOPE_MISSING",
        ),
    ] {
        expect_reason(c.verify(req).await, want);
    }
    // One byte of the cached token's signature changed (inside it: the last
    // character also holds padding bits): never a hit.
    let mut forged = bound.access_token.clone().into_bytes();
    let inside = forged.len() - 10;
    forged[inside] = if forged[inside] == b'A' { b'B' } else { b'A' };
    let hits = cache_hits(&server).await;
    expect_reason(
        c.verify(verify_request(&String::from_utf8(forged).unwrap()))
            .await,
        "TOKEN_SIGNATURE_INVALID",
    );
    assert_eq!(cache_hits(&server).await, hits);

    // Revocation of the token, its session, its subject: at once on
    // CONSISTENCY_STRONG, once the feed has it on the default path.
    let pairs = [
        issue(&mut c, "bob").await,
        issue(&mut c, "carol").await,
        issue(&mut c, "dave").await,
    ];
    for pair in &pairs {
        verify_twice_cached(&server, &mut c, verify_request(&pair.access_token)).await;
        verify_twice_cached(&server, &mut c, strong(&pair.access_token)).await;
    }
    c.revoke(revoke_token(&pairs[0].access_token))
        .await
        .unwrap();
    c.revoke(revoke_session_id(&pairs[1].session_id))
        .await
        .unwrap();
    c.revoke(revoke_subject("acme", "dave")).await.unwrap();
    for pair in &pairs {
        expect_reason(c.verify(strong(&pair.access_token)).await, "TOKEN_REVOKED");
        wait_revoked(&mut c, &pair.access_token).await;
    }

    let text = metrics(&server).await;
    for name in [
        "tessera_verify_cache_misses_total",
        "tessera_verify_cache_entries",
        "tessera_verify_cache_bytes",
    ] {
        assert!(metric(&text, name).unwrap_or(0.0) > 0.0, "{name}: {text}");
    }
    assert!(metric_with(
        &text,
        "tessera_verify_cache_evictions_total",
        &[("cause", "capacity")]
    )
    .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_tokens_are_checked_every_time_memory() {
    cached_tokens_are_checked_every_time(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_tokens_are_checked_every_time_redis() {
    cached_tokens_are_checked_every_time(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_token_expires_and_leaves_the_cache() {
    let env = Env::new(Backend::Memory).await;
    let process = Process::start(&env.flags(&["--access-ttl=1s", "--leeway=0s"])).await;
    let server = process.server();
    let mut c = server.client().await;
    let pair = issue(&mut c, "alice").await;
    let req = verify_request(&pair.access_token);
    match c.verify(req.clone()).await {
        // Issued late in a second, the token may already be dead.
        Err(s) => assert_eq!(reason(&s), "TOKEN_EXPIRED"),
        Ok(_) => {
            let deadline = Instant::now() + Duration::from_secs(5);
            while c.verify(req.clone()).await.is_ok() {
                assert!(Instant::now() < deadline, "the cached token never expired");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(cache_hits(&server).await >= 1.0);
            expect_reason(c.verify(req).await, "TOKEN_EXPIRED");
            let text = metrics(&server).await;
            assert_eq!(metric(&text, "tessera_verify_cache_entries"), Some(0.0));
            assert!(
                metric_with(
                    &text,
                    "tessera_verify_cache_evictions_total",
                    &[("cause", "expired")]
                )
                .unwrap_or(0.0)
                    >= 1.0,
                "{text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_stays_within_its_bounds_and_zero_turns_it_off() {
    let env = Env::new(Backend::Memory).await;
    let process = Process::start(&env.flags(&[
        "--verify-cache-size=16",
        "--issue-rate=off",
        "--caller-rate=Issue=off",
    ]))
    .await;
    let server = process.server();
    let mut c = server.client().await;
    for i in 0..200 {
        let pair = issue(&mut c, &format!("user-{i}")).await;
        c.verify(verify_request(&pair.access_token)).await.unwrap();
    }
    let text = metrics(&server).await;
    let entries = metric(&text, "tessera_verify_cache_entries").unwrap();
    assert!(entries > 0.0 && entries <= 16.0, "{entries}");
    assert!(
        metric_with(
            &text,
            "tessera_verify_cache_evictions_total",
            &[("cause", "capacity")]
        )
        .unwrap()
            >= 184.0,
        "{text}"
    );

    let off = Process::start(&env.flags(&["--verify-cache-size=0"])).await;
    let server = off.server();
    let mut c = server.client().await;
    let pair = issue(&mut c, "alice").await;
    for _ in 0..3 {
        c.verify(verify_request(&pair.access_token)).await.unwrap();
    }
    let text = metrics(&server).await;
    assert_eq!(
        metric(&text, "tessera_verify_cache_hits_total"),
        None,
        "{text}"
    );
}
