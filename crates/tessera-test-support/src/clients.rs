//! Talking to a server: the gRPC [`Client`], request builders, the
//! details of a failed call, raw HTTP/1.1, and Prometheus samples.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tessera::pb;
use tessera::pb::token_authority_client::TokenAuthorityClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;

pub type Client = TokenAuthorityClient<Channel>;

/// A JWT's payload, unverified (tests reading what a token carries).
pub fn jwt_payload(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let part = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

/// The `ErrorInfo.reason` of a failed call.
pub fn reason(status: &tonic::Status) -> String {
    tessera::error::status_reason(status).unwrap_or_else(|| format!("<no reason: {status:?}>"))
}

/// Field names of a `BadRequest` detail.
pub fn violations(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

pub fn issue_request(subject: &str) -> pb::IssueRequest {
    pb::IssueRequest {
        subject: subject.into(),
        tenant: "acme".into(),
        audience: vec!["api".into()],
        roles: vec!["admin".into()],
        scopes: vec!["read".into(), "write".into()],
        ..Default::default()
    }
}

pub async fn issue(client: &mut Client, subject: &str) -> pb::TokenPair {
    client
        .issue(issue_request(subject))
        .await
        .expect("issue")
        .into_inner()
        .tokens
        .expect("tokens")
}

pub fn verify_request(token: &str) -> pb::VerifyRequest {
    pb::VerifyRequest {
        access_token: token.into(),
        ..Default::default()
    }
}

pub fn strong(token: &str) -> pb::VerifyRequest {
    pb::VerifyRequest {
        access_token: token.into(),
        consistency: pb::Consistency::Strong as i32,
        ..Default::default()
    }
}

/// Expect a call to fail with `reason`.
#[track_caller]
pub fn expect_reason<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
    want: &str,
) -> tonic::Status {
    match result {
        Ok(r) => panic!("expected {want}, got success: {r:?}"),
        Err(status) => {
            assert_eq!(reason(&status), want, "status: {status:?}");
            status
        }
    }
}

/// A minimal HTTP/1.1 GET over loopback: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = http_get_with_head(addr, path).await;
    (status, body)
}

/// `GET path` over HTTP/1.1: (status, response head, body).
pub async fn http_get_with_head(addr: SocketAddr, path: &str) -> (u16, String, String) {
    http_request(addr, "GET", path, &[], b"").await
}

/// One HTTP/1.1 request over loopback, with `headers` and `body` sent as
/// given (a `Content-Length` is added for a non-empty body): (status,
/// response head, body).
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    // The server may answer (413) and close before reading all of it.
    let _ = s.write_all(&request).await;
    let mut buf = Vec::new();
    // A reset after the answer (a body the server would not read) keeps
    // what arrived.
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("HTTP reply");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_owned(), body.to_owned())
}

/// Value of a Prometheus sample line `name{labels} value` (labels as written).
pub fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Value of the Prometheus sample `name{…}` whose labels include all of `labels`.
pub fn metric_with(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{') | Some(b' '))
        })
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// `Revoke` of `target`, without a reason.
pub fn revoke_target(target: pb::revoke_request::Target) -> pb::RevokeRequest {
    pb::RevokeRequest {
        target: Some(target),
        ..Default::default()
    }
}

/// `Revoke` of an access or refresh token.
pub fn revoke_token(token: &str) -> pb::RevokeRequest {
    revoke_target(pb::revoke_request::Target::Token(token.to_owned()))
}

/// `Revoke` of a session id.
pub fn revoke_session_id(sid: &str) -> pb::RevokeRequest {
    revoke_target(pb::revoke_request::Target::SessionId(sid.to_owned()))
}

/// `Revoke` of every session of a subject ("log out everywhere").
pub fn revoke_subject(tenant: &str, subject: &str) -> pb::RevokeRequest {
    revoke_target(pb::revoke_request::Target::Subject(pb::SubjectRef {
        tenant: tenant.to_owned(),
        subject: subject.to_owned(),
    }))
}

/// `Refresh` of a refresh token.
pub fn refresh_req(token: &str) -> pb::RefreshRequest {
    pb::RefreshRequest {
        refresh_token: token.to_owned(),
        ..Default::default()
    }
}

/// `Refresh` of a refresh token, presented from device `fingerprint`.
pub fn refresh_on(token: &str, fingerprint: &str) -> pb::RefreshRequest {
    pb::RefreshRequest {
        device_fingerprint: fingerprint.to_owned(),
        ..refresh_req(token)
    }
}

/// Refresh and return the new pair (panics on failure).
pub async fn refreshed(c: &mut Client, token: &str) -> pb::TokenPair {
    c.refresh(refresh_req(token))
        .await
        .expect("refresh")
        .into_inner()
        .tokens
        .expect("tokens")
}

/// Poll default-consistency Verify until it says revoked (the feed is
/// asynchronous across replicas), or panic after 5 s.
pub async fn wait_revoked(c: &mut Client, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match c.verify(verify_request(token)).await {
            Err(s) if reason(&s) == "TOKEN_REVOKED" => return,
            other => assert!(Instant::now() < deadline, "not revoked: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Issue one session for each subject and return the session ids, in order.
/// Revoking a session id that was never issued is a no-op without an event,
/// so tests that need revocation events revoke real sessions.
pub async fn session_ids(
    c: &mut Client,
    subjects: impl IntoIterator<Item = String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for subject in subjects {
        out.push(issue(c, &subject).await.session_id);
    }
    out
}
