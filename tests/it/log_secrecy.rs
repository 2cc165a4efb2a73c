//! No secret ever reaches a log: a full flow at `trace` level, every line
//! captured, searched for tokens, refresh secrets, API keys and the key.

use crate::support::*;
use tonic::Request;

fn with_key<T>(msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("x-tessera-key", "s3cret-api-key-for-logs".parse().unwrap());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_flow_at_trace_level_logs_no_secret() {
    let env = Env::new(Backend::Redis).await;
    let dir = tempfile::tempdir().unwrap();
    let mut flags = env.flags(&["--refresh-grace=0s"]);
    flags.push(callers_flag(
        &dir,
        &[("app", "s3cret-api-key-for-logs", &["*"])],
    ));
    let process = Process::start_logging(&flags, "trace").await;
    let mut c = process.server().client().await;
    let mut req = issue_request("alice");
    req.device_fingerprint = "device-fingerprint-secret".into();
    let pair = c
        .issue(with_key(req))
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    let mut v = verify_request(&pair.access_token);
    v.device_fingerprint = "device-fingerprint-secret".into();
    c.verify(with_key(v)).await.unwrap();
    let next = c
        .refresh(with_key(refresh_on(
            &pair.refresh_token,
            "device-fingerprint-secret",
        )))
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    // Reuse (theft), failed calls, revocation: the paths that log warnings.
    let _ = c.refresh(with_key(refresh_req(&pair.refresh_token))).await;
    let _ = c.verify(with_key(verify_request(&next.access_token))).await;
    let _ = c.verify(verify_request(&next.access_token)).await; // no API key
    let mut bad = Request::new(verify_request(&next.access_token));
    bad.metadata_mut().insert(
        "x-tessera-key",
        "wrong-key-should-not-be-logged".parse().unwrap(),
    );
    let _ = c.verify(bad).await;
    c.revoke(with_key(revoke_token(&next.refresh_token)))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let log = process.log_text();
    assert!(
        log.lines().count() > 20,
        "trace logging produced output:\n{log}"
    );
    assert!(
        log.contains("TRACE") || log.contains("\"level\":\"TRACE\""),
        "trace level was on"
    );
    // The audit trail is part of what is searched (issued, refreshed,
    // revoked, caller_denied for the wrong key).
    let audit_lines = log
        .lines()
        .filter(|l| l.contains(tessera::audit::TARGET))
        .count();
    assert!(audit_lines >= 4, "audit events in the log: {audit_lines}");
    let pem = std::fs::read_to_string(&env.key.path).unwrap();
    let pem_body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let secrets = [
        ("access token", pair.access_token.as_str()),
        (
            "access token signature",
            pair.access_token.rsplit('.').next().unwrap(),
        ),
        ("rotated access token", next.access_token.as_str()),
        ("refresh token", pair.refresh_token.as_str()),
        (
            "refresh secret",
            pair.refresh_token.split_once('.').unwrap().1,
        ),
        (
            "rotated refresh secret",
            next.refresh_token.split_once('.').unwrap().1,
        ),
        ("API key", "s3cret-api-key-for-logs"),
        ("wrong API key", "wrong-key-should-not-be-logged"),
        ("device fingerprint", "device-fingerprint-secret"),
        ("private key", pem_body.as_str()),
        ("private key (start)", &pem_body[..20]),
    ];
    for (what, secret) in secrets {
        assert!(!log.contains(secret), "the {what} appears in the log");
    }
}
