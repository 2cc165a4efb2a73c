//! The SDK against a real Tessera server on loopback: TokenSource under
//! concurrency, silent refresh, typed session ends, and a LocalVerifier that
//! agrees with the server's `Verify` case by case.

use std::time::{Duration, Instant};

use tessera_client::{pb, ClientError, LocalVerifier, TesseraClient, TokenSource, VerifierOptions};
use tessera_test_support::{hostile_cases, Backend, Env, Server};

/// A server on the in-memory store, with no leeway (the shared harness).
async fn start(extra: &[&str]) -> (Env, Server) {
    let env = Env::new(Backend::Memory).await;
    let mut flags = vec!["--leeway=0s"];
    flags.extend(extra);
    let server = env.server(&flags).await;
    (env, server)
}

async fn client(server: &Server) -> TesseraClient {
    TesseraClient::connect(&server.url(), None)
        .await
        .expect("connect")
}

/// A `LocalVerifier` of the harness's issuer, without leeway, in sync.
async fn in_sync_verifier(c: &TesseraClient) -> LocalVerifier {
    let options = VerifierOptions {
        issuer: "tessera-test".into(),
        leeway: 0,
        ..Default::default()
    };
    let verifier = LocalVerifier::start(c.clone(), options).await.unwrap();
    assert!(verifier.wait_in_sync(Duration::from_secs(5)).await);
    verifier
}

/// "Log out everywhere" for acme's `subject`.
async fn revoke_subject(c: &TesseraClient, subject: &str) {
    c.revoke(pb::RevokeRequest {
        target: Some(pb::revoke_request::Target::Subject(pb::SubjectRef {
            tenant: "acme".into(),
            subject: subject.into(),
        })),
        reason: String::new(),
        keep_session_id: String::new(),
    })
    .await
    .unwrap();
}

fn issue_req(subject: &str) -> pb::IssueRequest {
    pb::IssueRequest {
        subject: subject.into(),
        tenant: "acme".into(),
        audience: vec!["api".into()],
        scopes: vec!["read".into()],
        ..Default::default()
    }
}

fn verify_req(token: &str) -> pb::VerifyRequest {
    pb::VerifyRequest {
        access_token: token.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_source_refreshes_once_for_a_hundred_callers() {
    let (_env, server) = start(&["--access-ttl=3s"]).await;
    let c = client(&server).await;
    let pair = c.issue(issue_req("alice")).await.unwrap();
    let source = TokenSource::with_margin(c.clone(), pair.clone(), "", Duration::from_secs(2));
    // Before the margin: no refresh.
    assert_eq!(source.access_token().await.unwrap(), pair.access_token);
    // Cross the refresh boundary (expires_in 3 s, margin 2 s).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let source = source.clone();
        tasks.push(tokio::spawn(
            async move { source.access_token().await.unwrap() },
        ));
    }
    let mut tokens = std::collections::HashSet::new();
    for t in tasks {
        tokens.insert(t.await.unwrap());
    }
    assert_eq!(source.refreshes(), 1, "one refresh for all");
    assert_eq!(tokens.len(), 1);
    let token = tokens.into_iter().next().unwrap();
    assert_ne!(token, pair.access_token);
    c.verify(verify_req(&token))
        .await
        .expect("no caller sees an expired token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_refresh_retries_once_on_token_expired() {
    let (_env, server) = start(&["--access-ttl=1s"]).await;
    let c = client(&server).await;
    let mut pair = c.issue(issue_req("alice")).await.unwrap();
    // A client whose idea of expiry is wrong (as with a skewed scheduler):
    // it believes the token is good for an hour.
    pair.expires_in = 3600;
    let source = TokenSource::new(c.clone(), pair, "");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let response = source
        .call(|token| {
            let (c, calls) = (c.clone(), calls.clone());
            async move {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                c.verify(verify_req(&token)).await
            }
        })
        .await
        .expect("refreshed and retried");
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "one retry"
    );
    assert_eq!(source.refreshes(), 1);
    assert_eq!(response.into_inner().claims.unwrap().subject, "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewed_tokens_are_picked_up_and_session_ends_are_typed() {
    let (_env, server) = start(&["--access-ttl=4m"]).await; // below the 5 min critical band
    let c = client(&server).await;
    let pair = c.issue(issue_req("alice")).await.unwrap();
    let source = TokenSource::new(c.clone(), pair.clone(), "");
    // A renewal only helps once a new token would outlive the old one (1 s granularity).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = source
        .call(|token| {
            let c = c.clone();
            async move {
                c.verify(pb::VerifyRequest {
                    access_token: token,
                    renew: true,
                    ..Default::default()
                })
                .await
            }
        })
        .await
        .unwrap();
    assert!(r.metadata().get("x-new-token").is_some());
    assert_ne!(
        source.current(),
        pair.access_token,
        "x-new-token adopted by call()"
    );
    c.verify(verify_req(&source.current()))
        .await
        .expect("the renewed token verifies");

    c.revoke(pb::RevokeRequest {
        target: Some(pb::revoke_request::Target::SessionId(
            pair.session_id.clone(),
        )),
        reason: String::new(),
        keep_session_id: String::new(),
    })
    .await
    .unwrap();
    match source.refresh_after(&source.current()).await {
        Err(ClientError::SessionEnded { reason }) => assert_eq!(reason, "REFRESH_TOKEN_INVALID"),
        other => panic!("expected a typed session end, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchanging_token_source_stays_fresh_and_dies_with_the_session() {
    let (_env, server) = start(&["--access-ttl=2s"]).await;
    let c = client(&server).await;
    let pair = c.issue(issue_req("alice")).await.unwrap();
    let user = TokenSource::with_margin(c.clone(), pair.clone(), "", Duration::from_secs(1));
    let request = pb::ExchangeRequest {
        audience: vec!["billing".into()],
        ..Default::default()
    };
    let billing = TokenSource::exchanging(c.clone(), user.clone(), request)
        .await
        .expect("the first exchange");
    let first = billing.access_token().await.unwrap();
    let verify_billing = |token: String| {
        let c = c.clone();
        async move {
            c.verify(pb::VerifyRequest {
                audience: "billing".into(),
                ..verify_req(&token)
            })
            .await
        }
    };
    let claims = verify_billing(first.clone())
        .await
        .unwrap()
        .into_inner()
        .claims
        .unwrap();
    // No callers file: the caller is `anonymous`, and the actor with it.
    assert_eq!(
        (claims.subject.as_str(), claims.actors.as_slice()),
        ("alice", &["anonymous".to_owned()][..])
    );
    assert_eq!(claims.session_id, pair.session_id);

    // Past the exchanged token's life (at most the subject token's, 2 s):
    // the source exchanges again, from a refreshed subject token.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let second = billing.access_token().await.unwrap();
    assert_ne!(second, first);
    assert_eq!(billing.refreshes(), 1);
    assert!(
        user.refreshes() >= 1,
        "the subject token was refreshed first"
    );
    let response = billing
        .call(verify_billing)
        .await
        .expect("fresh for billing");
    assert_eq!(response.into_inner().claims.unwrap().audience, ["billing"]);

    // The session ends: the exchanged token dies with it, and so does the source.
    c.revoke(pb::RevokeRequest {
        target: Some(pb::revoke_request::Target::SessionId(
            pair.session_id.clone(),
        )),
        ..Default::default()
    })
    .await
    .unwrap();
    let dead = c.verify(verify_req(&billing.current())).await.unwrap_err();
    assert_eq!(
        tessera_client::reason(&dead).as_deref(),
        Some("TOKEN_REVOKED")
    );
    match billing.refresh_after(&billing.current()).await {
        Err(ClientError::SessionEnded { reason }) => assert_eq!(reason, "TOKEN_REVOKED"),
        other => panic!("expected a typed session end, got {other:?}"),
    }
}

/// Reason of a server Verify for `token` expecting `audience`.
async fn server_reason(
    c: &TesseraClient,
    token: &str,
    audience: &str,
    fingerprint: &str,
    scopes: &[String],
) -> String {
    let r = pb::VerifyRequest {
        access_token: token.into(),
        audience: audience.into(),
        device_fingerprint: fingerprint.into(),
        required_scopes: scopes.to_vec(),
        ..Default::default()
    };
    match c.verify(r).await {
        Ok(_) => "OK".into(),
        Err(s) => tessera_client::reason(&s).unwrap_or_default(),
    }
}

async fn local_reason(
    v: &LocalVerifier,
    token: &str,
    audience: &str,
    fingerprint: &str,
    scopes: &[String],
) -> String {
    match v.verify(token, audience, fingerprint, scopes).await {
        Ok(_) => "OK".into(),
        Err(e) => e.reason().to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_verifier_agrees_with_the_server() {
    let (env, server) = start(&[]).await;
    let c = client(&server).await;
    let options = VerifierOptions {
        issuer: "tessera-test".into(),
        leeway: 0,
        min_refetch: Duration::from_secs(30),
        ..Default::default()
    };
    let verifier = LocalVerifier::start(c.clone(), options).await.unwrap();
    assert!(verifier.wait_in_sync(Duration::from_secs(5)).await);

    // The core cases.
    let good = c.issue(issue_req("alice")).await.unwrap();
    let bound = c
        .issue(pb::IssueRequest {
            device_fingerprint: "dev-1".into(),
            ..issue_req("bob")
        })
        .await
        .unwrap();
    // DPoP- and certificate-bound tokens without their proof: both refuse.
    let dpop_bound = c
        .issue(pb::IssueRequest {
            dpop_jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into(),
            ..issue_req("dpop-user")
        })
        .await
        .unwrap();
    let cert_bound = c
        .issue(pb::IssueRequest {
            cert_thumbprint: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into(),
            ..issue_req("cert-user")
        })
        .await
        .unwrap();
    let revoked = c.issue(issue_req("carol")).await.unwrap();
    let subject = c.issue(issue_req("dave")).await.unwrap();
    c.revoke(pb::RevokeRequest {
        target: Some(pb::revoke_request::Target::Token(
            revoked.access_token.clone(),
        )),
        reason: String::new(),
        keep_session_id: String::new(),
    })
    .await
    .unwrap();
    revoke_subject(&c, "dave").await;
    let read = vec!["read".to_owned()];
    let admin = vec!["admin".to_owned()];
    let mut cases: Vec<(String, &str, &str, Vec<String>)> = vec![
        (good.access_token.clone(), "", "", vec![]),
        (good.access_token.clone(), "api", "", read.clone()),
        (good.access_token.clone(), "billing", "", vec![]),
        (good.access_token.clone(), "", "", admin),
        (bound.access_token.clone(), "", "dev-1", vec![]),
        (bound.access_token.clone(), "", "dev-2", vec![]),
        (bound.access_token.clone(), "", "", vec![]),
        (dpop_bound.access_token.clone(), "", "", vec![]),
        (cert_bound.access_token.clone(), "", "", vec![]),
        (revoked.access_token.clone(), "", "", vec![]),
        (subject.access_token.clone(), "", "", vec![]),
        ("garbage".into(), "", "", vec![]),
    ];
    // The hostile suite, signed with the server's key.
    let pem = std::fs::read_to_string(&env.key.path).unwrap();
    let keys = tessera::keys::KeySet::from_bytes(pem.as_bytes(), None, "k").unwrap();
    for case in hostile_cases::cases(&keys, &pem, "http://127.0.0.1:9/never") {
        cases.push((case.token, "api", "", vec![]));
    }
    // Wait for the revocations to reach the verifier (the feed's propagation time).
    let deadline = Instant::now() + Duration::from_secs(2);
    while local_reason(&verifier, &subject.access_token, "", "", &[]).await != "TOKEN_REVOKED" {
        assert!(
            Instant::now() < deadline,
            "revocation did not propagate within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Each case twice: the second time a good token comes from both
    // verified-token caches, which must not change any answer.
    let mut compared = 0;
    for round in 0..2 {
        for (token, audience, fingerprint, scopes) in &cases {
            let s = server_reason(&c, token, audience, fingerprint, scopes).await;
            let l = local_reason(&verifier, token, audience, fingerprint, scopes).await;
            assert_eq!(
                l,
                s,
                "round {round}, token {}…",
                &token[..token.len().min(24)]
            );
            compared += 1;
        }
    }
    assert!(compared > 120, "{compared}");
    let stats = verifier.cache_stats().expect("the cache is on by default");
    assert!(stats.hits >= 8, "{stats:?}");
    assert!(
        stats.entries >= 3 && stats.entries <= 7,
        "only good tokens: {stats:?}"
    );
    assert!(verifier.lag().is_some());

    // Revocation reaches the local verifier within the propagation time.
    let fresh = c.issue(issue_req("erin")).await.unwrap();
    assert_eq!(
        local_reason(&verifier, &fresh.access_token, "", "", &[]).await,
        "OK"
    );
    let t0 = Instant::now();
    c.revoke(pb::RevokeRequest {
        target: Some(pb::revoke_request::Target::SessionId(
            fresh.session_id.clone(),
        )),
        reason: String::new(),
        keep_session_id: String::new(),
    })
    .await
    .unwrap();
    while local_reason(&verifier, &fresh.access_token, "", "", &[]).await != "TOKEN_REVOKED" {
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "not revoked locally within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!("local revocation after {:?}", t0.elapsed());
}

/// With `--watch-raw-subjects=false` a subject event carries only the
/// subject's key: the verifier still honours "log out everywhere", by the
/// key, and a token of another subject stays valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_verifier_matches_subject_revocations_by_their_key() {
    let (_env, server) = start(&["--watch-raw-subjects=false"]).await;
    let c = client(&server).await;
    let verifier = in_sync_verifier(&c).await;
    let alice = c.issue(issue_req("alice")).await.unwrap();
    let bob = c.issue(issue_req("bob")).await.unwrap();
    revoke_subject(&c, "alice").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while local_reason(&verifier, &alice.access_token, "", "", &[]).await != "TOKEN_REVOKED" {
        assert!(
            Instant::now() < deadline,
            "the subject revocation never applied"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        local_reason(&verifier, &bob.access_token, "", "", &[]).await,
        "OK"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_verifier_fails_closed_when_the_feed_is_gone() {
    let (_env, server) = start(&[]).await;
    let c = client(&server).await;
    let verifier = in_sync_verifier(&c).await;
    let pair = c.issue(issue_req("alice")).await.unwrap();
    assert_eq!(
        local_reason(&verifier, &pair.access_token, "", "", &[]).await,
        "OK"
    );
    let _ = server.stop().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while verifier.in_sync() {
        assert!(Instant::now() < deadline, "never noticed the feed was gone");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        local_reason(&verifier, &pair.access_token, "", "", &[]).await,
        "STORE_UNAVAILABLE"
    );
    // Judgeable without the feed: still judged.
    assert_eq!(
        local_reason(&verifier, "garbage", "", "", &[]).await,
        "TOKEN_MALFORMED"
    );
}

/// A cursor the server refuses (ahead of its log, or from another
/// deployment) is dropped: the verifier resynchronises from a snapshot
/// instead of waiting, caught up in name only, for events past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_verifier_resyncs_when_its_cursor_is_refused() {
    let (_env, server) = start(&[]).await;
    let c = client(&server).await;
    let before = c.issue(issue_req("alice")).await.unwrap();
    c.revoke(pb::RevokeRequest {
        target: Some(pb::revoke_request::Target::Token(
            before.access_token.clone(),
        )),
        reason: String::new(),
        keep_session_id: String::new(),
    })
    .await
    .unwrap();
    let verifier = LocalVerifier::start(
        c.clone(),
        VerifierOptions {
            issuer: "tessera-test".into(),
            leeway: 0,
            resume_cursor: "99999999999999-0".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(verifier.wait_in_sync(Duration::from_secs(5)).await);
    assert_eq!(
        local_reason(&verifier, &before.access_token, "", "", &[]).await,
        "TOKEN_REVOKED",
        "the snapshot carried the revocation made before the verifier started"
    );
    let after = c.issue(issue_req("bob")).await.unwrap();
    c.revoke(pb::RevokeRequest {
        target: Some(pb::revoke_request::Target::SessionId(
            after.session_id.clone(),
        )),
        reason: String::new(),
        keep_session_id: String::new(),
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while local_reason(&verifier, &after.access_token, "", "", &[]).await != "TOKEN_REVOKED" {
        assert!(Instant::now() < deadline, "live revocation never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A DPoP-bound session through the SDK: `TokenSource::with_dpop` refreshes
/// with proofs by its key, and `dpop_proof` makes the proofs that go with
/// the access token, which the server's `Verify` accepts once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_source_proves_its_dpop_key() {
    use std::sync::Arc;
    use tessera_client::DpopKey;
    let (_env, server) = start(&[]).await;
    let c = client(&server).await;
    let key = Arc::new(DpopKey::generate().unwrap());
    let pair = c
        .issue(pb::IssueRequest {
            dpop_jkt: key.jkt().into(),
            ..issue_req("dora")
        })
        .await
        .unwrap();
    let source = TokenSource::with_dpop(
        c.clone(),
        pair.clone(),
        key.clone(),
        "https://auth.example.com/token",
    );
    let url = "https://api.example.com/orders";
    let verify = |token: String, proof: String| pb::VerifyRequest {
        dpop_proof: proof,
        http_method: "GET".into(),
        http_url: url.into(),
        ..verify_req(&token)
    };
    let proof = source.dpop_proof("GET", url).unwrap().unwrap();
    c.verify(verify(source.current(), proof.clone()))
        .await
        .expect("the SDK's proof");
    let replay = c.verify(verify(source.current(), proof)).await.unwrap_err();
    assert_eq!(
        tessera_client::reason(&replay).unwrap(),
        "DPOP_PROOF_REPLAYED"
    );
    // A refresh with a proof by the key: the source's refresh works, a
    // plain one does not.
    let plain = c.refresh(&pair.refresh_token, "").await.unwrap_err();
    assert!(
        format!("{plain:?}").contains("TOKEN_BINDING_MISMATCH"),
        "{plain:?}"
    );
    let before = source.current();
    let after = source
        .refresh_after(&before)
        .await
        .expect("refresh with a proof");
    assert_ne!(after, before);
    assert_eq!(source.refreshes(), 1);
    let proof = source.dpop_proof("GET", url).unwrap().unwrap();
    c.verify(verify(after, proof))
        .await
        .expect("the refreshed token with a fresh proof");
    // A source without a key makes no proofs.
    let plain_source = TokenSource::new(c.clone(), issue_now(&c).await, "");
    assert!(plain_source.dpop_proof("GET", url).is_none());
}

async fn issue_now(c: &TesseraClient) -> pb::TokenPair {
    c.issue(issue_req("plain")).await.unwrap()
}

/// The language-neutral vectors (`tessera_test_support::vectors`, which the
/// Go, Node and Python suites read) say exactly what the server's `Verify`
/// and this SDK's `LocalVerifier` do: every refusal's reason, and every
/// valid token's claims.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_vectors_match_the_server_and_the_local_verifier() {
    let dir = tempfile::tempdir().unwrap();
    let vectors = tessera_test_support::vectors::write(dir.path()).unwrap();
    let server = Server::start(&[
        format!("--issuer={}", vectors["issuer"].as_str().unwrap()),
        format!(
            "--signing-key={}",
            dir.path().join("signing-key.pem").display()
        ),
        format!("--tenants={}", dir.path().join("tenants.toml").display()),
    ])
    .await;
    let c = client(&server).await;
    let verifier = LocalVerifier::start(
        c.clone(),
        VerifierOptions {
            issuer: vectors["issuer"].as_str().unwrap().into(),
            leeway: vectors["leeway"].as_i64().unwrap(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(verifier.wait_in_sync(Duration::from_secs(5)).await);
    let audience = vectors["audience"].as_str().unwrap();
    let cases = vectors["cases"].as_array().unwrap();
    assert!(cases.len() > 55, "{}", cases.len());
    for case in cases {
        let token = case["token"].as_str().unwrap();
        let want = case["reason"].as_str().unwrap();
        let name = case["name"].as_str().unwrap();
        assert_eq!(
            server_reason(&c, token, audience, "", &[]).await,
            want,
            "server: {name}"
        );
        assert_eq!(
            local_reason(&verifier, token, audience, "", &[]).await,
            want,
            "local: {name}"
        );
    }
    let valid = vectors["valid"].as_array().unwrap();
    assert!(valid.len() >= 4);
    for case in valid {
        let token = case["token"].as_str().unwrap();
        let want = &case["claims"];
        let name = case["name"].as_str().unwrap();
        let got = c
            .verify(pb::VerifyRequest {
                audience: case["audience"].as_str().unwrap().into(),
                ..verify_req(token)
            })
            .await
            .unwrap_or_else(|e| panic!("server refused {name}: {e:?}"))
            .into_inner()
            .claims
            .expect("claims");
        let got = serde_json::json!({
            "subject": got.subject,
            "tenant": got.tenant,
            "session_id": got.session_id,
            "token_id": got.token_id,
            "roles": got.roles,
            "scopes": got.scopes,
            "expires_at": got.expires_at.map(|t| t.seconds),
        });
        assert_eq!(&got, want, "server: {name}");
        let local = verifier
            .verify(token, audience, "", &[])
            .await
            .unwrap_or_else(|e| panic!("local refused {name}: {e:?}"));
        assert_eq!(local.sub, want["subject"], "local: {name}");
        assert_eq!(local.exp, want["expires_at"], "local: {name}");
        assert_eq!(local.jti, want["token_id"], "local: {name}");
    }

    // Tenant keys: a verifier of the vectors' tenant, and the server.
    let tenant = &vectors["tenant"];
    let verifier = LocalVerifier::start(
        c.clone(),
        VerifierOptions {
            leeway: vectors["leeway"].as_i64().unwrap(),
            ..Default::default()
        }
        .with_tenant(tenant["name"].as_str().unwrap()),
    )
    .await
    .unwrap();
    assert!(verifier.wait_in_sync(Duration::from_secs(5)).await);
    let cases = tenant["cases"].as_array().unwrap();
    assert!(cases.len() >= 6);
    for case in cases {
        let token = case["token"].as_str().unwrap();
        // `""`: the token verifies, which the helpers call "OK".
        let want = Some(case["reason"].as_str().unwrap())
            .filter(|r| !r.is_empty())
            .unwrap_or("OK");
        let name = case["name"].as_str().unwrap();
        let server = server_reason(&c, token, audience, "", &[]).await;
        assert_eq!(server, want, "server: {name}");
        let local = local_reason(&verifier, token, audience, "", &[]).await;
        assert_eq!(local, want, "local: {name}");
    }
}

/// A LocalVerifier of one tenant (issue #28): it fetches that tenant's keys
/// and issuer, and refuses every other tenant's token, as the server does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_verifier_of_one_tenant() {
    let tenants = tessera_test_support::TenantsFile::new(&[
        ("acme", "https://auth.example.com/t/acme", ""),
        ("globex", "https://auth.example.com/t/globex", ""),
    ]);
    let (env, server) = start(&[&tenants.flag()]).await;
    let c = client(&server).await;
    let for_tenant = |tenant: &str| {
        VerifierOptions {
            issuer: "tessera-test".into(),
            leeway: 0,
            ..Default::default()
        }
        .with_tenant(tenant)
    };
    let in_tenant = |tenant: &str, subject: &str| pb::IssueRequest {
        tenant: tenant.into(),
        ..issue_req(subject)
    };
    let acme = c.issue(in_tenant("acme", "alice")).await.unwrap();
    let globex = c.issue(in_tenant("globex", "bob")).await.unwrap();
    let initech = c.issue(in_tenant("initech", "carol")).await.unwrap();

    let v = LocalVerifier::start(c.clone(), for_tenant("acme"))
        .await
        .unwrap();
    assert!(v.wait_in_sync(Duration::from_secs(5)).await);
    let claims = v.verify(&acme.access_token, "api", "", &[]).await.unwrap();
    assert_eq!(claims.iss, "https://auth.example.com/t/acme");
    assert_eq!(claims.tid, "acme");
    // acme's key claiming globex, made by hand: refused here too.
    let forged = claiming(&tenants.keyset("acme"), &claims, "globex");
    refused(&v, &[&globex.access_token, &initech.access_token, &forged]).await;

    // A tenant without keys of its own: the default keys and issuer, and
    // still only its own tokens.
    let v = LocalVerifier::start(c.clone(), for_tenant("initech"))
        .await
        .unwrap();
    assert!(v.wait_in_sync(Duration::from_secs(5)).await);
    let claims = v
        .verify(&initech.access_token, "api", "", &[])
        .await
        .unwrap();
    assert_eq!(claims.iss, "tessera-test");
    let forged = claiming(&env.key.keyset(), &claims, "hooli");
    refused(&v, &[&acme.access_token, &globex.access_token, &forged]).await;
}

/// `claims` with `tid` set to `tenant`, signed with `keys`.
fn claiming(
    keys: &tessera::keys::KeySet,
    claims: &tessera::tokens::AccessClaims,
    tenant: &str,
) -> String {
    let mut claims = claims.clone();
    claims.tid = tenant.into();
    tessera::tokens::mint(keys, &claims).unwrap()
}

/// Every token is refused by `v` as signed by no key of its tenant.
async fn refused(v: &LocalVerifier, tokens: &[&str]) {
    for token in tokens {
        let e = v.verify(token, "api", "", &[]).await.unwrap_err();
        assert_eq!(e.reason(), "TOKEN_SIGNATURE_INVALID", "{e:?}");
    }
}
