//! Callers scoped to tenants (issue #28, DESIGN §10), over real gRPC and
//! HTTP: a caller with `tenants = ["acme"]` acting on another tenant's
//! subject, token, session or refresh token is refused with
//! `TENANT_NOT_ALLOWED` by every RPC, by introspection (inactive, RFC
//! 7662), by HTTP revocation and by Envoy's `Check`, and the other
//! tenant's state is unchanged (checked afterwards by a platform-wide
//! caller); and the revocation stream of a scoped watcher carries exactly
//! its tenant's events, in the snapshot, live and after resuming from a
//! cursor, while a platform-wide watcher sees them all.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use tonic::{Request, Streaming};

use crate::ext_authz::{check_request, envoy, outcome};
use crate::oauth::{basic, form, post, FORM};
use crate::support::*;
use tessera::pb;
use tessera::transport::callers::api_key_sha256;

/// The callers: `acme-app` and `globex-app` scoped to their tenant,
/// `acme-gw` scoped to acme and `initech` (a gateway: Verify, Check,
/// WatchRevocations), and `platform`, platform-wide.
fn callers_file(dir: &tempfile::TempDir) -> String {
    let entry = |name: &str, allow: &str, tenants: Option<&str>| {
        format!(
            "[[caller]]\nname = {name:?}\napi_key_sha256 = {:?}\nallow = {allow}\nexchange_audiences = [\"billing\"]\n{}\n",
            api_key_sha256(&format!("{name}-key")),
            tenants.map_or(String::new(), |t| format!("tenants = {t}\n"))
        )
    };
    let text = [
        entry("acme-app", r#"["*"]"#, Some(r#"["acme"]"#)),
        entry("globex-app", r#"["*"]"#, Some(r#"["globex"]"#)),
        entry(
            "acme-gw",
            r#"["Verify", "Check", "WatchRevocations"]"#,
            Some(r#"["acme", "initech"]"#),
        ),
        entry("platform", r#"["*"]"#, None),
    ]
    .concat();
    let path = dir.path().join("callers.toml");
    std::fs::write(&path, text).expect("write the callers file");
    format!("--callers={}", path.display())
}

/// `msg` as `caller` sends it (its key is `<caller>-key`).
fn by<T>(caller: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    let key = format!("{caller}-key");
    r.metadata_mut()
        .insert("x-tessera-key", key.parse().expect("ascii key"));
    r
}

fn issue_for(tenant: &str, subject: &str) -> pb::IssueRequest {
    pb::IssueRequest {
        tenant: tenant.into(),
        ..issue_request(subject)
    }
}

async fn issued(c: &mut Client, caller: &str, tenant: &str, subject: &str) -> pb::TokenPair {
    c.issue(by(caller, issue_for(tenant, subject)))
        .await
        .expect("issue")
        .into_inner()
        .tokens
        .expect("tokens")
}

/// A server on `backend` with the callers above, the OAuth port, and
/// per-tenant metrics for `acme`.
async fn server(backend: Backend) -> (Env, Server, tempfile::TempDir) {
    let env = Env::new(backend).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let callers = callers_file(&dir);
    let server = env
        .server(&[
            &callers,
            "--http-listen=127.0.0.1:0",
            "--http-token-endpoint",
            "--issue-rate=off",
            "--refresh-rate=off",
            "--metrics-tenants=acme",
        ])
        .await;
    (env, server, dir)
}

/// The live session ids of `tenant`'s `subject`, as `caller` lists them.
async fn listed(
    c: &mut Client,
    caller: &str,
    tenant: &str,
    subject: &str,
) -> Result<BTreeSet<String>, tonic::Status> {
    let request = pb::ListSessionsRequest {
        tenant: tenant.into(),
        subject: subject.into(),
        ..Default::default()
    };
    let page = c.list_sessions(by(caller, request)).await?.into_inner();
    Ok(page.sessions.into_iter().map(|s| s.session_id).collect())
}

/// What a platform-wide caller sees of globex's subject `bob`: his live
/// session ids.
async fn bobs_sessions(c: &mut Client) -> BTreeSet<String> {
    listed(c, "platform", "globex", "bob")
        .await
        .expect("platform lists globex's sessions")
}

#[track_caller]
fn refused<T: std::fmt::Debug>(what: &str, result: Result<tonic::Response<T>, tonic::Status>) {
    match result {
        Ok(r) => panic!("{what}: expected TENANT_NOT_ALLOWED, got success: {r:?}"),
        Err(status) => {
            assert_eq!(reason(&status), "TENANT_NOT_ALLOWED", "{what}: {status:?}");
            assert_eq!(status.code(), tonic::Code::PermissionDenied, "{what}");
        }
    }
}

/// Every RPC, introspection, HTTP revocation and `Check` of a caller scoped
/// to acme on globex's subject `bob`, his tokens, sessions and refresh
/// tokens: each refused with `TENANT_NOT_ALLOWED` (introspection: not
/// active), nothing of globex's state changed; the same calls on acme's
/// own objects go through.
async fn scoped_caller_is_refused_on_another_tenant(backend: Backend) {
    let (_env, server, _dir) = server(backend).await;
    let mut c = server.client().await;
    let http = server.http.expect("the OAuth port");
    let bob = issued(&mut c, "globex-app", "globex", "bob").await;
    let bob2 = issued(&mut c, "globex-app", "globex", "bob").await;
    // bob2's refresh token, rotated once by its own tenant: the old one is
    // now a superseded token, whose replay would revoke the session.
    let bob2_old = bob2.refresh_token.clone();
    let bob2 = c
        .refresh(by("globex-app", refresh_req(&bob2.refresh_token)))
        .await
        .expect("globex refreshes its own")
        .into_inner()
        .tokens
        .expect("tokens");
    let before = bobs_sessions(&mut c).await;
    assert_eq!(before.len(), 2, "{before:?}");

    // Issue for another tenant.
    refused(
        "Issue",
        c.issue(by("acme-app", issue_for("globex", "mallory")))
            .await,
    );
    // Refresh another tenant's refresh token: current and superseded.
    for token in [&bob.refresh_token, &bob2_old] {
        refused(
            "Refresh",
            c.refresh(by("acme-app", refresh_req(token))).await,
        );
    }
    // A made-up secret on globex's session id answers as an unknown
    // token: nothing tells the session exists.
    let made_up = format!("{}.{}", bob.session_id, "A".repeat(43));
    let unknown = format!("{}.{}", "B".repeat(22), "A".repeat(43));
    for token in [&made_up, &unknown] {
        expect_reason(
            c.refresh(by("acme-app", refresh_req(token))).await,
            "REFRESH_TOKEN_INVALID",
        );
    }
    // Verify, with every option that touches state (renewal, strong reads).
    for request in [
        verify_request(&bob.access_token),
        strong(&bob.access_token),
        pb::VerifyRequest {
            renew: true,
            ..verify_request(&bob.access_token)
        },
    ] {
        refused("Verify", c.verify(by("acme-app", request)).await);
    }
    // Exchange another tenant's token (for an audience it may request).
    let exchange = |token: &str| pb::ExchangeRequest {
        subject_token: token.to_owned(),
        audience: vec!["billing".into()],
        ..Default::default()
    };
    refused(
        "Exchange",
        c.exchange(by("acme-app", exchange(&bob.access_token)))
            .await,
    );
    refused(
        "Verify by a gateway of two tenants",
        c.verify(by("acme-gw", verify_request(&bob.access_token)))
            .await,
    );
    // Revoke by access token, refresh token, session id, subject, and
    // "log out my other devices".
    for request in [
        revoke_token(&bob.access_token),
        revoke_token(&bob.refresh_token),
        revoke_session_id(&bob.session_id),
        revoke_subject("globex", "bob"),
        pb::RevokeRequest {
            keep_session_id: bob.session_id.clone(),
            ..revoke_subject("globex", "bob")
        },
    ] {
        refused("Revoke", c.revoke(by("acme-app", request)).await);
    }
    // A session id the store does not know is refused exactly like
    // another tenant's (same code, reason and message).
    let theirs = c
        .revoke(by("acme-app", revoke_session_id(&bob.session_id)))
        .await
        .unwrap_err();
    let nobodys = c
        .revoke(by("acme-app", revoke_session_id(&"C".repeat(22))))
        .await
        .unwrap_err();
    assert_eq!(
        (theirs.code(), reason(&theirs), theirs.message()),
        (nobodys.code(), reason(&nobodys), nobodys.message())
    );
    // A made-up secret on their session revokes nothing, as for anyone.
    let cursor = c
        .revoke(by("acme-app", revoke_token(&made_up)))
        .await
        .expect("an unknown refresh token revokes nothing")
        .into_inner()
        .cursor;
    assert_eq!(cursor, "");
    // ListSessions and a watch of another tenant.
    let status = listed(&mut c, "acme-app", "globex", "bob")
        .await
        .expect_err("ListSessions of another tenant");
    refused::<()>("ListSessions", Err(status));
    refused(
        "WatchRevocations",
        c.watch_revocations(by(
            "acme-app",
            pb::WatchRevocationsRequest {
                tenants: vec!["acme".into(), "globex".into()],
                include_snapshot: true,
                ..Default::default()
            },
        ))
        .await,
    );
    // Envoy's Check, as a gateway scoped to acme.
    let mut envoy_client = envoy(&server).await;
    let check_of = |token: &str| {
        check_request(
            &[("authorization", &format!("Bearer {token}"))],
            &[("renew", "true")],
            "",
        )
    };
    let denied = envoy_client
        .check(by("acme-gw", check_of(&bob.access_token)))
        .await
        .expect("Check answers")
        .into_inner();
    let (allowed, status, headers, _) = outcome(&denied);
    assert!(!allowed);
    assert_eq!(status, 403);
    assert_eq!(
        headers.get("x-tessera-reason").map(String::as_str),
        Some("TENANT_NOT_ALLOWED")
    );
    // Introspection: not active for a scoped caller, active for its own
    // tenant's caller (the whole answer).
    let introspect = |caller: &'static str, token: String| async move {
        let auth = basic(caller, &format!("{caller}-key"));
        let answer = post(
            http,
            "/oauth2/introspect",
            &[FORM, ("Authorization", &auth)],
            &form(&[("token", &token)]),
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.json()
    };
    let answer = introspect("acme-app", bob.access_token.clone()).await;
    assert_eq!(answer, serde_json::json!({ "active": false }));
    // HTTP revocation of their access and refresh tokens.
    for token in [&bob.access_token, &bob.refresh_token] {
        let auth = basic("acme-app", "acme-app-key");
        let answer = post(
            http,
            "/oauth2/revoke",
            &[FORM, ("Authorization", &auth)],
            &form(&[("token", token)]),
        )
        .await;
        assert_eq!(answer.status, 403, "{}", answer.body);
        assert_eq!(answer.json()["error_description"], "TENANT_NOT_ALLOWED");
    }
    // The token endpoint, with a scoped caller's credentials (a public
    // client, without any, is not a caller: the refresh token decides).
    let auth = basic("acme-app", "acme-app-key");
    let answer = post(
        http,
        "/oauth2/token",
        &[FORM, ("Authorization", &auth)],
        &form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &bob.refresh_token),
        ]),
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.json()["error"], "invalid_grant");
    assert_eq!(answer.json()["error_description"], "TENANT_NOT_ALLOWED");

    // Globex's state is unchanged: both sessions live, every token of
    // them verifies (in the store, not only the cache), nothing was
    // renewed or rotated on their behalf, no event was written.
    assert_eq!(bobs_sessions(&mut c).await, before);
    for token in [&bob.access_token, &bob2.access_token] {
        let claims = c
            .verify(by("platform", strong(token)))
            .await
            .expect("globex's token still verifies")
            .into_inner()
            .claims
            .expect("claims");
        assert_eq!(claims.tenant, "globex");
    }
    let answer = introspect("globex-app", bob.access_token.clone()).await;
    assert_eq!(answer["active"], Value::Bool(true), "{answer}");
    let checked = envoy_client
        .check(by("platform", check_of(&bob.access_token)))
        .await
        .expect("Check answers")
        .into_inner();
    assert!(
        outcome(&checked).0,
        "a platform-wide gateway still allows it"
    );
    // bob's refresh token still rotates for its own tenant.
    c.refresh(by("globex-app", refresh_req(&bob.refresh_token)))
        .await
        .expect("bob's session was never touched");
    c.refresh(by("globex-app", refresh_req(&bob2.refresh_token)))
        .await
        .expect("bob2's session was not revoked by the replayed token");
    let mut all = watch(&mut c, "platform", "", &[]).await;
    let snapshot = until_caught_up(&mut all).await;
    assert!(snapshot.is_empty(), "no event was written: {snapshot:?}");

    // The same calls on its own tenant go through.
    let alice = issued(&mut c, "acme-app", "acme", "alice").await;
    c.verify(by("acme-app", verify_request(&alice.access_token)))
        .await
        .expect("acme verifies its own");
    c.verify(by("acme-gw", verify_request(&alice.access_token)))
        .await
        .expect("acme's gateway verifies acme's");
    let checked = envoy_client
        .check(by("acme-gw", check_of(&alice.access_token)))
        .await
        .expect("Check answers")
        .into_inner();
    assert!(outcome(&checked).0, "acme's gateway allows acme's token");
    let own = listed(&mut c, "acme-app", "acme", "alice")
        .await
        .expect("acme lists its own");
    assert_eq!(own, set(std::slice::from_ref(&alice.session_id)));
    let alice = c
        .refresh(by("acme-app", refresh_req(&alice.refresh_token)))
        .await
        .expect("acme refreshes its own")
        .into_inner()
        .tokens
        .expect("tokens");
    let answer = introspect("acme-app", alice.access_token.clone()).await;
    assert_eq!(answer["active"], Value::Bool(true), "{answer}");
    let derived = c
        .exchange(by("acme-app", exchange(&alice.access_token)))
        .await
        .expect("acme exchanges its own")
        .into_inner();
    c.verify(by(
        "acme-app",
        pb::VerifyRequest {
            audience: "billing".into(),
            ..verify_request(&derived.access_token)
        },
    ))
    .await
    .expect("the exchanged token verifies for its audience");
    let cursor = c
        .revoke(by("acme-app", revoke_session_id(&alice.session_id)))
        .await
        .expect("acme revokes its own session by id")
        .into_inner()
        .cursor;
    assert!(!cursor.is_empty());

    // Per-tenant metrics: acme by name, globex (not listed) as `other`.
    let (_, metrics) = server.admin_get("/metrics").await;
    let count = |tenant: &str, event: &str| {
        metric_with(
            &metrics,
            "tessera_tenant_events_total",
            &[("tenant", tenant), ("event", event)],
        )
        .unwrap_or(0.0)
    };
    assert!(count("acme", "issued") >= 1.0, "{metrics}");
    assert!(count("other", "denied") >= 1.0, "{metrics}");
    assert!(
        !metrics.contains("tenant=\"globex\""),
        "an unlisted tenant never becomes a label"
    );
}

/// Events up to the caught-up marker (which is not returned).
async fn until_caught_up(s: &mut Streaming<pb::RevocationEvent>) -> Vec<pb::RevocationEvent> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.message()).await {
            Ok(Ok(Some(ev))) if ev.kind == pb::RevocationKind::Unspecified as i32 => return out,
            Ok(Ok(Some(ev))) => out.push(ev),
            other => panic!("after {} events, no caught-up marker: {other:?}", out.len()),
        }
    }
}

/// A watch of `caller`'s from `after` ("" with a snapshot), with the
/// caught-up marker, narrowed to `tenants`.
async fn watch(
    c: &mut Client,
    caller: &str,
    after: &str,
    tenants: &[&str],
) -> Streaming<pb::RevocationEvent> {
    c.watch_revocations(by(
        caller,
        pb::WatchRevocationsRequest {
            after_cursor: after.into(),
            include_snapshot: after.is_empty(),
            mark_caught_up: true,
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
        },
    ))
    .await
    .expect("watch")
    .into_inner()
}

/// An event as the tests name it, with what it may carry checked: a token
/// or session event no subject, a subject event its subject and key.
fn name(e: &pb::RevocationEvent) -> String {
    let kind = pb::RevocationKind::try_from(e.kind).expect("a known kind");
    match kind {
        pb::RevocationKind::Token | pb::RevocationKind::Session => {
            assert_eq!(
                (e.subject.as_str(), e.subject_key.as_str()),
                ("", ""),
                "{e:?}"
            );
        }
        pb::RevocationKind::Subject => assert_eq!(
            e.subject_key,
            tessera::store::subject_key(&e.tenant, &e.subject),
            "{e:?}"
        ),
        pb::RevocationKind::Unspecified => panic!("a second marker: {e:?}"),
    }
    match kind {
        pb::RevocationKind::Token => format!("{}/token:{}", e.tenant, e.token_id),
        pb::RevocationKind::Session => format!("{}/session:{}", e.tenant, e.session_id),
        _ => format!("{}/subject:{}", e.tenant, e.subject),
    }
}

/// The events of a stream up to and including the one named `last` (the
/// markers left out), and the cursor of that one.
async fn until(s: &mut Streaming<pb::RevocationEvent>, last: &str) -> (Vec<String>, String) {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = match tokio::time::timeout(left, s.message()).await {
            Ok(Ok(Some(ev))) => ev,
            other => panic!("{last} never came; after {out:?}: {other:?}"),
        };
        if ev.kind == pb::RevocationKind::Unspecified as i32 {
            continue;
        }
        out.push(name(&ev));
        if out.last().is_some_and(|n| n == last) {
            return (out, ev.cursor);
        }
    }
}

fn set(names: &[String]) -> BTreeSet<String> {
    names.iter().cloned().collect()
}

/// Two scoped watchers (acme, globex) and a platform-wide one follow the
/// same revocations, made in three tenants: each scoped watcher gets
/// exactly its tenant's events — in the snapshot, live, and after resuming
/// from its cursor — and the platform-wide one all of them; a filtered
/// stream's cursor resumes a differently filtered one without a gap.
async fn watchers_see_exactly_their_tenants_events(backend: Backend) {
    let (_env, server, _dir) = server(backend).await;
    let mut c = server.client().await;
    let base = c.clone();
    let sessions = |caller: &'static str, tenant: &'static str, subject: &'static str| {
        let mut c = base.clone();
        async move {
            let mut out = Vec::new();
            for i in 0..6 {
                out.push(issued(&mut c, caller, tenant, &format!("{subject}{i}")).await);
            }
            out
        }
    };
    let a = sessions("acme-app", "acme", "alice").await;
    let g = sessions("globex-app", "globex", "bob").await;
    let i = sessions("platform", "initech", "carol").await;
    let sid = |tenant: &str, pair: &pb::TokenPair| format!("{tenant}/session:{}", pair.session_id);
    let revoke = |caller: &'static str, request: pb::RevokeRequest| {
        let mut c = base.clone();
        async move {
            let cursor = c
                .revoke(by(caller, request))
                .await
                .expect("revoke")
                .into_inner()
                .cursor;
            assert!(!cursor.is_empty(), "an event was written");
        }
    };
    let g0_jti = c
        .verify(by("platform", verify_request(&g[0].access_token)))
        .await
        .expect("verify")
        .into_inner()
        .claims
        .expect("claims")
        .token_id;

    // Before any watcher: one revocation per tenant, for the snapshots.
    revoke("acme-app", revoke_session_id(&a[0].session_id)).await;
    revoke("globex-app", revoke_token(&g[0].access_token)).await;
    revoke("platform", revoke_subject("initech", "carol0")).await;
    let mut wa = watch(&mut c, "acme-app", "", &[]).await;
    let mut wg = watch(&mut c, "globex-app", "", &[]).await;
    let mut wp = watch(&mut c, "platform", "", &[]).await;
    let snap = |events: Vec<pb::RevocationEvent>| -> BTreeSet<String> {
        events.iter().map(name).collect()
    };
    let snapshot_a = snap(until_caught_up(&mut wa).await);
    let snapshot_g = snap(until_caught_up(&mut wg).await);
    let snapshot_p = snap(until_caught_up(&mut wp).await);
    assert_eq!(snapshot_a, set(&[sid("acme", &a[0])]));
    assert_eq!(snapshot_g, set(&[format!("globex/token:{g0_jti}")]));
    let everything = [
        sid("acme", &a[0]),
        format!("globex/token:{g0_jti}"),
        "initech/subject:carol0".to_owned(),
    ];
    assert_eq!(snapshot_p, set(&everything));

    // Live: revocations in every tenant, each scoped stream ends with a
    // fence of its own tenant made after all the others.
    revoke("acme-app", revoke_session_id(&a[1].session_id)).await;
    revoke("globex-app", revoke_session_id(&g[1].session_id)).await;
    revoke("platform", revoke_session_id(&i[1].session_id)).await;
    revoke("platform", revoke_subject("acme", "alice2")).await;
    revoke("platform", revoke_subject("globex", "bob2")).await;
    revoke("acme-app", revoke_session_id(&a[3].session_id)).await;
    revoke("globex-app", revoke_session_id(&g[3].session_id)).await;
    let (live_a, cursor_a) = until(&mut wa, &sid("acme", &a[3])).await;
    let (live_g, cursor_g) = until(&mut wg, &sid("globex", &g[3])).await;
    let (live_p, _) = until(&mut wp, &sid("globex", &g[3])).await;
    assert_eq!(
        live_a,
        vec![
            sid("acme", &a[1]),
            "acme/subject:alice2".to_owned(),
            sid("acme", &a[3])
        ]
    );
    assert_eq!(
        live_g,
        vec![
            sid("globex", &g[1]),
            "globex/subject:bob2".to_owned(),
            sid("globex", &g[3])
        ]
    );
    assert_eq!(
        set(&live_p),
        set(&[
            sid("acme", &a[1]),
            sid("globex", &g[1]),
            sid("initech", &i[1]),
            "acme/subject:alice2".to_owned(),
            "globex/subject:bob2".to_owned(),
            sid("acme", &a[3]),
            sid("globex", &g[3]),
        ])
    );

    // The scoped watchers go away; revocations go on in every tenant.
    drop(wa);
    drop(wg);
    revoke("acme-app", revoke_session_id(&a[4].session_id)).await;
    revoke("globex-app", revoke_session_id(&g[4].session_id)).await;
    revoke("platform", revoke_session_id(&i[4].session_id)).await;
    // Resumed from their cursors, they miss nothing of theirs and see
    // nothing of another's; acme's (filtered) cursor resumes a platform
    // stream narrowed to initech, which gets initech's events since.
    let mut wa = watch(&mut c, "acme-app", &cursor_a, &[]).await;
    let mut wg = watch(&mut c, "globex-app", &cursor_g, &[]).await;
    let mut wi = watch(&mut c, "platform", &cursor_a, &["initech"]).await;
    revoke("acme-app", revoke_session_id(&a[5].session_id)).await;
    revoke("globex-app", revoke_session_id(&g[5].session_id)).await;
    revoke("platform", revoke_session_id(&i[5].session_id)).await;
    let (resumed_a, _) = until(&mut wa, &sid("acme", &a[5])).await;
    let (resumed_g, _) = until(&mut wg, &sid("globex", &g[5])).await;
    let (resumed_i, _) = until(&mut wi, &sid("initech", &i[5])).await;
    let (later_p, _) = until(&mut wp, &sid("initech", &i[5])).await;
    assert_eq!(resumed_a, vec![sid("acme", &a[4]), sid("acme", &a[5])]);
    assert_eq!(resumed_g, vec![sid("globex", &g[4]), sid("globex", &g[5])]);
    assert_eq!(
        resumed_i,
        vec![sid("initech", &i[4]), sid("initech", &i[5])]
    );
    assert_eq!(
        set(&later_p),
        set(&[
            sid("acme", &a[4]),
            sid("globex", &g[4]),
            sid("initech", &i[4]),
            sid("acme", &a[5]),
            sid("globex", &g[5]),
            sid("initech", &i[5]),
        ])
    );
    // A scoped watcher may narrow within its scope, never beyond it.
    let mut narrowed = watch(&mut c, "acme-gw", "", &["initech"]).await;
    let snapshot_i = snap(until_caught_up(&mut narrowed).await);
    assert_eq!(
        snapshot_i,
        set(&[
            "initech/subject:carol0".to_owned(),
            sid("initech", &i[1]),
            sid("initech", &i[4]),
            sid("initech", &i[5]),
        ])
    );
}

on_both_stores!(
    scoped_caller_is_refused_on_another_tenant,
    watchers_see_exactly_their_tenants_events
);

/// A tenant refusal is a `caller_denied` audit event whose outcome is the
/// reason, with the caller's scope and what the call was about; a
/// platform-wide caller's events say `*`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_refusals_are_audited_with_the_callers_scope() {
    let env = Env::new(Backend::Memory).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let process = Process::start(&env.flags(&[&callers_file(&dir)])).await;
    let mut c = process.server().client().await;
    let bob = issued(&mut c, "platform", "globex", "bob").await;
    refused(
        "Verify",
        c.verify(by("acme-gw", verify_request(&bob.access_token)))
            .await,
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let events = crate::sessions::audit_events(&process);
        let denied = events
            .iter()
            .find(|e| e["event"] == "caller_denied" && e["outcome"] == "TENANT_NOT_ALLOWED");
        let issued = events.iter().find(|e| e["event"] == "issued");
        if let (Some(denied), Some(issued)) = (denied, issued) {
            assert_eq!(denied["rpc"], "Verify");
            assert_eq!(denied["caller"], "acme-gw");
            assert_eq!(denied["caller_tenants"], "acme,initech");
            assert_eq!(denied["tenant"], "globex");
            assert_eq!(denied["subject"], "bob");
            assert_eq!(denied["session_id"], bob.session_id.as_str());
            assert_eq!(issued["caller_tenants"], "*");
            break;
        }
        assert!(Instant::now() < deadline, "no such events: {events:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// With `--watch-raw-subjects=false` the stream carries no subject at all:
/// a subject event has only the subject's key (what verifiers match).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_subjects_can_be_left_off_the_stream() {
    let env = Env::new(Backend::Memory).await;
    for (raw, subject) in [("true", "alice"), ("false", "")] {
        let server = env.server(&[&format!("--watch-raw-subjects={raw}")]).await;
        let mut c = server.client().await;
        issue(&mut c, "alice").await;
        c.revoke(revoke_subject("acme", "alice"))
            .await
            .expect("revoke");
        // (Anonymous: the key `watch` sends is not looked at.)
        let mut s = watch(&mut c, "platform", "", &[]).await;
        let events = until_caught_up(&mut s).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].subject, subject, "raw subjects: {raw}");
        assert_eq!(
            events[0].subject_key,
            tessera::store::subject_key("acme", "alice")
        );
    }
}
