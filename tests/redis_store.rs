//! Redis-specific behaviour: outages, several replicas on one Redis, and
//! housekeeping (every key has a TTL).

mod support;

use std::time::{Duration, Instant};

use support::*;
use tessera::pb;
use tonic_health::pb::health_check_response::ServingStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_fast_and_recovers_without_restart() {
    let mut env = Env::new(Backend::Redis).await;
    let server = env.server(&[]).await;
    let mut c = server.client().await;
    let before = issue(&mut c, "alice").await;

    env.redis.as_mut().unwrap().kill();
    server.wait_health(ServingStatus::NotServing).await;

    // Every stateful RPC answers UNAVAILABLE quickly; nothing hangs or panics.
    let started = Instant::now();
    let s = expect_reason(c.issue(issue_request("bob")).await, "STORE_UNAVAILABLE");
    assert_eq!(s.code(), tonic::Code::Unavailable);
    expect_reason(
        c.refresh(refresh_req(&before.refresh_token)).await,
        "STORE_UNAVAILABLE",
    );
    expect_reason(
        c.verify(strong(&before.access_token)).await,
        "STORE_UNAVAILABLE",
    );
    expect_reason(
        c.revoke(revoke_session_id(&before.session_id)).await,
        "STORE_UNAVAILABLE",
    );
    // The revocation cache lost its feed: default Verify fails closed.
    expect_reason(
        c.verify(verify_request(&before.access_token)).await,
        "STORE_UNAVAILABLE",
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "calls took {:?}",
        started.elapsed()
    );
    // Stateless answers keep working.
    c.get_jwks(pb::GetJwksRequest {})
        .await
        .expect("jwks without a store");

    env.redis.as_mut().unwrap().restart().await;
    let recovered = server.wait_health(ServingStatus::Serving).await;
    assert!(
        recovered < Duration::from_secs(5),
        "recovery took {recovered:?}"
    );
    let after = issue(&mut c, "carol").await;
    // Give the feed reader its resubscription; then default Verify works again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match c.verify(verify_request(&after.access_token)).await {
            Ok(_) => break,
            Err(e) => assert!(Instant::now() < deadline, "verify never recovered: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.refresh(refresh_req(&after.refresh_token))
        .await
        .expect("refresh after recovery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_redis_act_as_one_authority() {
    let env = Env::new(Backend::Redis).await;
    let a = env.server(&[]).await;
    let b = env.server(&[]).await;
    let mut ca = a.client().await;
    let mut cb = b.client().await;

    let pair = issue(&mut ca, "alice").await;
    cb.verify(verify_request(&pair.access_token))
        .await
        .expect("B verifies A's token");
    let rotated = cb
        .refresh(refresh_req(&pair.refresh_token))
        .await
        .expect("refresh on B")
        .into_inner()
        .tokens
        .unwrap();
    // A grace retry on A gets B's successor.
    let retry = ca
        .refresh(refresh_req(&pair.refresh_token))
        .await
        .expect("grace retry on A")
        .into_inner()
        .tokens
        .unwrap();
    assert_eq!(retry.refresh_token, rotated.refresh_token);
    assert_eq!(retry.access_token, rotated.access_token);

    cb.revoke(pb::RevokeRequest {
        target: Some(pb::revoke_request::Target::Token(
            rotated.refresh_token.clone(),
        )),
        reason: "test".into(),
    })
    .await
    .expect("revoke on B");
    expect_reason(
        ca.verify(strong(&rotated.access_token)).await,
        "TOKEN_REVOKED",
    );
    expect_reason(ca.verify(strong(&pair.access_token)).await, "TOKEN_REVOKED");
    // And through the feed, without a store read, within moments.
    wait_revoked(&mut ca, &rotated.access_token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_written_has_a_ttl() {
    let env = Env::new(Backend::Redis).await;
    let server = env.server(&[]).await;
    let mut c = server.client().await;
    let p = issue(&mut c, "alice").await;
    let q = issue(&mut c, "bob").await;
    let r = issue(&mut c, "carol").await;
    c.refresh(refresh_req(&p.refresh_token)).await.unwrap();
    let mut v = verify_request(&p.access_token);
    v.renew = true;
    c.verify(v).await.unwrap();
    use pb::revoke_request::Target;
    for t in [
        Target::Token(q.access_token.clone()),
        Target::SessionId(r.session_id.clone()),
        Target::Subject(pb::SubjectRef {
            tenant: "acme".into(),
            subject: "alice".into(),
        }),
    ] {
        c.revoke(pb::RevokeRequest {
            target: Some(t),
            reason: String::new(),
        })
        .await
        .unwrap();
    }
    let redis = env.redis.as_ref().unwrap();
    let keys = redis.command("KEYS *").await;
    let names: Vec<&str> = keys.lines().filter(|l| l.starts_with("tessera:")).collect();
    assert!(names.len() >= 5, "{keys}");
    for name in names {
        let ttl = redis.command(&format!("PTTL {name}")).await;
        if name.ends_with(":log") {
            continue; // the log is trimmed by age on every append instead
        }
        let ms: i64 = ttl.trim().trim_start_matches(':').parse().unwrap();
        assert!(ms > 0, "{name} has no TTL ({ttl})");
    }
}
