//! OpenTelemetry traces (`--otlp-endpoint`), exported to a real OTLP
//! collector that the test runs: a tonic server of opentelemetry-proto's
//! `TraceService` on a loopback port, one per Tessera process (each
//! process has its own tracer provider, so each sink sees one replica).
//!
//! The servers are `tessera serve` processes, not in-process servers: the
//! OTLP layer belongs to the process's tracing subscriber, which `main`
//! installs. Batches are exported every 100 ms (`OTEL_BSP_SCHEDULE_DELAY`);
//! the tests wait for the spans they need, never for a time.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;

use crate::support::*;
use tessera::pb;

// === the collector ===

/// The spans one Tessera process exported.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Sink {
    /// A collector on a free loopback port, and its endpoint URL.
    async fn start() -> (Sink, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the collector");
        let addr = listener.local_addr().expect("addr");
        let sink = Sink::default();
        let service = TraceServiceServer::new(sink.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        (sink, format!("http://{addr}"))
    }

    fn spans(&self) -> Vec<Span> {
        self.0.lock().unwrap().clone()
    }

    /// Wait (30 s at most: CI is a loaded machine) for a span that
    /// `matches`, and answer it.
    async fn wait_for(&self, what: &str, matches: impl Fn(&Span) -> bool) -> Span {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(span) = self.spans().into_iter().find(|s| matches(s)) {
                return span;
            }
            assert!(
                Instant::now() < deadline,
                "no span {what} was exported; got: {:#?}",
                self.spans()
                    .iter()
                    .map(|s| (&s.name, hex::encode(&s.trace_id)))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A span's attribute, as text.
fn attr(span: &Span, key: &str) -> Option<String> {
    let value = span.attributes.iter().find(|kv| kv.key == key)?;
    Some(match value.value.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => s.clone(),
        Value::IntValue(i) => i.to_string(),
        Value::BoolValue(b) => b.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    })
}

/// A W3C trace context of a new sampled trace: (traceparent, trace id, the
/// caller's span id), all hex.
fn new_trace(sampled: bool) -> (String, String, String) {
    let trace = hex::encode(rand_bytes::<16>());
    let span = hex::encode(rand_bytes::<8>());
    let flags = if sampled { "01" } else { "00" };
    (format!("00-{trace}-{span}-{flags}"), trace, span)
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    use rand::RngCore;
    let mut b = [0u8; N];
    rand::thread_rng().fill_bytes(&mut b);
    // An all-zero id is invalid (W3C Trace Context §3.2.2.3).
    b[0] |= 1;
    b
}

/// A gRPC request carrying `traceparent`.
fn traced<T>(message: T, traceparent: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("traceparent", traceparent.parse().expect("ascii"));
    r
}

/// A `tessera serve` process exporting to `endpoint`, sampling no trace of
/// its own (`--trace-sample-ratio=0`): only the calls' own decisions and
/// linked revocations are recorded.
async fn traced_process(endpoint: &str, flags: Vec<String>) -> Process {
    let mut flags = flags;
    flags.push(format!("--otlp-endpoint={endpoint}"));
    flags.push("--trace-sample-ratio=0".into());
    Process::start_with_env(&[("OTEL_BSP_SCHEDULE_DELAY", "100".into())], &flags, "info").await
}

/// The span of RPC `rpc` in `trace` and its child span of store operation
/// `op`, which on Redis names its script and partition.
async fn rpc_with_store_call(
    sink: &Sink,
    trace: &str,
    rpc: &str,
    op: &'static str,
    script: Option<&str>,
) -> (Span, Span) {
    let name = format!("tessera.v1.TokenAuthority/{rpc}");
    let call = sink
        .wait_for(rpc, |s| s.name == name && hex::encode(&s.trace_id) == trace)
        .await;
    assert_eq!(attr(&call, "rpc.method").as_deref(), Some(rpc));
    let store = sink.wait_for(op, child_of(&call, op)).await;
    assert_eq!(attr(&store, "tessera.store.script").as_deref(), script);
    let partition = attr(&store, "tessera.store.partition");
    if script.is_some() {
        let partition: u32 = partition.expect("a partition").parse().expect("a number");
        assert!(partition < 64, "{partition}");
    }
    (call, store)
}

fn by_name_in<'a>(trace: &'a str, name: &'static str) -> impl Fn(&Span) -> bool + 'a {
    move |s: &Span| s.name == name && hex::encode(&s.trace_id) == trace
}

fn child_of<'a>(parent: &'a Span, name: &'static str) -> impl Fn(&Span) -> bool + 'a {
    move |s: &Span| {
        s.name == name && s.trace_id == parent.trace_id && s.parent_span_id == parent.span_id
    }
}

// === the tests ===

/// A call with a sampled `traceparent` is traced under that trace, with the
/// caller's span as parent, the store's calls (script, partition) and the
/// signature as children, the refusal's reason on the span; the OAuth HTTP
/// port and Envoy's `Check` take the `traceparent` of their HTTP headers;
/// an unsampled one records nothing; and no span holds a token, a refresh
/// secret, a fingerprint or a thumbprint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traced_call_has_store_and_signing_spans_and_no_secret() {
    let redis = RedisServer::start().await;
    let key = TestKey::new();
    let (sink, endpoint) = Sink::start().await;
    let http_port = free_port();
    let flags = redis_flags(
        &redis.url(),
        &key,
        &[&format!("--http-listen=127.0.0.1:{http_port}")],
    );
    let process = traced_process(&endpoint, flags).await;
    let mut c = process.server().client().await;

    // Issue, bound to a device.
    let fingerprint = "device-fingerprint-do-not-trace";
    let (tp, trace, caller_span) = new_trace(true);
    let pair = c
        .issue(traced(
            pb::IssueRequest {
                device_fingerprint: fingerprint.into(),
                ..issue_request("alice")
            },
            &tp,
        ))
        .await
        .expect("issue")
        .into_inner()
        .tokens
        .expect("tokens");
    let (issue, create) =
        rpc_with_store_call(&sink, &trace, "Issue", "create_session", Some("create.lua")).await;
    assert_eq!(hex::encode(&issue.parent_span_id), caller_span);
    assert_eq!(attr(&issue, "rpc.grpc.status_code").as_deref(), Some("0"));
    assert_eq!(attr(&create, "db.system").as_deref(), Some("redis"));
    let sign = sink
        .wait_for("sign under Issue", child_of(&issue, "sign"))
        .await;
    assert_eq!(attr(&sign, "jwt.alg").as_deref(), Some("EdDSA"));

    // A strong Verify reads the store; a refresh rotates in it.
    let (tp, trace, _) = new_trace(true);
    c.verify(traced(
        pb::VerifyRequest {
            device_fingerprint: fingerprint.into(),
            ..strong(&pair.access_token)
        },
        &tp,
    ))
    .await
    .expect("verify");
    rpc_with_store_call(&sink, &trace, "Verify", "revocation_state", Some("MGET")).await;
    let (tp, trace, _) = new_trace(true);
    let refreshed = c
        .refresh(traced(refresh_on(&pair.refresh_token, fingerprint), &tp))
        .await
        .expect("refresh")
        .into_inner()
        .tokens
        .expect("tokens");
    rpc_with_store_call(&sink, &trace, "Refresh", "rotate", Some("rotate.lua")).await;

    // A refusal carries its reason code.
    let (tp, trace, _) = new_trace(true);
    let refused = c.verify(traced(verify_request("not-a-token"), &tp)).await;
    expect_reason(refused, "TOKEN_MALFORMED");
    let refused = sink
        .wait_for(
            "refused Verify",
            by_name_in(&trace, "tessera.v1.TokenAuthority/Verify"),
        )
        .await;
    assert_eq!(
        attr(&refused, "tessera.reason").as_deref(),
        Some("TOKEN_MALFORMED")
    );
    assert_eq!(
        attr(&refused, "rpc.grpc.status_code").as_deref(),
        Some("16")
    );

    // A certificate-bound session: its thumbprint must not be traced.
    let thumbprint = tessera::tokens::sha256_b64(b"a client certificate");
    let (tp, _, _) = new_trace(true);
    let bound = c
        .issue(traced(
            pb::IssueRequest {
                cert_thumbprint: thumbprint.clone(),
                ..issue_request("bob")
            },
            &tp,
        ))
        .await
        .expect("issue bound")
        .into_inner()
        .tokens
        .expect("tokens");
    let (tp, trace, _) = new_trace(true);
    c.verify(traced(
        pb::VerifyRequest {
            cert_thumbprint: thumbprint.clone(),
            ..verify_request(&bound.access_token)
        },
        &tp,
    ))
    .await
    .expect("verify bound");
    sink.wait_for(
        "bound Verify",
        by_name_in(&trace, "tessera.v1.TokenAuthority/Verify"),
    )
    .await;

    // The OAuth port: the traceparent header of an introspection.
    let (tp, trace, caller_span) = new_trace(true);
    let body = format!("token={}", refreshed.access_token);
    let (status, _, _) = http_request(
        format!("127.0.0.1:{http_port}").parse().unwrap(),
        "POST",
        "/oauth2/introspect",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("traceparent", &tp),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    let introspect = sink
        .wait_for(
            "introspection",
            by_name_in(&trace, "POST /oauth2/introspect"),
        )
        .await;
    assert_eq!(hex::encode(&introspect.parent_span_id), caller_span);
    assert_eq!(
        attr(&introspect, "http.route").as_deref(),
        Some("/oauth2/introspect")
    );
    assert_eq!(
        attr(&introspect, "http.response.status_code").as_deref(),
        Some("200")
    );

    // Envoy's Check: the checked request's own traceparent, when the call
    // carries none; a denial's reason on the span.
    let (tp, trace, caller_span) = new_trace(true);
    let mut envoy =
        envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient::new(
            tonic::transport::Channel::from_shared(process.server().url())
                .unwrap()
                .connect()
                .await
                .unwrap(),
        );
    let authorization = format!("Bearer {}", refreshed.access_token);
    envoy
        .check(check_request(&[
            ("authorization", authorization.as_str()),
            ("traceparent", tp.as_str()),
        ]))
        .await
        .expect("Check answered");
    let check = sink
        .wait_for(
            "Check",
            by_name_in(&trace, "envoy.service.auth.v3.Authorization/Check"),
        )
        .await;
    assert_eq!(hex::encode(&check.parent_span_id), caller_span);
    let (tp, trace, _) = new_trace(true);
    envoy
        .check(check_request(&[
            ("authorization", "Bearer garbage"),
            ("traceparent", tp.as_str()),
        ]))
        .await
        .expect("Check answered");
    let denied = sink
        .wait_for(
            "denied Check",
            by_name_in(&trace, "envoy.service.auth.v3.Authorization/Check"),
        )
        .await;
    assert_eq!(
        attr(&denied, "tessera.reason").as_deref(),
        Some("TOKEN_MALFORMED")
    );

    // An unsampled caller's trace is not recorded (ratio 0, parent based).
    let (tp, unsampled, _) = new_trace(false);
    let mut marker = c.clone();
    marker
        .issue(traced(issue_request("carol"), &tp))
        .await
        .expect("issue");
    // A sampled call after it: once its span is in, so would the other's be.
    let (tp, trace, _) = new_trace(true);
    c.get_jwks(traced(pb::GetJwksRequest::default(), &tp))
        .await
        .expect("jwks");
    sink.wait_for(
        "GetJwks",
        by_name_in(&trace, "tessera.v1.TokenAuthority/GetJwks"),
    )
    .await;

    let spans = sink.spans();
    assert!(
        spans.iter().all(|s| hex::encode(&s.trace_id) != unsampled),
        "an unsampled trace was recorded"
    );
    assert_no_secret(
        &spans,
        &[
            &pair.access_token,
            &pair.refresh_token,
            secret_of(&pair.refresh_token),
            &refreshed.access_token,
            &refreshed.refresh_token,
            secret_of(&refreshed.refresh_token),
            &bound.access_token,
            secret_of(&bound.refresh_token),
            fingerprint,
            &tessera::tokens::sha256_b64(fingerprint.as_bytes()),
            &thumbprint,
        ],
    );
}

/// A `Revoke`'s event, applied by another replica on the same Redis, makes
/// a span there linked to the `Revoke`'s span — recorded although that
/// replica samples no trace of its own. Events without a trace context
/// (an untraced Revoke) are applied as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_applied_on_another_replica_links_to_its_revoke() {
    let redis = RedisServer::start().await;
    let key = TestKey::new();
    let (sink_a, endpoint_a) = Sink::start().await;
    let (sink_b, endpoint_b) = Sink::start().await;
    let a = traced_process(&endpoint_a, redis_flags(&redis.url(), &key, &[])).await;
    let b = traced_process(&endpoint_b, redis_flags(&redis.url(), &key, &[])).await;
    let mut ca = a.server().client().await;
    let mut cb = b.server().client().await;

    // An untraced revocation first: its event has no trace context.
    let plain = issue(&mut ca, "dave").await;
    ca.revoke(revoke_session_id(&plain.session_id))
        .await
        .expect("revoke");
    wait_revoked(&mut cb, &plain.access_token).await;

    let pair = issue(&mut ca, "erin").await;
    let (tp, trace, _) = new_trace(true);
    ca.revoke(traced(revoke_session_id(&pair.session_id), &tp))
        .await
        .expect("revoke");
    let (revoke, _) =
        rpc_with_store_call(&sink_a, &trace, "Revoke", "revoke", Some("revoke.lua")).await;

    let links_to_revoke = |s: &Span| {
        s.name == "revocation.apply"
            && s.links
                .iter()
                .any(|l| l.trace_id == revoke.trace_id && l.span_id == revoke.span_id)
    };
    let applied = sink_b
        .wait_for(
            "revocation.apply on B linked to the Revoke",
            links_to_revoke,
        )
        .await;
    assert_ne!(
        applied.trace_id, revoke.trace_id,
        "a trace of its own, linked"
    );
    assert_eq!(
        attr(&applied, "tessera.revocation.kind").as_deref(),
        Some("session")
    );
    wait_revoked(&mut cb, &pair.access_token).await;
    // The replica that revoked applies its own event alike.
    sink_a
        .wait_for("revocation.apply on A", links_to_revoke)
        .await;
    // Only the traced event made an apply span.
    assert_eq!(
        sink_b
            .spans()
            .iter()
            .filter(|s| s.name == "revocation.apply")
            .count(),
        1
    );
    assert_no_secret(
        &[sink_a.spans(), sink_b.spans()].concat(),
        &[
            &pair.access_token,
            secret_of(&pair.refresh_token),
            &plain.access_token,
            secret_of(&plain.refresh_token),
        ],
    );
}

/// The in-memory store keeps the trace context with its events too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_store_links_its_revocations_too() {
    let key = TestKey::new();
    let (sink, endpoint) = Sink::start().await;
    let flags = vec![
        "--issuer=tessera-test".to_owned(),
        format!("--signing-key={}", key.path.display()),
    ];
    let process = traced_process(&endpoint, flags).await;
    let mut c = process.server().client().await;
    let pair = issue(&mut c, "frank").await;
    let (tp, trace, _) = new_trace(true);
    c.revoke(traced(revoke_subject("acme", "frank"), &tp))
        .await
        .expect("revoke");
    let (revoke, store) = rpc_with_store_call(&sink, &trace, "Revoke", "revoke", None).await;
    assert_eq!(attr(&store, "db.system").as_deref(), Some("memory"));
    let applied = sink
        .wait_for("revocation.apply", |s| {
            s.name == "revocation.apply" && s.links.iter().any(|l| l.span_id == revoke.span_id)
        })
        .await;
    assert_eq!(
        attr(&applied, "tessera.revocation.kind").as_deref(),
        Some("subject")
    );
    assert_no_secret(
        &sink.spans(),
        &[&pair.access_token, secret_of(&pair.refresh_token)],
    );
}

/// The secret half of a refresh token `<session id>.<secret>`.
fn secret_of(refresh_token: &str) -> &str {
    refresh_token
        .split_once('.')
        .map(|(_, secret)| secret)
        .expect("a refresh token")
}

/// No span's name, attribute, event or link holds any of `secrets`.
fn assert_no_secret(spans: &[Span], secrets: &[&str]) {
    assert!(!spans.is_empty());
    for span in spans {
        let text = format!("{span:?}");
        for secret in secrets {
            assert!(secret.len() >= 16, "a real secret: {secret}");
            assert!(
                !text.contains(secret),
                "span {} holds a secret: {text}",
                span.name
            );
        }
    }
}

/// What Envoy sends to check a request with `headers`.
fn check_request(headers: &[(&str, &str)]) -> envoy_types::ext_authz::v3::pb::CheckRequest {
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
        HttpRequest, Request as AttrRequest,
    };
    use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
    envoy_types::ext_authz::v3::pb::CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(AttrRequest {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    scheme: "https".into(),
                    host: "api.example.com".into(),
                    path: "/orders".into(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}
