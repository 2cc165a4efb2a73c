//! Envoy external authorization over real gRPC, with Envoy's protos as
//! published (the `envoy-types` crate): what Envoy sends for a request, and
//! what it gets back — allow with identity headers, deny with RFC 6750
//! challenges, 503 when Tessera cannot answer, DPoP and certificate-bound
//! tokens through the request's attributes.

use std::collections::HashMap;

use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse, HttpResponse};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Peer, Request as AttrRequest,
};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use tonic::transport::Channel;

use crate::support::*;
use tessera::pb;

pub(crate) fn check_request(
    headers: &[(&str, &str)],
    route: &[(&str, &str)],
    certificate: &str,
) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                certificate: certificate.into(),
                ..Default::default()
            }),
            request: Some(AttrRequest {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    scheme: "https".into(),
                    host: "api.example.com".into(),
                    path: "/orders?page=2".into(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect::<HashMap<_, _>>(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            context_extensions: route
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }),
    }
}

async fn envoy(server: &Server) -> AuthorizationClient<Channel> {
    AuthorizationClient::new(
        Channel::from_shared(server.url())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    )
}

/// Envoy's `Check` of `req`, which Tessera must answer (allow or deny).
async fn check(e: &mut AuthorizationClient<Channel>, req: CheckRequest) -> CheckResponse {
    e.check(req).await.expect("Check answered").into_inner()
}

/// (allowed, HTTP status of a denial, headers to add upstream or to send
/// downstream, response headers to add on allow).
pub(crate) fn outcome(
    r: &CheckResponse,
) -> (bool, i32, HashMap<String, String>, HashMap<String, String>) {
    let allowed = r.status.as_ref().map_or(-1, |s| s.code) == 0;
    let header_map = |hs: &[envoy_types::ext_authz::v3::pb::HeaderValueOption]| {
        hs.iter()
            .filter_map(|h| h.header.as_ref())
            .map(|h| (h.key.clone(), h.value.clone()))
            .collect::<HashMap<_, _>>()
    };
    match &r.http_response {
        Some(HttpResponse::OkResponse(ok)) => (
            allowed,
            200,
            header_map(&ok.headers),
            header_map(&ok.response_headers_to_add),
        ),
        Some(HttpResponse::DeniedResponse(d)) => (
            allowed,
            d.status.as_ref().map_or(403, |s| s.code),
            header_map(&d.headers),
            HashMap::new(),
        ),
        _ => (allowed, 0, HashMap::new(), HashMap::new()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_check_allows_and_denies_like_verify() {
    let env = Env::new(Backend::Redis).await;
    let server = env.server(&["--access-ttl=4m", "--issue-rate=off"]).await;
    let mut c = server.client().await;
    let mut e = envoy(&server).await;
    let pair = issue(&mut c, "alice").await;
    let bearer = format!("Bearer {}", pair.access_token);

    // A valid token: allowed, with who it is for the upstream.
    let r = check(
        &mut e,
        check_request(&[("authorization", &bearer)], &[], ""),
    )
    .await;
    let (allowed, status, headers, _) = outcome(&r);
    assert!(allowed && status == 200, "{r:?}");
    assert_eq!(headers["x-tessera-subject"], "alice");
    assert_eq!(headers["x-tessera-tenant"], "acme");
    assert_eq!(headers["x-tessera-session"], pair.session_id);
    assert_eq!(headers["x-tessera-scopes"], "read write");
    assert_eq!(headers["x-tessera-roles"], "admin");

    // Per-route requirements.
    type Route<'a> = [(&'a str, &'a str); 1];
    let cases: [(Route, i32, &str); 2] = [
        ([("audience", "billing")], 401, "AUDIENCE_MISMATCH"),
        ([("scopes", "read admin")], 403, "SCOPE_MISSING"),
    ];
    for (route, want_status, want_reason) in cases {
        let r = check(
            &mut e,
            check_request(&[("authorization", &bearer)], &route, ""),
        )
        .await;
        let (allowed, status, headers, _) = outcome(&r);
        assert!(!allowed, "{route:?}");
        assert_eq!(
            (status, headers["x-tessera-reason"].as_str()),
            (want_status, want_reason)
        );
        assert!(
            headers["www-authenticate"].starts_with("Bearer error="),
            "{headers:?}"
        );
    }
    let r = check(
        &mut e,
        check_request(
            &[("authorization", &bearer)],
            &[("audience", "api"), ("scopes", "read")],
            "",
        ),
    )
    .await;
    assert!(outcome(&r).0, "matching route requirements");

    // No header, another scheme, a forged token.
    for headers in [vec![], vec![("authorization", "Basic YWxpY2U6cHc=")]] {
        let r = check(&mut e, check_request(&headers, &[], "")).await;
        let (allowed, status, h, _) = outcome(&r);
        assert!(!allowed);
        assert_eq!(status, 401);
        assert_eq!(h["www-authenticate"], "Bearer");
    }
    let mut forged = pair.access_token.clone();
    let inside = forged.len() - 10;
    forged.replace_range(
        inside..inside + 1,
        if &forged[inside..inside + 1] == "A" {
            "B"
        } else {
            "A"
        },
    );
    let r = check(
        &mut e,
        check_request(&[("authorization", &format!("Bearer {forged}"))], &[], ""),
    )
    .await;
    let (allowed, status, h, _) = outcome(&r);
    assert!(!allowed);
    assert_eq!(
        (status, h["x-tessera-reason"].as_str()),
        (401, "TOKEN_SIGNATURE_INVALID")
    );
    assert!(h["www-authenticate"].contains("error=\"invalid_token\""));

    // Renewal: the successor goes downstream as x-new-token.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let r = check(
        &mut e,
        check_request(&[("authorization", &bearer)], &[("renew", "true")], ""),
    )
    .await;
    let (allowed, _, _, downstream) = outcome(&r);
    assert!(allowed);
    assert!(!downstream["x-new-token"].is_empty(), "{r:?}");

    // Revoked: denied.
    c.revoke(revoke_session_id(&pair.session_id)).await.unwrap();
    let r = check(
        &mut e,
        check_request(&[("authorization", &bearer)], &[], ""),
    )
    .await;
    let (allowed, status, h, _) = outcome(&r);
    assert!(!allowed);
    assert_eq!(
        (status, h["x-tessera-reason"].as_str()),
        (401, "TOKEN_REVOKED")
    );

    // The store down: 503, never an allow.
    let fresh = issue(&mut c, "bob").await;
    let mut redis = env.redis.unwrap();
    redis.kill();
    let r = check(
        &mut e,
        check_request(
            &[("authorization", &format!("Bearer {}", fresh.access_token))],
            &[("consistency", "strong")],
            "",
        ),
    )
    .await;
    let (allowed, status, h, _) = outcome(&r);
    assert!(!allowed, "{r:?}");
    assert_eq!(
        (status, h["x-tessera-reason"].as_str()),
        (503, "STORE_UNAVAILABLE")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_check_needs_its_permission() {
    let env = Env::new(Backend::Memory).await;
    let dir = tempfile::tempdir().unwrap();
    let callers = callers_flag(
        &dir,
        &[
            ("gateway", "gateway-key", &["Check"]),
            ("app", "app-key", &["Verify"]),
        ],
    );
    let server = env.server(&[&callers]).await;
    let mut e = envoy(&server).await;
    let keyed = |key: &str| {
        let mut r = tonic::Request::new(check_request(&[], &[], ""));
        r.metadata_mut()
            .insert("x-tessera-key", key.parse().unwrap());
        r
    };
    let r = e
        .check(keyed("gateway-key"))
        .await
        .expect("the gateway may Check");
    assert!(
        !outcome(&r.into_inner()).0,
        "no token: denied, but answered"
    );
    let s = e.check(keyed("app-key")).await.unwrap_err();
    assert_eq!(s.code(), tonic::Code::PermissionDenied);
    let s = e.check(keyed("unknown")).await.unwrap_err();
    assert_eq!(s.code(), tonic::Code::Unauthenticated);
    let s = e.check(check_request(&[], &[], "")).await.unwrap_err();
    assert_eq!(s.code(), tonic::Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_check_takes_dpop_and_certificates_from_the_request() {
    let env = Env::new(Backend::Memory).await;
    let server = env.server(&[]).await;
    let mut c = server.client().await;
    let mut e = envoy(&server).await;

    // DPoP: the dpop header is the proof for GET https://api.example.com/orders.
    let key = tessera_core::dpop::DpopKey::generate().unwrap();
    let pair = c
        .issue(pb::IssueRequest {
            dpop_jkt: key.jkt().into(),
            ..issue_request("dee")
        })
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    let auth = format!("DPoP {}", pair.access_token);
    let proof = key
        .proof(
            "GET",
            "https://api.example.com/orders",
            Some(&pair.access_token),
            tessera::clock::now_ms() / 1000,
        )
        .unwrap();
    let r = check(
        &mut e,
        check_request(&[("authorization", &auth), ("dpop", &proof)], &[], ""),
    )
    .await;
    assert!(outcome(&r).0, "{r:?}");
    let r = check(&mut e, check_request(&[("authorization", &auth)], &[], "")).await;
    let (allowed, status, h, _) = outcome(&r);
    assert!(!allowed);
    assert_eq!(
        (status, h["x-tessera-reason"].as_str()),
        (401, "TOKEN_BINDING_MISMATCH")
    );

    // Certificate-bound: Envoy's source.certificate (URL-encoded PEM).
    let cert = rcgen::generate_simple_self_signed(vec!["client".into()]).unwrap();
    let pem = cert.cert.pem();
    let der = pem::parse(&pem).unwrap();
    let thumbprint = tessera_core::checks::cert_thumbprint(der.contents());
    let bound = c
        .issue(pb::IssueRequest {
            cert_thumbprint: thumbprint,
            ..issue_request("cert")
        })
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    let encoded: String = pem
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect();
    let bearer = format!("Bearer {}", bound.access_token);
    let r = check(
        &mut e,
        check_request(&[("authorization", &bearer)], &[], &encoded),
    )
    .await;
    assert!(outcome(&r).0, "{r:?}");
    let r = check(
        &mut e,
        check_request(&[("authorization", &bearer)], &[], ""),
    )
    .await;
    assert_eq!(outcome(&r).2["x-tessera-reason"], "TOKEN_BINDING_MISMATCH");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_check_denies_an_expired_token() {
    let env = Env::new(Backend::Memory).await;
    let server = env.server(&["--access-ttl=1s", "--leeway=0s"]).await;
    let mut c = server.client().await;
    let mut e = envoy(&server).await;
    let pair = issue(&mut c, "eve").await;
    let bearer = format!("Bearer {}", pair.access_token);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let r = check(
            &mut e,
            check_request(&[("authorization", &bearer)], &[], ""),
        )
        .await;
        let (allowed, status, h, _) = outcome(&r);
        if !allowed {
            assert_eq!(
                (status, h["x-tessera-reason"].as_str()),
                (401, "TOKEN_EXPIRED")
            );
            assert!(h["www-authenticate"].contains("invalid_token"));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never expired");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_header_names_and_stripping_are_configurable() {
    use envoy_types::ext_authz::v3::pb::HeaderAppendAction;
    let env = Env::new(Backend::Memory).await;
    let server = env
        .server(&[
            "--ext-authz-header-prefix=x-auth-",
            "--ext-authz-strip-authorization",
        ])
        .await;
    let mut c = server.client().await;
    let mut e = envoy(&server).await;
    let pair = issue(&mut c, "fred").await;
    let bearer = format!("Bearer {}", pair.access_token);
    // The client tries to pass its own identity header.
    let r = check(
        &mut e,
        check_request(
            &[("authorization", &bearer), ("x-auth-subject", "root")],
            &[],
            "",
        ),
    )
    .await;
    let Some(HttpResponse::OkResponse(ok)) = &r.http_response else {
        panic!("not allowed: {r:?}");
    };
    let subject = ok
        .headers
        .iter()
        .find(|h| h.header.as_ref().is_some_and(|h| h.key == "x-auth-subject"))
        .expect("the subject header");
    assert_eq!(subject.header.as_ref().unwrap().value, "fred");
    assert_eq!(
        subject.append_action,
        HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        "a client's own value is overwritten"
    );
    assert!(ok.headers_to_remove.contains(&"authorization".to_owned()));
    assert!(
        !ok.headers.iter().any(|h| h
            .header
            .as_ref()
            .is_some_and(|h| h.key.starts_with("x-tessera-"))),
        "the default prefix is replaced"
    );
    // A prefix that is not a header name is refused at start-up.
    assert!(tessera::config::ServeArgs::parse_with_file(vec![
        "--ext-authz-header-prefix=X Bad:".to_owned()
    ])
    .is_err());
}
