//! Caller authorization over real gRPC: API keys, allow lists per RPC,
//! open health, and the refusal to run anonymously on a public address.

use crate::support::*;
use tessera::pb;
use tessera::transport::callers::api_key_sha256;
use tonic::Request;
use tonic_health::pb::health_check_response::ServingStatus;

fn callers_file(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("callers.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[[caller]]
name = "login-service"
api_key_sha256 = "{}"
allow = ["Issue", "Refresh", "Revoke"]

[[caller]]
name = "gateway"
api_key_sha256 = "{}"
allow = ["Verify", "WatchRevocations", "GetJwks"]

[[caller]]
name = "ops"
api_key_sha256 = "{}"
allow = ["*"]
"#,
            api_key_sha256("login-key"),
            api_key_sha256("gateway-key"),
            api_key_sha256("ops-key"),
        ),
    )
    .unwrap();
    path
}

fn with_key<T>(msg: T, key: Option<&str>) -> Request<T> {
    let mut r = Request::new(msg);
    if let Some(k) = key {
        r.metadata_mut().insert("x-tessera-key", k.parse().unwrap());
    }
    r
}

/// Call every RPC with `key`; return the reason per RPC ("" = allowed through).
async fn probe(
    c: &mut Client,
    key: Option<&str>,
    pair: &pb::TokenPair,
) -> Vec<(&'static str, String)> {
    let r = |res: Result<(), tonic::Status>| match res {
        Ok(()) => String::new(),
        Err(s) => reason(&s),
    };
    let mut out = Vec::new();
    out.push((
        "Issue",
        r(c.issue(with_key(issue_request("x"), key)).await.map(|_| ())),
    ));
    out.push((
        "Refresh",
        r(c.refresh(with_key(
            pb::RefreshRequest {
                refresh_token: "bogus".into(),
                ..Default::default()
            },
            key,
        ))
        .await
        .map(|_| ())),
    ));
    out.push((
        "Verify",
        r(c.verify(with_key(verify_request(&pair.access_token), key))
            .await
            .map(|_| ())),
    ));
    out.push((
        "Revoke",
        r(c.revoke(with_key(revoke_token("garbage"), key))
            .await
            .map(|_| ())),
    ));
    out.push((
        "WatchRevocations",
        r(
            c.watch_revocations(with_key(pb::WatchRevocationsRequest::default(), key))
                .await
                .map(|_| ()),
        ),
    ));
    out.push((
        "GetJwks",
        r(c.get_jwks(with_key(pb::GetJwksRequest::default(), key))
            .await
            .map(|_| ())),
    ));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_are_authorized_per_rpc() {
    let dir = tempfile::tempdir().unwrap();
    let env = Env::new(Backend::Memory).await;
    let file = callers_file(&dir);
    let server = env
        .server(&[&format!("--callers={}", file.display())])
        .await;
    let mut c = server.client().await;
    let pair = c
        .issue(with_key(issue_request("alice"), Some("ops-key")))
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();

    let allowed_for = |key: &str| -> Vec<&'static str> {
        match key {
            "login-key" => vec!["Issue", "Refresh", "Revoke"],
            "gateway-key" => vec!["Verify", "WatchRevocations", "GetJwks"],
            _ => tessera::transport::callers::RPC_NAMES.to_vec(),
        }
    };
    for key in ["login-key", "gateway-key", "ops-key"] {
        for (rpc, reason) in probe(&mut c, Some(key), &pair).await {
            if allowed_for(key).contains(&rpc) {
                assert!(
                    reason != "CALLER_NOT_ALLOWED" && reason != "CALLER_UNAUTHENTICATED",
                    "{key} must reach {rpc}, got {reason}"
                );
            } else {
                assert_eq!(reason, "CALLER_NOT_ALLOWED", "{key} on {rpc}");
            }
        }
    }
    for key in [None, Some("wrong-key"), Some("")] {
        for (rpc, reason) in probe(&mut c, key, &pair).await {
            assert_eq!(reason, "CALLER_UNAUTHENTICATED", "{key:?} on {rpc}");
        }
    }
    let denied = c
        .issue(with_key(issue_request("x"), Some("gateway-key")))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let unauth = c
        .issue(with_key(issue_request("x"), None))
        .await
        .unwrap_err();
    assert_eq!(unauth.code(), tonic::Code::Unauthenticated);
    // Health stays open for probes.
    assert_eq!(server.health().await, Some(ServingStatus::Serving));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_on_a_public_address_is_refused_at_start() {
    let env = Env::new(Backend::Memory).await;
    let args = tessera::config::ServeArgs::parse_with_file(env.flags(&[])).unwrap();
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let err = tessera::App::build(args, tessera::Listeners::grpc(listener))
        .await
        .err()
        .expect("refused at start");
    assert!(matches!(err, tessera::ServeError::Config(_)), "{err}");
    assert!(err.to_string().contains("--callers"), "says why: {err}");

    // With --allow-anonymous it starts (and stops on request).
    let args =
        tessera::config::ServeArgs::parse_with_file(env.flags(&["--allow-anonymous"])).unwrap();
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = tessera::App::build(args, tessera::Listeners::grpc(listener))
        .await
        .unwrap();
    let task = tokio::spawn(app.run(async move {
        let _ = rx.await;
    }));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        !task.is_finished(),
        "server with --allow-anonymous must run"
    );
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
}

/// The OAuth HTTP port is judged by its own address: a loopback gRPC port
/// does not make a public HTTP port anonymous (it would let anyone
/// introspect and revoke).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_on_a_public_http_port_is_refused_at_start() {
    let env = Env::new(Backend::Memory).await;
    let bind =
        |addr: &'static str| async move { tokio::net::TcpListener::bind(addr).await.unwrap() };
    let args = tessera::config::ServeArgs::parse_with_file(env.flags(&["--http-listen=0.0.0.0:0"]))
        .unwrap();
    let listeners = |http| async move {
        tessera::Listeners {
            grpc: bind("127.0.0.1:0").await,
            admin: Some(bind("127.0.0.1:0").await),
            http: Some(http),
        }
    };
    let building = tessera::App::build(args, listeners(bind("0.0.0.0:0").await).await);
    let err = tokio::time::timeout(std::time::Duration::from_secs(10), building)
        .await
        .expect("refused at start, not served")
        .err()
        .expect("refused at start");
    assert!(matches!(err, tessera::ServeError::Config(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("--http-listen") && text.contains("--callers"),
        "says why: {text}"
    );

    // With a callers file the same ports serve.
    let dir = tempfile::tempdir().unwrap();
    let callers = callers_flag(&dir, &[("gateway", "k", &["Verify"])]);
    let args = tessera::config::ServeArgs::parse_with_file(
        env.flags(&["--http-listen=0.0.0.0:0", callers.as_str()]),
    )
    .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = tessera::App::build(args, listeners(bind("0.0.0.0:0").await).await)
        .await
        .unwrap();
    assert!(app.http_addr().is_some_and(|a| a.ip().is_unspecified()));
    let task = tokio::spawn(app.run(async move {
        let _ = rx.await;
    }));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!task.is_finished(), "a server with callers must run");
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
}
