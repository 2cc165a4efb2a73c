//! Hardening, second pass (#32), on the HTTP side and in the logs: the
//! OAuth port's request deadline and caller check before the body (defect
//! 3), rate-limited refusal logs with the peer's address (6), the token
//! endpoint switch and client credentials (8).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::oauth::{basic, form, post, FORM};
use crate::support::*;

async fn tokens(c: &mut Client, req: tessera::pb::RefreshRequest) -> tessera::pb::TokenPair {
    c.refresh(req).await.unwrap().into_inner().tokens.unwrap()
}

// === defect 3: the OAuth port's request deadline ===

/// Open a POST whose body (`Content-Length: 16000`) then trickles in, a
/// byte every 300 ms, for at most 20 s.
async fn trickle(http: SocketAddr, authorization: Option<String>) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(http).await.unwrap();
    let mut head = format!(
        "POST /oauth2/introspect HTTP/1.1\r\nHost: {http}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 16000\r\n"
    );
    if let Some(a) = authorization {
        head.push_str(&format!("Authorization: {a}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_bodies_cannot_hold_the_oauth_port_past_the_request_deadline() {
    let env = Env::new(Backend::Memory).await;
    let dir = tempfile::tempdir().unwrap();
    let callers = callers_flag(&dir, &[("gateway", "gateway-key", &["Verify"])]);
    let deadline = Duration::from_secs(2);
    let s = env
        .server(&[
            "--http-listen=127.0.0.1:0",
            callers.as_str(),
            "--max-connections=4",
            "--idle-timeout=30s",
            "--http-request-timeout=2s",
        ])
        .await;
    let http = s.http.unwrap();

    // Without credentials, the answer comes before the body: 401 at once.
    let mut anonymous = trickle(http, None).await;
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(1), anonymous.read(&mut buf))
        .await
        .expect("401 before the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    drop(anonymous);

    // With credentials, as many trickling bodies as connections allowed.
    let gateway = basic("gateway", "gateway-key");
    let mut tricklers = Vec::new();
    for _ in 0..4 {
        let mut s = trickle(http, Some(gateway.clone())).await;
        tricklers.push(tokio::spawn(async move {
            let until = Instant::now() + Duration::from_secs(20);
            while Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if s.write_all(b"a").await.is_err() {
                    break;
                }
            }
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(1), s.read_to_end(&mut answer)).await;
            String::from_utf8_lossy(&answer).into_owned()
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    let (status, _) = http_get(http, "/.well-known/oauth-authorization-server").await;
    let took = start.elapsed();
    assert_eq!(status, 200);
    assert!(
        took < deadline + Duration::from_secs(1),
        "discovery took {took:?} behind trickling bodies"
    );
    for t in tricklers {
        let answer = t.await.unwrap();
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
    }
}

// === defect 6: refusals counted, logged at a bounded rate, with the peer ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_calls_are_all_counted_but_logged_at_a_bounded_rate() {
    let env = Env::new(Backend::Memory).await;
    let dir = tempfile::tempdir().unwrap();
    let mut flags = env.flags(&[]);
    flags.push(callers_flag(&dir, &[("app", "the-right-key", &["*"])]));
    let process = Process::start_logging(&flags, "info").await;
    let server = process.server();
    let wrong = || {
        let mut r = tonic::Request::new(verify_request("x"));
        r.metadata_mut()
            .insert("x-tessera-key", "a-wrong-key".parse().unwrap());
        r
    };
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let mut c = server.client().await;
        tasks.push(tokio::spawn(async move {
            for _ in 0..750 {
                let mut r = tonic::Request::new(verify_request("x"));
                r.metadata_mut()
                    .insert("x-tessera-key", "a-wrong-key".parse().unwrap());
                expect_reason(c.verify(r).await, "CALLER_UNAUTHENTICATED");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let took = start.elapsed();
    // One more, a second later: it says how many were left out.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut c = server.client().await;
    expect_reason(c.verify(wrong()).await, "CALLER_UNAUTHENTICATED");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let log = process.log_text();
    let lines = |what: &str| log.lines().filter(|l| l.contains(what)).count();
    let seconds = took.as_secs() as usize + 3;
    let bound = seconds * tessera::refusals::LINES_PER_SECOND as usize;
    let refused = lines("\"call refused\"");
    let audited: Vec<Value> = log
        .lines()
        .filter(|l| l.contains("caller_denied") && l.contains(tessera::audit::TARGET))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        (1..=bound).contains(&refused),
        "{refused} \"call refused\" lines for 3,001 refusals in {took:?}"
    );
    assert!(
        (1..=bound).contains(&audited.len()),
        "{} caller_denied events",
        audited.len()
    );
    for event in &audited {
        assert_eq!(event["fields"]["client_ip"], "127.0.0.1", "{event}");
    }
    assert!(lines("refused calls not logged") >= 1, "{log}");
    let (_, metrics) = server.admin_get("/metrics").await;
    assert_eq!(
        metric_with(
            &metrics,
            "tessera_calls_refused_total",
            &[("reason", "CALLER_UNAUTHENTICATED")]
        ),
        Some(3001.0),
        "{metrics}"
    );
}

// === defect 8: the token endpoint switch and client credentials ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_is_off_unless_switched_on() {
    let env = Env::new(Backend::Memory).await;
    let s = env.server(&["--http-listen=127.0.0.1:0"]).await;
    let http = s.http.unwrap();
    let pair = issue(&mut s.client().await, "off").await;
    let body = form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &pair.refresh_token),
    ]);
    let a = post(http, "/oauth2/token", &[FORM], &body).await;
    assert_eq!(a.status, 404, "{}", a.body);
    let (_, m) = http_get(http, "/.well-known/oauth-authorization-server").await;
    let m: Value = serde_json::from_str(&m).unwrap();
    assert!(m.get("token_endpoint").is_none(), "{m}");
    assert!(
        m.get("token_endpoint_auth_methods_supported").is_none(),
        "{m}"
    );
    assert_eq!(m["grant_types_supported"], json!([]));
    // Introspection is on.
    let a = post(
        http,
        "/oauth2/introspect",
        &[FORM],
        &form(&[("token", &pair.access_token)]),
    )
    .await;
    assert_eq!(a.json()["active"], true);
    // The refresh token was never used.
    tokens(&mut s.client().await, refresh_req(&pair.refresh_token)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presented_client_credentials_that_fail_are_invalid_client() {
    let env = Env::new(Backend::Memory).await;
    let dir = tempfile::tempdir().unwrap();
    let callers = callers_flag(
        &dir,
        &[
            ("login", "login-key", &["Issue", "Refresh"]),
            ("gateway", "gateway-key", &["Verify"]),
        ],
    );
    let s = env
        .server(&[
            "--http-listen=127.0.0.1:0",
            "--http-token-endpoint",
            "--refresh-grace=0s",
            callers.as_str(),
        ])
        .await;
    let http = s.http.unwrap();
    let mut c = s.client().await;
    let mut req = tonic::Request::new(issue_request("client-auth"));
    req.metadata_mut()
        .insert("x-tessera-key", "login-key".parse().unwrap());
    let pair = c.issue(req).await.unwrap().into_inner().tokens.unwrap();
    let grant = [
        ("grant_type", "refresh_token"),
        ("refresh_token", pair.refresh_token.as_str()),
    ];
    let nobody = basic("nobody", "wrong");
    let wrong_key = basic("login", "wrong");
    let wrong_name = basic("gateway", "login-key");
    for (what, auth, extra, status, error) in [
        (
            "unknown client",
            Some(nobody.as_str()),
            vec![],
            401,
            "invalid_client",
        ),
        (
            "wrong key",
            Some(wrong_key.as_str()),
            vec![],
            401,
            "invalid_client",
        ),
        (
            "another's key",
            Some(wrong_name.as_str()),
            vec![],
            401,
            "invalid_client",
        ),
        (
            "broken Basic",
            Some("Basic %%%"),
            vec![],
            401,
            "invalid_client",
        ),
        (
            "wrong secret in the body",
            None,
            vec![("client_id", "login"), ("client_secret", "wrong")],
            401,
            "invalid_client",
        ),
        (
            "a secret without a client_id",
            None,
            vec![("client_secret", "login-key")],
            401,
            "invalid_client",
        ),
        (
            "two methods",
            Some(basic("login", "login-key").leak() as &str),
            vec![("client_id", "login"), ("client_secret", "login-key")],
            400,
            "invalid_request",
        ),
        (
            "a client not allowed Refresh",
            Some(basic("gateway", "gateway-key").leak() as &str),
            vec![],
            400,
            "unauthorized_client",
        ),
    ] {
        let mut h = vec![FORM];
        if let Some(a) = auth {
            h.push(("Authorization", a));
        }
        let mut pairs = grant.to_vec();
        pairs.extend(extra);
        let a = post(http, "/oauth2/token", &h, &form(&pairs)).await;
        assert_eq!(a.status, status, "{what}: {}", a.body);
        assert_eq!(a.json()["error"], error, "{what}");
    }
    // Nothing above rotated: right credentials (either method) refresh,
    // and so does a public client with none.
    let login = basic("login", "login-key");
    let a = post(
        http,
        "/oauth2/token",
        &[FORM, ("Authorization", &login)],
        &form(&grant),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let next = a.json()["refresh_token"].as_str().unwrap().to_owned();
    let a = post(
        http,
        "/oauth2/token",
        &[FORM],
        &form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &next),
            ("client_id", "login"),
            ("client_secret", "login-key"),
        ]),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let next = a.json()["refresh_token"].as_str().unwrap().to_owned();
    let a = post(
        http,
        "/oauth2/token",
        &[FORM],
        &form(&[("grant_type", "refresh_token"), ("refresh_token", &next)]),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
}

/// A public client's `client_id` must be the session's (RFC 6749 §6);
/// a session issued to no client takes any, and none is fine.
async fn a_foreign_client_id_is_invalid_grant(backend: Backend) {
    let env = Env::new(backend).await;
    let s = env
        .server(&[
            "--http-listen=127.0.0.1:0",
            "--http-token-endpoint",
            "--refresh-grace=0s",
        ])
        .await;
    let http = s.http.unwrap();
    let mut c = s.client().await;
    let pair = c
        .issue(tessera::pb::IssueRequest {
            client_id: "web \"app\"".into(),
            ..issue_request("client-id")
        })
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    let refresh = |token: &str, client_id: Option<&str>| {
        let mut pairs = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", token.to_owned()),
        ];
        if let Some(id) = client_id {
            pairs.push(("client_id", id.to_owned()));
        }
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        form(&pairs)
    };
    for foreign in ["spa", "web", "web \"app"] {
        let a = post(
            http,
            "/oauth2/token",
            &[FORM],
            &refresh(&pair.refresh_token, Some(foreign)),
        )
        .await;
        assert_eq!(a.status, 400, "{foreign}: {}", a.body);
        assert_eq!(a.json()["error"], "invalid_grant");
        assert_eq!(a.json()["error_description"], "TOKEN_BINDING_MISMATCH");
    }
    // Nothing rotated: the session's own client, then no client_id.
    let a = post(
        http,
        "/oauth2/token",
        &[FORM],
        &refresh(&pair.refresh_token, Some("web \"app\"")),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let next = a.json()["refresh_token"].as_str().unwrap().to_owned();
    let a = post(http, "/oauth2/token", &[FORM], &refresh(&next, None)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    // A session issued to no client: any client_id.
    let pair = issue(&mut c, "no-client").await;
    let a = post(
        http,
        "/oauth2/token",
        &[FORM],
        &refresh(&pair.refresh_token, Some("spa")),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
}

on_both_stores!(a_foreign_client_id_is_invalid_grant);

// === #32 item 10: introspection's timing ===

/// Inactive answers all take the floor, whether the token is genuine and
/// revoked (a verified-cache hit, microseconds) or forged (a failed
/// signature check): read from the server's own request-duration
/// histogram, in a process of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inactive_introspections_all_take_the_floor() {
    let env = Env::new(Backend::Memory).await;
    let port = free_port();
    let process = Process::start(&env.flags(&[&format!("--http-listen=127.0.0.1:{port}")])).await;
    let http: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let server = process.server();
    let mut c = server.client().await;
    let pair = issue(&mut c, "timing").await;
    let introspect = |token: String| async move {
        post(
            http,
            "/oauth2/introspect",
            &[FORM],
            &form(&[("token", &token)]),
        )
        .await
    };
    let mut active = 0;
    while introspect(pair.access_token.clone()).await.json()["active"] == true {
        active += 1;
        if active == 1 {
            c.revoke(revoke_token(&pair.access_token)).await.unwrap();
        }
        assert!(active < 500, "never revoked");
    }
    let mut forged = pair.access_token.clone();
    forged.pop();
    forged.push(if pair.access_token.ends_with('A') {
        'B'
    } else {
        'A'
    });
    for _ in 0..20 {
        assert_eq!(
            introspect(pair.access_token.clone()).await.json()["active"],
            false
        );
        assert_eq!(introspect(forged.clone()).await.json()["active"], false);
    }
    let (_, metrics) = server.admin_get("/metrics").await;
    let faster = |le: &str| {
        metric_with(
            &metrics,
            "tessera_http_request_duration_seconds_bucket",
            &[("path", "/oauth2/introspect"), ("le", le)],
        )
        .unwrap_or(0.0)
    };
    // Only the active answers may be faster than 1 ms.
    assert!(
        faster("0.001") <= active as f64,
        "{} of {} introspections under 1 ms\n{metrics}",
        faster("0.001"),
        active + 41
    );
}

/// The sibling of the wrong-key flood: budget refusals, which a public
/// client can provoke too, write a bounded number of lines and events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_refusals_are_logged_at_a_bounded_rate() {
    let env = Env::new(Backend::Memory).await;
    let process = Process::start_logging(&env.flags(&["--refresh-rate=1:1"]), "info").await;
    let mut c = process.server().client().await;
    let pair = issue(&mut c, "budget").await;
    let next = tokens(&mut c, refresh_req(&pair.refresh_token)).await;
    let start = Instant::now();
    let (mut current, mut limited) = (next.refresh_token, 0);
    for _ in 0..1000 {
        match c.refresh(refresh_req(&current)).await {
            Ok(r) => current = r.into_inner().tokens.unwrap().refresh_token,
            Err(status) => {
                assert_eq!(reason(&status), "RATE_LIMITED");
                limited += 1;
            }
        }
    }
    let took = start.elapsed();
    assert!(limited >= 900, "{limited} refused");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = process.log_text();
    let bound = (took.as_secs() as usize + 2) * tessera::refusals::LINES_PER_SECOND as usize;
    let failed = log
        .lines()
        .filter(|l| l.contains("\"call failed\"") && l.contains("RATE_LIMITED"))
        .count();
    let audited = log
        .lines()
        .filter(|l| l.contains("\"rate_limited\"") && l.contains(tessera::audit::TARGET))
        .count();
    assert!(
        (1..=bound).contains(&failed),
        "{failed} lines for 1,000 refusals in {took:?}"
    );
    assert!(
        (1..=bound).contains(&audited),
        "{audited} events for 1,000 refusals in {took:?}"
    );
}
