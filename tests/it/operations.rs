//! Operations: admin HTTP, health tied to the store, metrics, graceful shutdown.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;
use tessera::pb;
use tonic_health::pb::health_check_response::ServingStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_and_readiness_follow_the_store() {
    let mut env = Env::new(Backend::Redis).await;
    let server = env.server(&[]).await;
    let mut c = server.client().await;
    assert_eq!(server.admin_get("/healthz").await.0, 200);
    assert_eq!(server.admin_get("/livez").await.0, 200);
    assert_eq!(
        server.health_of(tessera::LIVENESS_SERVICE).await,
        Some(ServingStatus::Serving)
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = server.admin_get("/readyz").await;
        if status == 200 {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["store"], true);
            assert_eq!(v["revocation_cache_in_sync"], true);
            break;
        }
        assert!(Instant::now() < deadline, "never ready: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, jwks) = server.admin_get("/.well-known/jwks.json").await;
    assert_eq!(status, 200);
    let grpc = c
        .get_jwks(pb::GetJwksRequest::default())
        .await
        .unwrap()
        .into_inner()
        .jwks_json;
    assert_eq!(jwks, grpc);
    let (status, metrics) = server.admin_get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("tessera_rpc_duration_seconds"),
        "{metrics}"
    );

    // Redis stopped: gRPC health and /readyz go unhealthy within 2 s.
    env.redis.as_mut().unwrap().kill();
    let start = Instant::now();
    server.wait_health(ServingStatus::NotServing).await;
    loop {
        if server.admin_get("/readyz").await.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let down = start.elapsed();
    assert!(down < Duration::from_secs(2), "took {down:?} to notice");
    assert_eq!(
        server.admin_get("/healthz").await.0,
        200,
        "alive while the store is down"
    );
    // Liveness stays SERVING while readiness (`""` too) is NOT_SERVING: a
    // liveness probe never restarts a replica for a Redis outage. Checked
    // over longer than several health ticks.
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        assert_eq!(server.health_of("").await, Some(ServingStatus::NotServing));
        assert_eq!(
            server.health_of(tessera::LIVENESS_SERVICE).await,
            Some(ServingStatus::Serving),
            "liveness follows the process, not the store"
        );
        assert_eq!(server.admin_get("/livez").await.0, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Restarted: healthy again within 2 s, no restart of Tessera.
    env.redis.as_mut().unwrap().restart().await;
    let start = Instant::now();
    server.wait_health(ServingStatus::Serving).await;
    loop {
        if server.admin_get("/readyz").await.0 == 200 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let up = start.elapsed();
    assert!(up < Duration::from_secs(2), "took {up:?} to recover");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_scripted_flow() {
    let env = Env::new(Backend::Memory).await;
    let process = Process::start(&env.flags(&["--refresh-grace=5s"])).await;
    let server = process.server();
    let mut c = server.client().await;
    let a = issue(&mut c, "alice").await;
    let b = issue(&mut c, "bob").await;
    let refresh = |t: &str| pb::RefreshRequest {
        refresh_token: t.into(),
        ..Default::default()
    };
    c.refresh(refresh(&a.refresh_token)).await.unwrap();
    c.refresh(refresh(&a.refresh_token)).await.unwrap(); // grace replay
    expect_reason(
        c.refresh(refresh("nonsense")).await,
        "REFRESH_TOKEN_INVALID",
    );
    c.verify(verify_request(&a.access_token)).await.unwrap();
    c.verify(verify_request(&b.access_token)).await.unwrap();
    expect_reason(c.verify(verify_request("garbage")).await, "TOKEN_MALFORMED");
    c.revoke(revoke_session_id(&b.session_id)).await.unwrap();
    expect_reason(
        c.verify(verify_request(&b.access_token)).await,
        "TOKEN_REVOKED",
    );
    let _watch = c
        .watch_revocations(pb::WatchRevocationsRequest::default())
        .await
        .unwrap();

    // Gauges are refreshed once a second; poll until they show up.
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let (_, text) = server.admin_get("/metrics").await;
        if metric_with(&text, "tessera_watchers", &[]) == Some(1.0)
            && metric_with(&text, "tessera_revocation_cache_entries", &[]) == Some(1.0)
        {
            break text;
        }
        assert!(Instant::now() < deadline, "gauges never updated:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let m = |name: &str, labels: &[(&str, &str)]| {
        metric_with(&text, name, labels)
            .unwrap_or_else(|| panic!("{name} {labels:?} missing:\n{text}"))
    };
    assert_eq!(m("tessera_tokens_issued_total", &[]), 2.0);
    // The build, as alerts and the dashboard read it.
    let commit = tessera::telemetry::BUILD_COMMIT;
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{commit}"
    );
    assert_eq!(
        m(
            tessera::telemetry::BUILD_INFO,
            &[("version", env!("CARGO_PKG_VERSION")), ("commit", commit)]
        ),
        1.0
    );
    assert_eq!(m("tessera_refresh_total", &[("outcome", "rotated")]), 1.0);
    assert_eq!(
        m("tessera_refresh_total", &[("outcome", "grace_replay")]),
        1.0
    );
    assert_eq!(m("tessera_refresh_total", &[("outcome", "invalid")]), 1.0);
    assert_eq!(m("token_refresh_total", &[]), 3.0);
    assert_eq!(m("tessera_verify_total", &[("outcome", "ok")]), 2.0);
    assert_eq!(
        m("tessera_verify_total", &[("reason", "TOKEN_MALFORMED")]),
        1.0
    );
    assert_eq!(
        m("tessera_verify_total", &[("reason", "TOKEN_REVOKED")]),
        1.0
    );
    assert_eq!(m("tessera_revocations_total", &[("kind", "session")]), 1.0);
    assert_eq!(
        m(
            "tessera_rpc_duration_seconds_count",
            &[("method", "Issue"), ("code", "OK")]
        ),
        2.0
    );
    assert_eq!(
        m(
            "tessera_rpc_duration_seconds_count",
            &[("method", "Verify"), ("code", "UNAUTHENTICATED")]
        ),
        2.0
    );
    assert_eq!(
        m(
            "tessera_rpc_duration_seconds_count",
            &[("method", "Refresh"), ("code", "OK")]
        ),
        2.0
    );
    assert_eq!(
        m("tessera_store_duration_seconds_count", &[("op", "rotate")]),
        2.0,
        "a malformed token never reaches the store"
    );
    assert!(m("tessera_feed_lag_seconds_count", &[]) >= 1.0);
}

/// Whether a failed call provably never reached the server: hyper dropped it
/// unsent ("a pending item dropped before ever being processed"), the
/// server's graceful GOAWAY excluded its stream (RFC 9113 §6.8: streams above
/// the last stream id were not processed), or no connection was open.
/// A call the server took and dropped fails otherwise (a reset, an EOF).
fn never_reached_the_server(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        let unsent = e
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_canceled);
        let excluded = e.downcast_ref::<h2::Error>().is_some_and(|e| {
            e.is_go_away() && e.is_remote() && e.reason() == Some(h2::Reason::NO_ERROR)
        });
        let refused = e
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
        if unsent || excluded || refused {
            return true;
        }
        source = e.source();
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_calls_and_ends_streams() {
    let env = Env::new(Backend::Memory).await;
    let mut process = Process::start(&env.flags(&["--issue-rate=off"])).await;
    let server = process.server();
    let c = server.client().await;
    let mut streams = Vec::new();
    for _ in 0..5 {
        streams.push(
            c.clone()
                .watch_revocations(pb::WatchRevocationsRequest::default())
                .await
                .unwrap()
                .into_inner(),
        );
    }
    let signalled = Arc::new(AtomicBool::new(false));
    let completed = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for i in 0..8 {
        let mut c = c.clone();
        let signalled = signalled.clone();
        let completed = completed.clone();
        load.push(tokio::spawn(async move {
            loop {
                let started_before_signal = !signalled.load(Ordering::SeqCst);
                if i % 2 == 1 {
                    // Half the tasks widen the window in which a call reads
                    // the flag before SIGTERM but reaches the connection after
                    // the GOAWAY or the exit (CI failed on it once), so that
                    // `never_reached_the_server` is exercised on every run.
                    tokio::time::sleep(Duration::from_millis(4 * i as u64)).await;
                }
                let result = c.issue(issue_request(&format!("load-{i}"))).await;
                match result {
                    Ok(_) => {
                        completed.fetch_add(1, Ordering::SeqCst);
                    }
                    // Calls started after SIGTERM may be refused: clients retry
                    // on another replica, as the probe has already failed.
                    Err(_) if !started_before_signal => return Ok(()),
                    // A call that read the flag just before it was set can
                    // still reach the connection after the server's GOAWAY.
                    Err(e) if never_reached_the_server(&e) => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while completed.load(Ordering::SeqCst) < 200 {
        assert!(Instant::now() < deadline, "load never got going");
        assert!(
            load.iter().all(|t| !t.is_finished()),
            "a load task stopped early"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    signalled.store(true, Ordering::SeqCst);
    process.signal("TERM");
    for t in load {
        t.await
            .unwrap()
            .expect("no call in flight at SIGTERM failed");
    }
    for mut s in streams {
        let end = tokio::time::timeout(Duration::from_secs(10), s.message())
            .await
            .expect("stream ended");
        match end {
            Err(status) => assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}"),
            Ok(other) => panic!("stream must end with a status, got {other:?}"),
        }
    }
    let status = process.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "exit {status:?}\n{}", process.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_goes_not_serving_only_at_the_shutdown_drain() {
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    let env = Env::new(Backend::Memory).await;
    let server = env.server(&[]).await;
    let channel = tonic::transport::Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut watch = HealthClient::new(channel)
        .watch(HealthCheckRequest {
            service: tessera::LIVENESS_SERVICE.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    let stopping = tokio::spawn(server.stop());
    let next = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("a status at the drain")
        .unwrap()
        .unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    drop(watch);
    stopping.await.unwrap().unwrap();
}
