//! Sessions people can see: `ListSessions`, "log out my other devices"
//! (`keep_session_id`), the per-subject session cap, bad input, caller
//! authorization, and the audit trail of a scripted flow.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::support::*;
use prost::Message;
use tessera::pb;
use tonic::Request;

fn issue_with(subject: &str, device: &str, ip: &str, ua: &str) -> pb::IssueRequest {
    pb::IssueRequest {
        device_name: device.into(),
        client_id: "web-app".into(),
        ip_address: ip.into(),
        user_agent: ua.into(),
        ..issue_request(subject)
    }
}

async fn issued(c: &mut Client, r: pb::IssueRequest) -> pb::TokenPair {
    c.issue(r)
        .await
        .expect("issue")
        .into_inner()
        .tokens
        .unwrap()
}

fn list_req(subject: &str, page_size: i32, page_token: &str) -> pb::ListSessionsRequest {
    pb::ListSessionsRequest {
        tenant: "acme".into(),
        subject: subject.into(),
        page_size,
        page_token: page_token.into(),
    }
}

/// Every page of a subject's sessions, `page_size` at a time.
async fn list_all(c: &mut Client, subject: &str, page_size: i32) -> Vec<Vec<pb::Session>> {
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .list_sessions(list_req(subject, page_size, &token))
            .await
            .expect("list")
            .into_inner();
        pages.push(page.sessions);
        if page.next_page_token.is_empty() {
            return pages;
        }
        token = page.next_page_token;
    }
}

async fn live_ids(c: &mut Client, subject: &str) -> Vec<String> {
    let mut ids: Vec<String> = list_all(c, subject, 500)
        .await
        .into_iter()
        .flatten()
        .map(|s| s.session_id)
        .collect();
    ids.sort();
    ids
}

fn secs(t: &Option<prost_types::Timestamp>) -> i64 {
    t.as_ref().map_or(0, |t| t.seconds)
}

async fn listing_shows_exactly_the_live_sessions(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env.server(&["--issue-rate=off"]).await;
    let mut c = server.client().await;
    let before = tessera::clock::now_ms() / 1000;
    let mut bound = issue_with("alice", "Alice's phone", "203.0.113.7", "Phone/1.0");
    bound.device_fingerprint = "device-fingerprint-of-the-phone".into();
    let phone = issued(&mut c, bound).await;
    let laptop = issued(
        &mut c,
        issue_with("alice", "laptop", "2001:db8::1", "Firefox"),
    )
    .await;
    let tablet = issued(&mut c, issue_with("alice", "tablet", "", "")).await;
    let revoked = issued(&mut c, issue_with("alice", "old pc", "", "")).await;
    let idle = issued(
        &mut c,
        pb::IssueRequest {
            refresh_ttl: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
            ..issue_with("alice", "kiosk", "", "")
        },
    )
    .await;
    let other = issued(&mut c, issue_with("bob", "bob's", "", "")).await;
    c.revoke(revoke_session_id(&revoked.session_id))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_200)).await; // the kiosk idles out
    let rotated = c
        .refresh(pb::RefreshRequest {
            refresh_token: laptop.refresh_token.clone(),
            ip_address: "198.51.100.9".into(),
            user_agent: "Firefox/2".into(),
            ..Default::default()
        })
        .await
        .expect("refresh")
        .into_inner();

    let pages = list_all(&mut c, "alice", 50).await;
    assert_eq!(pages.len(), 1);
    let sessions = &pages[0];
    let mut want = vec![
        phone.session_id.clone(),
        laptop.session_id.clone(),
        tablet.session_id.clone(),
    ];
    want.sort();
    let got: Vec<String> = sessions.iter().map(|s| s.session_id.clone()).collect();
    let mut got_set = got.clone();
    got_set.sort();
    assert_eq!(got_set, want, "exactly the live ones");
    // Newest first: creation, then id, descending.
    let order: Vec<(i64, i64, String)> = sessions
        .iter()
        .map(|s| {
            let t = s.created_at.unwrap_or_default();
            (t.seconds, i64::from(t.nanos), s.session_id.clone())
        })
        .collect();
    let mut newest_first = order.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(order, newest_first, "newest first");
    assert!(!got.contains(&idle.session_id) && !got.contains(&revoked.session_id));
    let now = tessera::clock::now_ms() / 1000;
    for s in sessions {
        let created = secs(&s.created_at);
        assert!(created >= before && created <= now, "{s:?}");
        assert!(
            secs(&s.absolute_expires_at) >= created + 29 * 86_400,
            "{s:?}"
        );
        assert!(secs(&s.idle_expires_at) > now, "{s:?}");
        assert_eq!(s.audience, vec!["api"]);
        assert_eq!(s.scopes, vec!["read", "write"]);
        assert_eq!(s.roles, vec!["admin"]);
        assert_eq!(s.client_id, "web-app");
    }
    let by_id = |id: &str| sessions.iter().find(|s| s.session_id == id).unwrap();
    let p = by_id(&phone.session_id);
    assert_eq!(
        (
            p.device_name.as_str(),
            p.ip_address.as_str(),
            p.user_agent.as_str(),
            p.bound
        ),
        ("Alice's phone", "203.0.113.7", "Phone/1.0", true)
    );
    assert_eq!(p.last_refreshed_at, p.created_at);
    let l = by_id(&laptop.session_id);
    assert_eq!(
        (
            l.device_name.as_str(),
            l.ip_address.as_str(),
            l.user_agent.as_str(),
            l.bound
        ),
        ("laptop", "198.51.100.9", "Firefox/2", false),
        "the refresh's client data"
    );
    // The refresh came 1.2 s after the Issue.
    let ms = |t: &Option<prost_types::Timestamp>| {
        t.as_ref()
            .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
    };
    assert!(
        ms(&l.last_refreshed_at) >= ms(&l.created_at) + 1_000,
        "{l:?}"
    );
    assert_eq!(by_id(&tablet.session_id).ip_address, "");
    // No secret in the answer: not a refresh token, its secret, the fingerprint.
    let bytes = pb::ListSessionsResponse {
        sessions: sessions.clone(),
        next_page_token: String::new(),
    }
    .encode_to_vec();
    let text = String::from_utf8_lossy(&bytes);
    for secret in [
        &phone.refresh_token,
        &laptop.refresh_token,
        &rotated.tokens.as_ref().unwrap().refresh_token,
        "device-fingerprint-of-the-phone",
    ] {
        let secret_part = secret.rsplit('.').next().unwrap();
        assert!(!text.contains(secret_part), "a secret is listed");
    }
    assert_eq!(live_ids(&mut c, "bob").await, vec![other.session_id]);
    assert!(live_ids(&mut c, "nobody").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_shows_exactly_the_live_sessions_memory() {
    listing_shows_exactly_the_live_sessions(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_shows_exactly_the_live_sessions_redis() {
    listing_shows_exactly_the_live_sessions(Backend::Redis).await;
}

async fn twelve_hundred_sessions_page_without_gap_or_repeat(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env
        .server(&[
            "--issue-rate=off",
            "--caller-rate=Issue=off",
            "--max-sessions-per-subject=0",
        ])
        .await;
    let mut c = server.client().await;
    let mut issued_ids = HashSet::new();
    for _ in 0..1_200 {
        issued_ids.insert(issue(&mut c, "busy").await.session_id);
    }
    // Asked for 500 a page: served as 100 (MAX_PAGE_SIZE).
    let pages = list_all(&mut c, "busy", 500).await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![100; 12]);
    let listed: Vec<String> = pages.into_iter().flatten().map(|s| s.session_id).collect();
    let unique: HashSet<String> = listed.iter().cloned().collect();
    assert_eq!(unique.len(), listed.len(), "a session listed twice");
    assert_eq!(unique, issued_ids, "a session missing");
    // The default page is 50; a larger page_size is served as 100.
    let first = c
        .list_sessions(list_req("busy", 0, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.sessions.len(), 50);
    let big = c
        .list_sessions(list_req("busy", 10_000, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(big.sessions.len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_hundred_sessions_page_without_gap_or_repeat_memory() {
    twelve_hundred_sessions_page_without_gap_or_repeat(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_hundred_sessions_page_without_gap_or_repeat_redis() {
    twelve_hundred_sessions_page_without_gap_or_repeat(Backend::Redis).await;
}

async fn logging_out_the_other_devices_keeps_exactly_one(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env.server(&["--issue-rate=off"]).await;
    let mut c = server.client().await;
    let pairs = [
        issue(&mut c, "carol").await,
        issue(&mut c, "carol").await,
        issue(&mut c, "carol").await,
    ];
    let bystander = issue(&mut c, "dan").await;
    let keep = &pairs[1];
    let cursor = c
        .revoke(pb::RevokeRequest {
            target: Some(pb::revoke_request::Target::Subject(pb::SubjectRef {
                tenant: "acme".into(),
                subject: "carol".into(),
            })),
            keep_session_id: keep.session_id.clone(),
            reason: "log out my other devices".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .cursor;
    assert!(!cursor.is_empty());
    for other in [&pairs[0], &pairs[2]] {
        expect_reason(c.verify(strong(&other.access_token)).await, "TOKEN_REVOKED");
        wait_revoked(&mut c, &other.access_token).await;
        expect_reason(
            c.refresh(refresh_req(&other.refresh_token)).await,
            "REFRESH_TOKEN_INVALID",
        );
    }
    c.verify(strong(&keep.access_token)).await.expect("kept");
    c.verify(verify_request(&keep.access_token))
        .await
        .expect("kept");
    c.verify(verify_request(&bystander.access_token))
        .await
        .expect("another subject");
    assert_eq!(
        live_ids(&mut c, "carol").await,
        vec![keep.session_id.clone()]
    );
    refreshed(&mut c, &keep.refresh_token).await;
    // Again: nobody else is left, so nothing is revoked.
    let again = c
        .revoke(pb::RevokeRequest {
            target: Some(pb::revoke_request::Target::Subject(pb::SubjectRef {
                tenant: "acme".into(),
                subject: "carol".into(),
            })),
            keep_session_id: keep.session_id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .cursor;
    assert_eq!(again, "");
    // Only with a subject target.
    let status = expect_reason(
        c.revoke(pb::RevokeRequest {
            target: Some(pb::revoke_request::Target::SessionId(
                keep.session_id.clone(),
            )),
            keep_session_id: keep.session_id.clone(),
            reason: String::new(),
        })
        .await,
        "FIELD_INVALID",
    );
    assert_eq!(violations(&status), vec!["keep_session_id"]);
    c.verify(strong(&keep.access_token))
        .await
        .expect("a refused call revoked nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_the_other_devices_keeps_exactly_one_memory() {
    logging_out_the_other_devices_keeps_exactly_one(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_the_other_devices_keeps_exactly_one_redis() {
    logging_out_the_other_devices_keeps_exactly_one(Backend::Redis).await;
}

async fn the_session_cap_evicts_the_oldest_or_refuses(backend: Backend) {
    let env = Env::new(backend).await;
    let evicting = env
        .server(&["--issue-rate=off", "--max-sessions-per-subject=3"])
        .await;
    let mut c = evicting.client().await;
    let mut pairs = Vec::new();
    for _ in 0..3 {
        pairs.push(issue(&mut c, "erin").await);
        tokio::time::sleep(Duration::from_millis(5)).await; // distinct creation times
    }
    let fourth = issue(&mut c, "erin").await;
    expect_reason(
        c.verify(strong(&pairs[0].access_token)).await,
        "TOKEN_REVOKED",
    );
    expect_reason(
        c.verify(verify_request(&pairs[0].access_token)).await,
        "TOKEN_REVOKED",
    );
    let mut want: Vec<String> = [&pairs[1], &pairs[2], &fourth]
        .iter()
        .map(|p| p.session_id.clone())
        .collect();
    want.sort();
    assert_eq!(live_ids(&mut c, "erin").await, want);
    drop(c);
    drop(evicting);

    let refusing = env
        .server(&[
            "--issue-rate=off",
            "--max-sessions-per-subject=3",
            "--session-cap-policy=refuse",
        ])
        .await;
    let mut c = refusing.client().await;
    // erin already has three live sessions in this store.
    let status = expect_reason(c.issue(issue_request("erin")).await, "SESSION_LIMIT");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert_eq!(live_ids(&mut c, "erin").await, want, "nothing written");
    // Room again after a logout.
    c.revoke(revoke_session_id(&fourth.session_id))
        .await
        .unwrap();
    issue(&mut c, "erin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cap_evicts_the_oldest_or_refuses_memory() {
    // Both servers share one memory store only through Redis; in memory each
    // server has its own, so the second part starts from an empty store.
    let env = Env::new(Backend::Memory).await;
    let server = env
        .server(&[
            "--issue-rate=off",
            "--max-sessions-per-subject=2",
            "--session-cap-policy=refuse",
        ])
        .await;
    let mut c = server.client().await;
    issue(&mut c, "fay").await;
    issue(&mut c, "fay").await;
    expect_reason(c.issue(issue_request("fay")).await, "SESSION_LIMIT");
    assert_eq!(live_ids(&mut c, "fay").await.len(), 2);
    drop(c);
    drop(server);
    let server = env
        .server(&["--issue-rate=off", "--max-sessions-per-subject=2"])
        .await;
    let mut c = server.client().await;
    let first = issue(&mut c, "fay").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    issue(&mut c, "fay").await;
    issue(&mut c, "fay").await;
    expect_reason(c.verify(strong(&first.access_token)).await, "TOKEN_REVOKED");
    assert_eq!(live_ids(&mut c, "fay").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cap_evicts_the_oldest_or_refuses_redis() {
    the_session_cap_evicts_the_oldest_or_refuses(Backend::Redis).await;
}

/// A subject's only session is in its session index alone (issue #30:
/// the creation index comes with the second); a cap of one must still find
/// it as the oldest, and listing and "log out my other devices" must see it.
async fn a_subjects_first_session_is_listed_capped_and_logged_out(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env
        .server(&["--issue-rate=off", "--max-sessions-per-subject=1"])
        .await;
    let mut c = server.client().await;
    let first = issue(&mut c, "gus").await;
    let second = issue(&mut c, "gus").await;
    expect_reason(c.verify(strong(&first.access_token)).await, "TOKEN_REVOKED");
    assert_eq!(
        live_ids(&mut c, "gus").await,
        vec![second.session_id.clone()]
    );
    drop(c);
    drop(server);
    let server = env.server(&["--issue-rate=off"]).await;
    let mut c = server.client().await;
    let one = issue(&mut c, "hal").await;
    assert_eq!(live_ids(&mut c, "hal").await, vec![one.session_id.clone()]);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let two = issue(&mut c, "hal").await;
    let mut both = vec![one.session_id.clone(), two.session_id.clone()];
    both.sort();
    assert_eq!(live_ids(&mut c, "hal").await, both);
    c.revoke(pb::RevokeRequest {
        target: Some(pb::revoke_request::Target::Subject(pb::SubjectRef {
            tenant: "acme".into(),
            subject: "hal".into(),
        })),
        keep_session_id: two.session_id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    expect_reason(c.verify(strong(&one.access_token)).await, "TOKEN_REVOKED");
    assert_eq!(live_ids(&mut c, "hal").await, vec![two.session_id.clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subjects_first_session_is_listed_capped_and_logged_out_memory() {
    a_subjects_first_session_is_listed_capped_and_logged_out(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subjects_first_session_is_listed_capped_and_logged_out_redis() {
    a_subjects_first_session_is_listed_capped_and_logged_out(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_session_metadata_is_refused_and_nothing_stored() {
    let env = Env::new(Backend::Memory).await;
    let server = env.server(&[]).await;
    let mut c = server.client().await;
    let status = expect_reason(
        c.issue(pb::IssueRequest {
            device_name: "x".repeat(300),
            client_id: "app\u{202E}gnp".into(),
            ip_address: "not-an-ip".into(),
            user_agent: "u".repeat(600),
            ..issue_request("gus")
        })
        .await,
        "FIELD_INVALID",
    );
    assert_eq!(
        violations(&status),
        vec!["device_name", "client_id", "ip_address", "user_agent"]
    );
    expect_reason(
        c.issue(pb::IssueRequest {
            user_agent: "Mozilla\r\nX-Injected: 1".into(),
            ..issue_request("gus")
        })
        .await,
        "FIELD_INVALID",
    );
    assert!(live_ids(&mut c, "gus").await.is_empty(), "nothing stored");
    let pair = issue(&mut c, "gus").await;
    expect_reason(
        c.refresh(pb::RefreshRequest {
            refresh_token: pair.refresh_token.clone(),
            user_agent: "bad\u{0}agent".into(),
            ..Default::default()
        })
        .await,
        "FIELD_INVALID",
    );
    refreshed(&mut c, &pair.refresh_token).await; // the refused call rotated nothing
    for (req, field) in [
        (list_req("", 10, ""), "subject"),
        (list_req("gus", -1, ""), "page_size"),
        (list_req("gus", 10, "not a token!"), "page_token"),
    ] {
        let status = expect_reason(c.list_sessions(req).await, "FIELD_INVALID");
        assert_eq!(violations(&status), vec![field]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_sessions_needs_its_permission() {
    let env = Env::new(Backend::Memory).await;
    let dir = tempfile::tempdir().unwrap();
    let callers = callers_flag(
        &dir,
        &[
            ("login", "login-key", &["Issue"]),
            ("account-page", "account-key", &["ListSessions"]),
        ],
    );
    let server = env.server(&[&callers]).await;
    let mut c = server.client().await;
    let with_key = |key: &str, msg: pb::ListSessionsRequest| {
        let mut r = Request::new(msg);
        r.metadata_mut()
            .insert("x-tessera-key", key.parse().unwrap());
        r
    };
    let mut issue_req = Request::new(issue_request("hal"));
    issue_req
        .metadata_mut()
        .insert("x-tessera-key", "login-key".parse().unwrap());
    c.issue(issue_req).await.expect("login may issue");
    let denied = c
        .list_sessions(with_key("login-key", list_req("hal", 10, "")))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    assert_eq!(reason(&denied), "CALLER_NOT_ALLOWED");
    let unknown = c
        .list_sessions(with_key("wrong-key", list_req("hal", 10, "")))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::Unauthenticated);
    let anonymous = c.list_sessions(list_req("hal", 10, "")).await.unwrap_err();
    assert_eq!(anonymous.code(), tonic::Code::Unauthenticated);
    let page = c
        .list_sessions(with_key("account-key", list_req("hal", 10, "")))
        .await
        .expect("the account page may list")
        .into_inner();
    assert_eq!(page.sessions.len(), 1);
}

/// The audit events of a process's log, as (event, outcome, fields).
pub(crate) fn audit_events(process: &Process) -> Vec<serde_json::Value> {
    process
        .log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == tessera::audit::TARGET)
        .map(|v| v["fields"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_flow_leaves_exactly_its_audit_trail() {
    let env = Env::new(Backend::Redis).await;
    let dir = tempfile::tempdir().unwrap();
    let mut flags = env.flags(&["--refresh-grace=1s", "--issue-rate=1:1", "--access-ttl=4m"]);
    flags.push(callers_flag(
        &dir,
        &[
            ("login-service", "audit-login-api-key", &["*"]),
            ("reader", "audit-reader-api-key", &["Verify"]),
        ],
    ));
    let process = Process::start(&flags).await;
    let keyed = |key: &str| {
        let key: tonic::metadata::MetadataValue<_> = key.parse().unwrap();
        move |mut r: Request<()>| {
            r.metadata_mut().insert("x-tessera-key", key.clone());
            Ok(r)
        }
    };
    let channel = tonic::transport::Channel::from_shared(process.server().url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut app = pb::token_authority_client::TokenAuthorityClient::with_interceptor(
        channel.clone(),
        keyed("audit-login-api-key"),
    );
    let mut reader = pb::token_authority_client::TokenAuthorityClient::with_interceptor(
        channel.clone(),
        keyed("audit-reader-api-key"),
    );
    let mut envoy = envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient::with_interceptor(
        channel,
        keyed("audit-login-api-key"),
    );
    let fingerprint = "audit-device-fingerprint-secret";
    let first = app
        .issue(pb::IssueRequest {
            device_fingerprint: fingerprint.into(),
            ..issue_with("ivy", "phone", "203.0.113.50", "Phone/2")
        })
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    expect_reason(app.issue(issue_request("ivy")).await, "RATE_LIMITED");
    let refresh = |token: &str, fp: &str| pb::RefreshRequest {
        refresh_token: token.into(),
        device_fingerprint: fp.into(),
        ip_address: "203.0.113.51".into(),
        ..Default::default()
    };
    let second = app
        .refresh(refresh(&first.refresh_token, fingerprint))
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    app.refresh(refresh(&first.refresh_token, fingerprint))
        .await
        .expect("grace replay");
    expect_reason(
        app.refresh(refresh(&second.refresh_token, "another-device"))
            .await,
        "FINGERPRINT_MISMATCH",
    );
    // Past the grace window, and a second later than `second` was minted,
    // so that a renewed token outlives it.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let renewed = app
        .verify(pb::VerifyRequest {
            access_token: second.access_token.clone(),
            device_fingerprint: fingerprint.into(),
            renew: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        !renewed.renewed_access_token.is_empty(),
        "in the critical band"
    );
    expect_reason(
        app.refresh(refresh(&first.refresh_token, fingerprint))
            .await,
        "REFRESH_TOKEN_REUSED",
    );
    let bob = app
        .issue(issue_request("jack"))
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    app.revoke(pb::RevokeRequest {
        target: Some(pb::revoke_request::Target::Subject(pb::SubjectRef {
            tenant: "acme".into(),
            subject: "jack".into(),
        })),
        reason: "offboarding".into(),
        keep_session_id: String::new(),
    })
    .await
    .unwrap();
    // Envoy presents the device-bound token without its device: refused,
    // and audited as Check, not Verify.
    use envoy_types::pb::envoy::service::auth::v3::{attribute_context, AttributeContext};
    let check = envoy_types::ext_authz::v3::pb::CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(attribute_context::Request {
                http: Some(attribute_context::HttpRequest {
                    headers: [(
                        "authorization".to_owned(),
                        format!("Bearer {}", renewed.renewed_access_token),
                    )]
                    .into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    let denied = envoy.check(check).await.unwrap().into_inner();
    assert_ne!(denied.status.unwrap().code, 0, "denied");
    expect_reason(
        reader.issue(issue_request("kim")).await,
        "CALLER_NOT_ALLOWED",
    );

    // The log is written asynchronously: wait for the last event.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !audit_events(&process)
        .iter()
        .any(|e| e["event"] == "caller_denied")
    {
        assert!(Instant::now() < deadline, "no caller_denied event");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let events = audit_events(&process);
    let got: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap_or("").to_owned(),
                e["outcome"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("issued", "ok"),
        ("rate_limited", "refused"),
        ("refreshed", "ok"),
        ("grace_replay", "ok"),
        ("binding_mismatch", "refused"),
        ("renewed", "ok"),
        ("reuse_detected", "refused"),
        ("issued", "ok"),
        ("revoked", "ok"),
        ("binding_mismatch", "refused"),
        ("caller_denied", "CALLER_NOT_ALLOWED"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want);

    let field = |i: usize, name: &str| events[i][name].as_str().unwrap_or("").to_owned();
    // Issued: who, for whom, from where.
    assert_eq!(field(0, "tenant"), "acme");
    assert_eq!(field(0, "subject"), "ivy");
    assert_eq!(field(0, "session_id"), first.session_id);
    assert_eq!(field(0, "caller"), "login-service");
    assert_eq!(field(0, "client_ip"), "203.0.113.50");
    assert_eq!(field(0, "rpc"), "Issue");
    // A refused Issue names no session: none was created.
    assert_eq!(field(1, "session_id"), "");
    assert_eq!(field(1, "subject"), "ivy");
    // Refreshed: the rotation's subject and the new address.
    assert_eq!(field(2, "subject"), "ivy");
    assert_eq!(field(2, "session_id"), first.session_id);
    assert_eq!(field(2, "client_ip"), "203.0.113.51");
    assert_eq!(field(5, "rpc"), "Verify");
    assert_eq!(field(6, "session_id"), first.session_id);
    assert!(field(6, "detail").contains("family"));
    assert_eq!(field(8, "subject"), "jack");
    assert!(field(8, "detail").contains("offboarding"));
    assert_eq!(field(9, "rpc"), "Check");
    assert_eq!(field(9, "subject"), "ivy");
    assert_eq!(field(10, "caller"), "reader");
    assert_eq!(field(10, "rpc"), "Issue");
    let lines: Vec<String> = process
        .log_text()
        .lines()
        .filter(|l| l.contains(tessera::audit::TARGET))
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), want.len());
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            v["timestamp"].is_string(),
            "every event has its time: {line}"
        );
    }
    // No secret in the trail.
    let trail = lines.join("\n");
    let secret = |t: &str| t.rsplit('.').next().unwrap().to_owned();
    for s in [
        secret(&first.refresh_token),
        secret(&second.refresh_token),
        secret(&bob.refresh_token),
        first.access_token.clone(),
        second.access_token.clone(),
        renewed.renewed_access_token.clone(),
        fingerprint.to_owned(),
        "audit-login-api-key".to_owned(),
        "audit-reader-api-key".to_owned(),
    ] {
        assert!(!trail.contains(&s), "a secret in the audit trail");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_false_turns_the_trail_off() {
    let env = Env::new(Backend::Memory).await;
    let process = Process::start(&env.flags(&["--audit=false"])).await;
    let mut c = process.server().client().await;
    let pair = issue(&mut c, "liz").await;
    refreshed(&mut c, &pair.refresh_token).await;
    c.revoke(revoke_subject("acme", "liz")).await.unwrap();
    // A Verify logs nothing either way; give the log a moment, then look.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(audit_events(&process).is_empty());
    assert!(process.log_text().contains("tessera serving"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_caller_budget_refusal_is_audited() {
    let env = Env::new(Backend::Memory).await;
    let process = Process::start(&env.flags(&["--caller-rate=GetJwks=1:1"])).await;
    let mut c = process.server().client().await;
    c.get_jwks(pb::GetJwksRequest::default()).await.unwrap();
    let refused = c.get_jwks(pb::GetJwksRequest::default()).await.unwrap_err();
    assert_eq!(reason(&refused), "RATE_LIMITED");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let events = audit_events(&process);
        if let Some(e) = events.iter().find(|e| e["event"] == "rate_limited") {
            assert_eq!(e["rpc"], "GetJwks");
            assert_eq!(e["caller"], "anonymous");
            assert_eq!(e["outcome"], "refused");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no rate_limited event: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
