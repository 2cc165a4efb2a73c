//! Hardening, second pass (#32): certificate-bound refresh (defect 2),
//! whitespace in role and scope names (5), the DPoP replay entry's lifetime
//! (7). The HTTP side (3, 6, 8) is `hardening2_http`; defect 9 (DPoP `htu`
//! normalisation) is tested in `tessera-core`'s `dpop` unit tests.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;

use crate::oauth::{form, https_post};
use crate::support::*;
use crate::tls::{tls_client, write, Pki};
use tessera::pb;

/// The RFC 8705 thumbprint of a PEM certificate.
fn thumbprint_of(pem: &str) -> String {
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    tessera_core::checks::cert_thumbprint(der.as_ref())
}

use crate::support::jwt_payload as payload;

fn refresh_with_cert(token: &str, thumbprint: &str) -> pb::RefreshRequest {
    pb::RefreshRequest {
        cert_thumbprint: thumbprint.into(),
        ..refresh_req(token)
    }
}

async fn tokens(c: &mut Client, req: pb::RefreshRequest) -> pb::TokenPair {
    c.refresh(req).await.unwrap().into_inner().tokens.unwrap()
}

// === defect 2: certificate-bound refresh ===

/// Over gRPC with `RefreshRequest.cert_thumbprint`: no thumbprint or
/// another is TOKEN_BINDING_MISMATCH and rotates nothing (the same refresh
/// token still works afterwards, with no reuse detection); the session's
/// own refreshes, again and again. A session also DPoP-bound, and custom
/// claims named `x` (the data field the Redis script reads), change none
/// of this.
async fn certificate_bound_sessions_refresh_only_with_their_certificate(backend: Backend) {
    let env = Env::new(backend).await;
    let s = env.server(&["--refresh-grace=0s"]).await;
    let mut c = s.client().await;
    let right = tessera_core::checks::cert_thumbprint(b"the client's certificate");
    let other = tessera_core::checks::cert_thumbprint(b"another certificate");
    let custom = tessera::authority::convert::json_to_struct(
        json!({"x": other, "c": {"x": other}}).as_object().unwrap(),
    );
    let issue = |subject: &str, custom: Option<prost_types::Struct>| pb::IssueRequest {
        cert_thumbprint: right.clone(),
        claims: custom,
        ..issue_request(subject)
    };
    for (subject, custom) in [("mtls-a", None), ("mtls-b", Some(custom.clone()))] {
        let pair = c
            .issue(issue(subject, custom))
            .await
            .unwrap()
            .into_inner()
            .tokens
            .unwrap();
        for presented in ["", other.as_str()] {
            expect_reason(
                c.refresh(refresh_with_cert(&pair.refresh_token, presented))
                    .await,
                "TOKEN_BINDING_MISMATCH",
            );
        }
        // Nothing rotated: the same token refreshes with the certificate,
        // then its successor does.
        let next = tokens(&mut c, refresh_with_cert(&pair.refresh_token, &right)).await;
        assert_eq!(
            payload(&next.access_token)["cnf"]["x5t#S256"],
            right.as_str()
        );
        expect_reason(
            c.refresh(refresh_req(&next.refresh_token)).await,
            "TOKEN_BINDING_MISMATCH",
        );
        tokens(&mut c, refresh_with_cert(&next.refresh_token, &right)).await;
    }

    // Bound to a certificate and a DPoP key: both are needed.
    let key = tessera_core::dpop::DpopKey::generate().unwrap();
    let pair = c
        .issue(pb::IssueRequest {
            dpop_jkt: key.jkt().into(),
            ..issue("mtls-dpop", None)
        })
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    let url = "https://auth.example.com/token";
    let proof = || {
        key.proof("POST", url, None, tessera::clock::now_ms() / 1000)
            .unwrap()
    };
    let with_proof = |cert: &str| pb::RefreshRequest {
        dpop_proof: proof(),
        http_method: "POST".into(),
        http_url: url.into(),
        ..refresh_with_cert(&pair.refresh_token, cert)
    };
    expect_reason(c.refresh(with_proof("")).await, "TOKEN_BINDING_MISMATCH");
    expect_reason(
        c.refresh(refresh_with_cert(&pair.refresh_token, &right))
            .await,
        "TOKEN_BINDING_MISMATCH",
    );
    tokens(&mut c, with_proof(&right)).await;

    // An unbound session with a custom claim `x` needs no certificate.
    let pair = c
        .issue(pb::IssueRequest {
            claims: Some(custom),
            ..issue_request("unbound-x")
        })
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    tokens(&mut c, refresh_req(&pair.refresh_token)).await;
    // Nothing above was taken for reuse: a reuse would have revoked its
    // session, and each subject still has its one session listed. (Not the
    // reuse counter of /metrics: the recorder is process-wide, so another
    // test's reuse would show there.)
    for subject in ["mtls-a", "mtls-b", "mtls-dpop", "unbound-x"] {
        let listed = c
            .list_sessions(pb::ListSessionsRequest {
                tenant: issue_request(subject).tenant,
                subject: subject.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.sessions.len(), 1, "{subject}: {listed:?}");
    }
}

on_both_stores!(
    certificate_bound_sessions_refresh_only_with_their_certificate,
    a_dpop_replay_entry_outlives_its_proofs_acceptance,
);

/// Redis's rotation reads the bound thumbprint from the end of the session
/// data (`rotate.lua`): the data keeps `x` last but for `k`.
#[test]
fn session_data_ends_with_the_certificate_binding() {
    use tessera::store::schema::encode_data;
    let mut data = tessera::store::SessionData {
        sid: "s".into(),
        tenant: "t".into(),
        subject: "u".into(),
        audience: vec!["api".into()],
        roles: vec!["r".into()],
        scopes: vec!["s".into()],
        custom: json!({"x": "custom"}).as_object().unwrap().clone(),
        fingerprint_hash: None,
        access_ttl: 60,
        idle_ms: 1,
        created_ms: 1,
        absolute_exp_ms: 2,
        device_name: "phone".into(),
        client_id: "app".into(),
        cert_thumbprint: Some("T5".into()),
        dpop_jkt: None,
    };
    assert!(encode_data(&data).unwrap().ends_with(r#""x":"T5"}"#));
    data.dpop_jkt = Some("JK".into());
    assert!(encode_data(&data)
        .unwrap()
        .ends_with(r#""x":"T5","k":"JK"}"#));
}

/// An mTLS gRPC caller's own certificate stands for the thumbprint it does
/// not name (as on Verify); on the token endpoint, the TLS client
/// certificate of the connection. Over TLS on both ports, on Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_bound_refresh_reads_the_connections_certificate() {
    let env = Env::new(Backend::Redis).await;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let (cert, key) = pki.leaf("localhost", &["localhost"], &[]);
    let app = pki.leaf("app", &[], &["spiffe://example.org/app"]);
    let stranger = pki.leaf("stranger", &[], &["spiffe://example.org/stranger"]);
    let port = free_port();
    let server = Server::spawn(&env.flags(&[
        "--refresh-grace=0s",
        &format!("--http-listen=127.0.0.1:{port}"),
        "--http-token-endpoint",
        &format!("--tls-cert={}", write(&dir, "cert.pem", &cert)),
        &format!("--tls-key={}", write(&dir, "key.pem", &key)),
        &format!("--tls-client-ca={}", write(&dir, "ca.pem", &pki.ca_pem)),
    ]))
    .await;
    let mut as_app = tls_client(&server, &pki, Some(&app)).await.unwrap();
    let mut as_stranger = tls_client(&server, &pki, Some(&stranger)).await.unwrap();
    let bound = || pb::IssueRequest {
        cert_thumbprint: thumbprint_of(&app.0),
        ..issue_request("mtls-peer")
    };
    let pair = as_app
        .issue(bound())
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    expect_reason(
        as_stranger.refresh(refresh_req(&pair.refresh_token)).await,
        "TOKEN_BINDING_MISMATCH",
    );
    let next = tokens(&mut as_app, refresh_req(&pair.refresh_token)).await;

    // The token endpoint: no certificate, another one, then the right one.
    let http: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let body = form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &next.refresh_token),
    ]);
    for identity in [None, Some((stranger.0.as_str(), stranger.1.as_str()))] {
        let answer = https_post(http, &pki.ca_pem, identity, "/oauth2/token", &body).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("\"invalid_grant\""), "{answer}");
        assert!(answer.contains("TOKEN_BINDING_MISMATCH"), "{answer}");
    }
    let answer = https_post(
        http,
        &pki.ca_pem,
        Some((app.0.as_str(), app.1.as_str())),
        "/oauth2/token",
        &body,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_, json) = answer.split_once("\r\n\r\n").unwrap();
    let refreshed: Value = serde_json::from_str(json).unwrap();
    // The successor still refreshes over gRPC with the app's certificate.
    tokens(
        &mut as_app,
        refresh_req(refreshed["refresh_token"].as_str().unwrap()),
    )
    .await;
}

// === defect 5: whitespace in role and scope names ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_scopes_with_whitespace_are_refused_at_issue() {
    let env = Env::new(Backend::Memory).await;
    let s = env.server(&[]).await;
    let mut c = s.client().await;
    for (roles, scopes, field) in [
        (vec!["team admin"], vec!["read"], "roles"),
        (vec!["team\u{00A0}admin"], vec!["read"], "roles"),
        (vec!["team\u{3000}admin"], vec!["read"], "roles"),
        (vec!["admin"], vec!["read write"], "scopes"),
        (vec!["admin"], vec!["read\u{2003}write"], "scopes"),
    ] {
        let req = pb::IssueRequest {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            scopes: scopes.iter().map(|r| r.to_string()).collect(),
            ..issue_request("spaces")
        };
        let status = expect_reason(c.issue(req).await, "FIELD_INVALID");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            violations(&status),
            vec![field.to_owned()],
            "{roles:?} {scopes:?}"
        );
    }
    // The same names as separate entries are fine.
    c.issue(pb::IssueRequest {
        roles: vec!["team".into(), "admin".into()],
        ..issue_request("spaces")
    })
    .await
    .unwrap();
}

// === defect 7: a DPoP replay entry lives as long as its proof is accepted ===

async fn a_dpop_replay_entry_outlives_its_proofs_acceptance(backend: Backend) {
    const URL: &str = "https://api.example.com/orders";
    let env = Env::new(backend).await;
    let s = env.server(&["--dpop-window=1s", "--leeway=0s"]).await;
    let mut c = s.client().await;
    let key = tessera_core::dpop::DpopKey::generate().unwrap();
    let pair = c
        .issue(pb::IssueRequest {
            dpop_jkt: key.jkt().into(),
            ..issue_request("replayer")
        })
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    // Early in a second, a proof dated the next one: accepted until the
    // end of the second after that (|now − iat| ≤ 1 s, in whole seconds).
    while tessera::clock::now_ms() % 1000 > 100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let iat = tessera::clock::now_ms() / 1000 + 1;
    let proof = key
        .proof("GET", URL, Some(&pair.access_token), iat)
        .unwrap();
    let request = pb::VerifyRequest {
        dpop_proof: proof,
        http_method: "GET".into(),
        http_url: URL.into(),
        ..verify_request(&pair.access_token)
    };
    c.verify(request.clone()).await.expect("first use");
    let first = Instant::now();
    let mut replayed_late = false;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        match c.verify(request.clone()).await {
            Ok(_) => panic!(
                "the proof was accepted again {:?} after its first use",
                first.elapsed()
            ),
            Err(status) => match reason(&status).as_str() {
                "DPOP_PROOF_INVALID" => break,
                "DPOP_PROOF_REPLAYED" => {
                    replayed_late |= first.elapsed() > Duration::from_millis(2100)
                }
                other => panic!("{other}: {status:?}"),
            },
        }
        assert!(first.elapsed() < Duration::from_secs(10), "still accepted");
    }
    assert!(replayed_late, "the proof's acceptance never outlived 2 s");
}
