//! The OAuth HTTP endpoints on `--http-listen`, over real HTTP/1.1 (and
//! HTTPS): introspection (RFC 7662), revocation (RFC 7009), the
//! refresh_token grant (RFC 6749 §6), discovery (RFC 8414), caller
//! authentication, CORS, and hostile input. A standard OAuth library drives
//! them end to end in `oauth_library_by_discovery_over_https`.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::Value;

use crate::hostile_cases::{cases, now};
use crate::support::*;
use crate::tls::{write, Pki};
use tessera::pb;

/// `application/x-www-form-urlencoded` of `pairs`.
pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub(crate) const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

/// An answer: status, head, body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) head: String,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

pub(crate) async fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    send(addr, "POST", path, headers, body.as_bytes()).await
}

async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let (status, head, body) = http_request(addr, method, path, headers, body).await;
    Answer { status, head, body }
}

pub(crate) fn basic(name: &str, key: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{name}:{key}"))
    )
}

/// A server with the OAuth port and two callers: `gateway` (Verify,
/// Revoke) and `login` (Issue, Refresh).
struct Setup {
    server: Server,
    http: SocketAddr,
    gateway: String,
    _dir: tempfile::TempDir,
}

async fn setup(env: &Env, extra: &[&str]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let callers = callers_flag(
        &dir,
        &[
            ("gateway", "gateway-key", &["Verify", "Revoke"]),
            ("login", "login-key", &["Issue", "Refresh", "ListSessions"]),
        ],
    );
    let mut flags = vec![
        "--http-listen=127.0.0.1:0",
        "--http-token-endpoint",
        callers.as_str(),
    ];
    flags.extend_from_slice(extra);
    let server = env.server(&flags).await;
    let http = server.http.expect("an OAuth port");
    Setup {
        server,
        http,
        gateway: basic("gateway", "gateway-key"),
        _dir: dir,
    }
}

impl Setup {
    async fn issue(&self, req: pb::IssueRequest) -> pb::TokenPair {
        let mut r = tonic::Request::new(req);
        r.metadata_mut()
            .insert("x-tessera-key", "login-key".parse().unwrap());
        self.server
            .client()
            .await
            .issue(r)
            .await
            .unwrap()
            .into_inner()
            .tokens
            .unwrap()
    }

    async fn introspect(&self, token: &str) -> Answer {
        post(
            self.http,
            "/oauth2/introspect",
            &[FORM, ("Authorization", &self.gateway)],
            &form(&[("token", token)]),
        )
        .await
    }

    /// `grant_type=refresh_token` with `refresh_token`.
    async fn refresh(&self, refresh_token: &str, headers: &[(&str, &str)]) -> Answer {
        self.token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
            headers,
        )
        .await
    }

    async fn token(&self, pairs: &[(&str, &str)], headers: &[(&str, &str)]) -> Answer {
        let mut h = vec![FORM];
        h.extend_from_slice(headers);
        post(self.http, "/oauth2/token", &h, &form(pairs)).await
    }
}

fn inactive(a: &Answer) {
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body, r#"{"active":false}"#, "nothing but active:false");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_is_active_only_for_live_tokens() {
    let env = Env::new(Backend::Memory).await;
    let s = setup(&env, &[]).await;
    let pair = s.issue(issue_request("alice")).await;

    let a = s.introspect(&pair.access_token).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("cache-control").as_deref(), Some("no-store"));
    let j = a.json();
    assert_eq!(j["active"], true);
    assert_eq!(j["sub"], "alice");
    assert_eq!(j["tid"], "acme");
    assert_eq!(j["sid"], pair.session_id.as_str());
    assert_eq!(j["iss"], "tessera-test");
    assert_eq!(j["token_type"], "Bearer");
    assert_eq!(j["roles"], serde_json::json!(["admin"]));
    assert!(j["exp"].as_i64().unwrap() > j["iat"].as_i64().unwrap());
    for member in ["aud", "nbf", "jti", "scope"] {
        assert!(!j[member].is_null(), "{member} missing: {j}");
    }
    assert!(j.get("cnf").is_none(), "an unbound token has no cnf");

    // A refresh token is never active here.
    inactive(&s.introspect(&pair.refresh_token).await);
    // Nor is any hostile token (each twice: refusals are not cached).
    let key = env.key.keyset();
    let pem = std::fs::read_to_string(&env.key.path).unwrap();
    let all = cases(&key, &pem, "http://127.0.0.1:9/jwks.json");
    for case in all.iter().chain(&all) {
        let a = s.introspect(&case.token).await;
        assert_eq!(
            a.body, r#"{"active":false}"#,
            "{} ({})",
            case.name, case.source
        );
    }
    // Empty and oversized tokens: inactive, not errors.
    inactive(&s.introspect("").await);
    inactive(&s.introspect(&"a.b.c".repeat(2000)).await);

    // Revoked through the HTTP revocation endpoint.
    let r = post(
        s.http,
        "/oauth2/revoke",
        &[FORM, ("Authorization", &s.gateway)],
        &form(&[
            ("token", &pair.access_token),
            ("token_type_hint", "access_token"),
        ]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    inactive(&s.introspect(&pair.access_token).await);

    // Revoking a refresh token ends its session: its next access token is
    // refused too; revoking garbage is still 200 (RFC 7009 §2.2).
    let pair = s.issue(issue_request("bob")).await;
    for token in [pair.refresh_token.as_str(), "garbage", ""] {
        let r = post(
            s.http,
            "/oauth2/revoke",
            &[FORM, ("Authorization", &s.gateway)],
            &form(&[("token", token)]),
        )
        .await;
        assert_eq!(r.status, 200, "{token}: {}", r.body);
    }
    let refused = s.refresh(&pair.refresh_token, &[]).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json()["error"], "invalid_grant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_reports_bindings_for_the_resource_server() {
    let env = Env::new(Backend::Memory).await;
    let s = setup(&env, &[]).await;
    let dpop = tessera_core::dpop::DpopKey::generate().unwrap();
    let mut req = issue_request("dpop-user");
    req.dpop_jkt = dpop.jkt().to_owned();
    let pair = s.issue(req).await;
    let j = s.introspect(&pair.access_token).await.json();
    assert_eq!(j["active"], true);
    // RFC 9449 §6.2: the type and the key's thumbprint; the proof is the
    // resource server's to check.
    assert_eq!(j["token_type"], "DPoP");
    assert_eq!(j["cnf"]["jkt"], dpop.jkt());

    let thumbprint = tessera_core::checks::cert_thumbprint(b"some certificate DER");
    let mut req = issue_request("mtls-user");
    req.cert_thumbprint = thumbprint.clone();
    let pair = s.issue(req).await;
    let j = s.introspect(&pair.access_token).await.json();
    assert_eq!(j["token_type"], "Bearer");
    assert_eq!(j["cnf"]["x5t#S256"], thumbprint.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_authenticate_except_on_the_token_endpoint_and_discovery() {
    let env = Env::new(Backend::Memory).await;
    let s = setup(&env, &[]).await;
    let pair = s.issue(issue_request("carol")).await;
    let body = form(&[("token", &pair.access_token)]);
    let login = basic("login", "login-key");
    let wrong_name = basic("someone", "gateway-key");
    let wrong_key = basic("gateway", "not-the-key");
    for path in ["/oauth2/introspect", "/oauth2/revoke"] {
        // No credentials, a wrong key, a name that is not the key's, a
        // broken Basic header: 401 with a Basic challenge.
        for auth in [
            None,
            Some(wrong_key.as_str()),
            Some(wrong_name.as_str()),
            Some("Basic %%%"),
        ] {
            let mut h = vec![FORM];
            if let Some(a) = auth {
                h.push(("Authorization", a));
            }
            let a = post(s.http, path, &h, &body).await;
            assert_eq!(a.status, 401, "{path} {auth:?}: {}", a.body);
            assert_eq!(a.json()["error"], "invalid_client");
            assert_eq!(
                a.header("www-authenticate").as_deref(),
                Some("Basic realm=\"tessera\"")
            );
        }
        // Known, but not allowed Verify/Revoke: 403.
        let a = post(s.http, path, &[FORM, ("Authorization", &login)], &body).await;
        assert_eq!(a.status, 403, "{path}: {}", a.body);
        assert_eq!(a.json()["error"], "unauthorized_client");
    }
    // The API key header works like Basic.
    let a = post(
        s.http,
        "/oauth2/introspect",
        &[FORM, ("x-tessera-key", "gateway-key")],
        &body,
    )
    .await;
    assert_eq!(a.json()["active"], true, "{}", a.body);
    // The token was never revoked by the refused calls above.
    let a = s.introspect(&pair.access_token).await;
    assert_eq!(a.json()["active"], true);

    // No credentials needed: the token endpoint and discovery.
    let a = s.refresh(&pair.refresh_token, &[]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/.well-known/jwks.json",
    ] {
        let (status, _) = http_get(s.http, path).await;
        assert_eq!(status, 200, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_rotates_with_rfc6749_answers() {
    let env = Env::new(Backend::Memory).await;
    let s = setup(
        &env,
        &[
            "--refresh-grace=0s",
            "--http-cors-origin=https://app.example.com",
        ],
    )
    .await;
    let pair = s.issue(issue_request("dave")).await;
    let origin = ("Origin", "https://app.example.com");
    let a = s
        .refresh(
            &pair.refresh_token,
            &[origin, ("User-Agent", "Mozilla/5.0 (test)")],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(a.header("pragma").as_deref(), Some("no-cache"));
    assert_eq!(
        a.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    let j = a.json();
    assert_eq!(j["token_type"], "Bearer");
    assert_eq!(j["scope"], "read write");
    assert!(j["expires_in"].as_i64().unwrap() > 0);
    let next = j["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(next, pair.refresh_token);
    let access = j["access_token"].as_str().unwrap();
    assert_eq!(s.introspect(access).await.json()["active"], true);
    // The session records the browser's agent and address.
    let mut list = tonic::Request::new(pb::ListSessionsRequest {
        tenant: "acme".into(),
        subject: "dave".into(),
        ..Default::default()
    });
    list.metadata_mut()
        .insert("x-tessera-key", "login-key".parse().unwrap());
    let sessions = s
        .server
        .client()
        .await
        .list_sessions(list)
        .await
        .unwrap()
        .into_inner()
        .sessions;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].user_agent, "Mozilla/5.0 (test)");
    assert_eq!(sessions[0].ip_address, "127.0.0.1");

    // The rotated-away token again (no grace): reuse, the family is revoked.
    let a = s.refresh(&pair.refresh_token, &[]).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["error"], "invalid_grant");
    assert_eq!(a.json()["error_description"], "REFRESH_TOKEN_REUSED");
    inactive(&s.introspect(access).await);
    let a = s.refresh(&next, &[]).await;
    assert_eq!(a.json()["error"], "invalid_grant", "the successor died too");

    // Unknown and tampered tokens; other grants; missing parameters.
    let tampered = format!("{}x", &pair.refresh_token[..pair.refresh_token.len() - 1]);
    for (pairs, status, error) in [
        (
            vec![("grant_type", "refresh_token"), ("refresh_token", "nope")],
            400,
            "invalid_grant",
        ),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", tampered.as_str()),
            ],
            400,
            "invalid_grant",
        ),
        (
            vec![("grant_type", "password"), ("username", "u")],
            400,
            "unsupported_grant_type",
        ),
        (vec![("refresh_token", "x")], 400, "invalid_request"),
        (
            vec![("grant_type", "refresh_token")],
            400,
            "invalid_request",
        ),
    ] {
        let a = s.token(&pairs, &[]).await;
        assert_eq!(a.status, status, "{pairs:?}: {}", a.body);
        assert_eq!(a.json()["error"], error, "{pairs:?}");
        assert_eq!(a.header("cache-control").as_deref(), Some("no-store"));
    }

    // CORS: a preflight from the allowed origin, and from another.
    let pre = send(
        s.http,
        "OPTIONS",
        "/oauth2/token",
        &[
            origin,
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type, dpop"),
        ],
        b"",
    )
    .await;
    assert_eq!(pre.status, 204);
    assert_eq!(
        pre.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert!(pre
        .header("access-control-allow-headers")
        .unwrap()
        .contains("dpop"));
    let evil = ("Origin", "https://evil.example");
    let pre = send(s.http, "OPTIONS", "/oauth2/token", &[evil], b"").await;
    assert_eq!(pre.status, 403);
    assert!(pre.header("access-control-allow-origin").is_none());
    let a = s.refresh("x", &[evil]).await;
    assert!(a.header("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_keeps_dpop_bindings_and_budgets() {
    let env = Env::new(Backend::Memory).await;
    let s = setup(&env, &["--refresh-rate=1:1"]).await;
    let key = tessera_core::dpop::DpopKey::generate().unwrap();
    let mut req = issue_request("erin");
    req.dpop_jkt = key.jkt().to_owned();
    let pair = s.issue(req).await;
    let url = format!("http://{}/oauth2/token", s.http);
    // No proof, and another key's proof: refused, nothing rotated.
    let other = tessera_core::dpop::DpopKey::generate().unwrap();
    let foreign = other.proof("POST", &url, None, now()).unwrap();
    for headers in [vec![], vec![("DPoP", foreign.as_str())]] {
        let a = s.refresh(&pair.refresh_token, &headers).await;
        assert_eq!(a.status, 400, "{}", a.body);
        assert_eq!(a.json()["error"], "invalid_grant");
        assert_eq!(a.json()["error_description"], "TOKEN_BINDING_MISMATCH");
    }
    // A proof for another URL: invalid_dpop_proof (RFC 9449 §5).
    let elsewhere = key
        .proof("POST", "https://other.example/oauth2/token", None, now())
        .unwrap();
    let a = s
        .refresh(&pair.refresh_token, &[("DPoP", &elsewhere)])
        .await;
    assert_eq!(a.json()["error"], "invalid_dpop_proof", "{}", a.body);
    // The session's key: rotated, and the type says DPoP.
    let proof = key.proof("POST", &url, None, now()).unwrap();
    let a = s.refresh(&pair.refresh_token, &[("DPoP", &proof)]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["token_type"], "DPoP");
    // The same proof again: replayed.
    let next = a.json()["refresh_token"].as_str().unwrap().to_owned();
    let a = s.refresh(&next, &[("DPoP", &proof)]).await;
    assert_eq!(a.json()["error"], "invalid_dpop_proof", "{}", a.body);
    assert_eq!(a.json()["error_description"], "DPOP_PROOF_REPLAYED");
    // The per-subject budget (1 per second, burst 1): calls in a row meet
    // a 429 with Retry-After (within 20 calls however slow the machine).
    let mut current = next;
    let mut limited = None;
    for _ in 0..20 {
        let fresh = key.proof("POST", &url, None, now()).unwrap();
        let a = s.refresh(&current, &[("DPoP", &fresh)]).await;
        if a.status == 429 {
            limited = Some(a);
            break;
        }
        assert_eq!(a.status, 200, "{}", a.body);
        current = a.json()["refresh_token"].as_str().unwrap().to_owned();
    }
    let a = limited.expect("the refresh budget never refused");
    assert_eq!(a.json()["error"], "temporarily_unavailable");
    assert!(a.header("retry-after").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_a_4xx_never_a_5xx() {
    let env = Env::new(Backend::Memory).await;
    let s = setup(&env, &[]).await;
    let pair = s.issue(issue_request("frank")).await;
    let auth = ("Authorization", s.gateway.as_str());
    let big = format!("token={}", "a".repeat(20 * 1024));
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16);
    let cases: Vec<Case> = vec![
        (
            "oversized",
            "/oauth2/introspect",
            vec![FORM, auth],
            big.clone().into_bytes(),
            413,
        ),
        (
            "oversized token endpoint",
            "/oauth2/token",
            vec![FORM],
            big.into_bytes(),
            413,
        ),
        (
            "JSON body",
            "/oauth2/introspect",
            vec![("Content-Type", "application/json"), auth],
            b"{\"token\":\"x\"}".to_vec(),
            415,
        ),
        (
            "no content type",
            "/oauth2/revoke",
            vec![auth],
            b"token=x".to_vec(),
            415,
        ),
        (
            "latin-1 charset",
            "/oauth2/token",
            vec![(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=iso-8859-1",
            )],
            b"grant_type=refresh_token&refresh_token=x".to_vec(),
            415,
        ),
        (
            "duplicate token",
            "/oauth2/introspect",
            vec![FORM, auth],
            format!("token={}&token=x", pair.access_token).into_bytes(),
            400,
        ),
        (
            "duplicate grant_type",
            "/oauth2/token",
            vec![FORM],
            b"grant_type=refresh_token&grant_type=refresh_token&refresh_token=x".to_vec(),
            400,
        ),
        (
            "raw non-UTF-8",
            "/oauth2/revoke",
            vec![FORM, auth],
            b"token=\xff\xfe".to_vec(),
            400,
        ),
        (
            "escaped non-UTF-8",
            "/oauth2/introspect",
            vec![FORM, auth],
            b"token=%C3%28".to_vec(),
            400,
        ),
        (
            "broken escape",
            "/oauth2/token",
            vec![FORM],
            b"grant_type=%G1".to_vec(),
            400,
        ),
        (
            "no token",
            "/oauth2/introspect",
            vec![FORM, auth],
            b"token_type_hint=x".to_vec(),
            400,
        ),
        (
            "no token to revoke",
            "/oauth2/revoke",
            vec![FORM, auth],
            b"".to_vec(),
            400,
        ),
    ];
    for (name, path, headers, body, want) in cases {
        let a = send(s.http, "POST", path, &headers, &body).await;
        assert_eq!(a.status, want, "{name}: {}", a.body);
        assert_eq!(a.json()["error"], "invalid_request", "{name}");
    }
    for (method, path, want) in [
        ("GET", "/oauth2/introspect", 405),
        ("PUT", "/oauth2/token", 405),
        ("POST", "/.well-known/openid-configuration", 405),
        ("GET", "/oauth2/authorize", 404),
        ("GET", "/../../etc/passwd", 404),
    ] {
        let a = send(s.http, method, path, &[], b"").await;
        assert_eq!(a.status, want, "{method} {path}");
    }
    // A request head that is not HTTP: the connection is refused, the
    // server goes on.
    let (status, _, _) = http_request(s.http, "BR\0KEN", "/", &[], b"").await;
    assert!(status == 0 || (400..500).contains(&status), "{status}");
    // Still serving, and nothing above revoked the token.
    assert_eq!(
        s.introspect(&pair.access_token).await.json()["active"],
        true
    );
    // Counted by route and status; unknown paths are not labelled.
    let (_, metrics) = s.server.admin_get("/metrics").await;
    let count = |path: &str, status: &str| {
        metric_with(
            &metrics,
            "tessera_http_requests_total",
            &[("path", path), ("status", status)],
        )
        .unwrap_or(0.0)
    };
    assert!(count("/oauth2/introspect", "413") >= 1.0, "{metrics}");
    assert!(count("/oauth2/token", "400") >= 2.0, "{metrics}");
    assert!(count("/oauth2/introspect", "200") >= 1.0, "{metrics}");
    assert!(!metrics.contains("etc/passwd"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_names_the_issuer_and_the_endpoints() {
    let env = Env::new(Backend::Memory).await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&[
        "--issuer=https://auth.example.com".to_owned(),
        format!("--signing-key={}", env.key.path.display()),
        "--http-listen=127.0.0.1:0".to_owned(),
        "--http-token-endpoint".to_owned(),
    ])
    .await;
    let http = server.http.unwrap();
    let (status, body) = http_get(http, "/.well-known/oauth-authorization-server").await;
    assert_eq!(status, 200);
    let m: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(m["issuer"], "https://auth.example.com");
    for (member, path) in [
        ("token_endpoint", "/oauth2/token"),
        ("introspection_endpoint", "/oauth2/introspect"),
        ("revocation_endpoint", "/oauth2/revoke"),
        ("jwks_uri", "/.well-known/jwks.json"),
    ] {
        assert_eq!(m[member], format!("https://auth.example.com{path}"));
    }
    assert_eq!(
        m["grant_types_supported"],
        serde_json::json!([
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ])
    );
    assert_eq!(
        m["introspection_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic"])
    );
    let (_, oidc) = http_get(http, "/.well-known/openid-configuration").await;
    assert_eq!(oidc, body, "both documents are the same");
    // Tokens carry the same issuer, and the JWK set is the admin port's.
    let pair = issue(&mut server.client().await, "gina").await;
    let j: Value = {
        let a = post(
            http,
            "/oauth2/introspect",
            &[FORM],
            &form(&[("token", &pair.access_token)]),
        )
        .await;
        a.json()
    };
    assert_eq!(j["iss"], "https://auth.example.com");
    assert_eq!(
        http_get(http, "/.well-known/jwks.json").await.1,
        server.admin_get("/.well-known/jwks.json").await.1
    );
    server.stop().await.unwrap();

    // --public-url moves the endpoints, not the issuer.
    let server = Server::start(&[
        "--issuer=https://auth.example.com".to_owned(),
        "--public-url=https://edge.example.com/tessera/".to_owned(),
        "--http-listen=127.0.0.1:0".to_owned(),
        "--http-token-endpoint".to_owned(),
    ])
    .await;
    let (_, body) = http_get(
        server.http.unwrap(),
        "/.well-known/oauth-authorization-server",
    )
    .await;
    let m: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(m["issuer"], "https://auth.example.com");
    assert_eq!(
        m["token_endpoint"],
        "https://edge.example.com/tessera/oauth2/token"
    );
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_answer_is_503_never_active() {
    let mut env = Env::new(Backend::Redis).await;
    let s = setup(&env, &[]).await;
    let pair = s.issue(issue_request("hank")).await;
    env.redis.as_mut().unwrap().kill();
    let a = s.refresh(&pair.refresh_token, &[]).await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(a.json()["error"], "temporarily_unavailable");
    // Once the replica knows its revocation cache is stale, introspection
    // needs the store: 503, not an answer it cannot stand behind.
    let mut last = 0;
    for _ in 0..100 {
        let a = s.introspect(&pair.access_token).await;
        last = a.status;
        if a.status == 503 {
            assert_eq!(a.json()["error"], "temporarily_unavailable");
            break;
        }
        assert_eq!(a.status, 200, "{}", a.body);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(last, 503, "introspection never noticed the store was gone");
}

/// The HTTPS port, a caller proved by its client certificate, and a
/// standard OAuth library (oauth4webapi, Node) that finds everything by
/// discovery: refresh, introspect, revoke, introspect again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_library_by_discovery_over_https() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("examples/node/node_modules/oauth4webapi")
            .exists(),
        "node modules missing: run scripts/test (npm ci in examples/node)"
    );
    let env = Env::new(Backend::Memory).await;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let (cert, key) = pki.leaf("localhost", &["localhost"], &[]);
    let (client_cert, client_key) = pki.leaf("edge-proxy", &[], &["spiffe://example.org/edge"]);
    let ca = write(&dir, "ca.pem", &pki.ca_pem);
    let callers = dir.path().join("callers.toml");
    std::fs::write(
        &callers,
        format!(
            "[[caller]]\nname = \"gateway\"\napi_key_sha256 = \"{}\"\nallow = [\"Verify\", \"Revoke\"]\n\n\
             [[caller]]\nname = \"edge\"\ntls_uri = \"spiffe://example.org/edge\"\nallow = [\"Verify\", \"Issue\"]\n",
            tessera::transport::callers::api_key_sha256("gateway-secret")
        ),
    )
    .unwrap();
    let port = free_port();
    let issuer = format!("https://127.0.0.1:{port}");
    let server = Server::spawn(&env.flags(&[
        &format!("--issuer={issuer}"),
        &format!("--http-listen=127.0.0.1:{port}"),
        "--http-token-endpoint",
        &format!("--tls-cert={}", write(&dir, "cert.pem", &cert)),
        &format!("--tls-key={}", write(&dir, "key.pem", &key)),
        &format!("--tls-client-ca={ca}"),
        &format!("--callers={}", callers.display()),
    ]))
    .await;
    let mut c = crate::tls::tls_client(
        &server,
        &pki,
        Some(&(client_cert.clone(), client_key.clone())),
    )
    .await
    .unwrap();
    let pair = issue(&mut c, "ivy").await;

    // Over HTTPS: a client certificate is a caller's credential; without
    // one (and without a key) introspection is refused.
    let http: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let body = form(&[("token", &pair.access_token)]);
    let with_cert = https_post(
        http,
        &pki.ca_pem,
        Some((&client_cert, &client_key)),
        "/oauth2/introspect",
        &body,
    )
    .await;
    assert!(with_cert.starts_with("HTTP/1.1 200"), "{with_cert}");
    assert!(with_cert.contains("\"active\":true"), "{with_cert}");
    let without = https_post(http, &pki.ca_pem, None, "/oauth2/introspect", &body).await;
    assert!(without.starts_with("HTTP/1.1 401"), "{without}");

    let steps = node_steps(
        "oauth.mjs",
        &[&issuer, &pair.refresh_token, "gateway", "gateway-secret"],
        &[("NODE_EXTRA_CA_CERTS", &ca)],
    );
    let step = |name: &str| steps.get(name);
    assert_eq!(step("discovery")["issuer"], issuer.as_str());
    assert_eq!(
        step("discovery")["token_endpoint"],
        format!("{issuer}/oauth2/token")
    );
    assert_eq!(step("refresh")["token_type"], "bearer");
    assert_eq!(step("refresh")["rotated"], true);
    assert_eq!(step("introspect")["active"], true);
    assert_eq!(step("introspect")["sub"], "ivy");
    assert_eq!(step("introspect")["iss"], issuer.as_str());
    assert_eq!(step("revoke")["ok"], true);
    assert_eq!(step("introspect_revoked")["active"], false);
    assert_eq!(
        step("introspect_revoked")["keys"],
        serde_json::json!(["active"])
    );
}

/// One HTTPS POST of a form, trusting `ca_pem`, with an optional client
/// certificate: the raw answer.
pub(crate) async fn https_post(
    addr: SocketAddr,
    ca_pem: &str,
    identity: Option<(&str, &str)>,
    path: &str,
    body: &str,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// A real nginx, configured with `deploy/nginx/` as shipped (only the
/// ports are this test's), in front of a backend that echoes the identity
/// headers it was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_checks_tokens_with_the_shipped_config() {
    let nginx = std::path::Path::new("/usr/sbin/nginx");
    let njs = std::path::Path::new("/usr/lib/nginx/modules/ngx_http_js_module.so");
    assert!(
        nginx.exists() && njs.exists(),
        "nginx with njs missing: run scripts/test (apt-get install nginx libnginx-mod-http-js)"
    );
    let env = Env::new(Backend::Memory).await;
    let dir = tempfile::tempdir().unwrap();
    let callers = callers_flag(
        &dir,
        &[
            ("gateway", "change-me", &["Verify"]),
            ("login", "login-key", &["Issue", "Revoke"]),
        ],
    );
    let server = env
        .server(&["--http-listen=127.0.0.1:0", callers.as_str()])
        .await;
    let tessera_http = server.http.unwrap();
    let (front, back) = (free_port(), free_port());
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx");
    let shipped = std::fs::read_to_string(deploy.join("tessera.conf")).unwrap();
    let site = shipped
        .replace("server 127.0.0.1:8443;", &format!("server {tessera_http};"))
        .replace(
            "server 127.0.0.1:8080;",
            &format!("server 127.0.0.1:{back};"),
        )
        .replace("listen 8000;", &format!("listen 127.0.0.1:{front};"));
    assert_ne!(site, shipped);
    let d = dir.path().display();
    let conf = format!(
        "load_module {};\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\ndaemon off;\nmaster_process off;\nevents {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         js_path \"{}\";\n  include {d}/tessera.conf;\n\
         server {{ listen 127.0.0.1:{back}; location / {{ return 200 \"subject=$http_x_tessera_subject tenant=$http_x_tessera_tenant scopes=$http_x_tessera_scopes\"; }} }}\n}}\n",
        njs.display(),
        deploy.display()
    );
    std::fs::write(dir.path().join("tessera.conf"), site).unwrap();
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let mut child = tokio::process::Command::new(nginx)
        .args(["-e", &format!("{d}/error.log"), "-p", &d.to_string(), "-c"])
        .arg(dir.path().join("nginx.conf"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let front: SocketAddr = format!("127.0.0.1:{front}").parse().unwrap();
    let log = || std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
    let mut up = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(front).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(up, "nginx did not start: {}", log());

    let mut c = server.client().await;
    let issue = |subject: &str| {
        let mut r = tonic::Request::new(issue_request(subject));
        r.metadata_mut()
            .insert("x-tessera-key", "login-key".parse().unwrap());
        r
    };
    let pair = c
        .issue(issue("alice"))
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    let other = c
        .issue(issue("bob"))
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    let bearer = format!("Bearer {}", pair.access_token);
    let get = |headers: Vec<(&'static str, String)>| async move {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        send(front, "GET", "/api/orders", &h, b"").await
    };
    // An active token: through, with the identity headers set by nginx
    // (the client's own X-Tessera-Subject is replaced).
    let a = get(vec![
        ("Authorization", bearer.clone()),
        ("X-Tessera-Subject", "mallory".into()),
    ])
    .await;
    assert_eq!(a.status, 200, "{} {}", a.body, log());
    assert_eq!(a.body, "subject=alice tenant=acme scopes=read write");
    // No token, another scheme, garbage: 401 with a challenge.
    for headers in [
        vec![],
        vec![("Authorization", "Basic Zm9vOmJhcg==".to_owned())],
        vec![("Authorization", "Bearer not.a.token".to_owned())],
    ] {
        let a = get(headers.clone()).await;
        assert_eq!(a.status, 401, "{headers:?}: {}", a.body);
        assert!(a.header("www-authenticate").unwrap().starts_with("Bearer"));
    }
    // Revoked: 401 once the revocation is in.
    let mut revoke = tonic::Request::new(revoke_token(&pair.access_token));
    revoke
        .metadata_mut()
        .insert("x-tessera-key", "login-key".parse().unwrap());
    c.revoke(revoke).await.unwrap();
    let a = get(vec![("Authorization", bearer.clone())]).await;
    assert_eq!(a.status, 401, "{}", a.body);
    // Tessera gone: never an allow.
    server.stop().await.unwrap();
    let a = get(vec![(
        "Authorization",
        format!("Bearer {}", other.access_token),
    )])
    .await;
    assert_eq!(a.status, 500, "{}", a.body);
    let _ = child.kill().await;
}
