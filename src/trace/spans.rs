//! The spans Tessera makes: server spans of gRPC calls and OAuth HTTP
//! requests, store calls, signatures, and applied revocations; and the
//! fields recorded on them.

use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{
    FutureExt as _, SpanKind, Status, TraceContextExt as _, Tracer as _, WithContext,
};
use opentelemetry::KeyValue;
use tracing::field::Empty;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{has_traceparent, in_trace, on, parse_traceparent, start, Headers, StringMap, TARGET};

/// The server span of one RPC or OAuth HTTP request. Made through the
/// OpenTelemetry SDK's tracer, not as a `tracing` span bridged by
/// `tracing-opentelemetry`: a server span is never entered, its fields are
/// known when it starts, and the bridge's part (a registry slot, a span
/// builder filled by a field visitor, a lookup for each `record`, `context`
/// and `set_parent`, the conversion at close) was most of what a traced hot
/// `Verify` cost beyond its export (BENCHMARKS.md, "Tracing"). The spans
/// inside it (store calls, signatures) are `tracing` spans: the bridge
/// parents them on the OpenTelemetry context current while the call runs
/// ([`ServerSpan::run`]). Ends when dropped.
pub struct ServerSpan {
    cx: opentelemetry::Context,
}

impl ServerSpan {
    /// A server span named `name`, child of `parent`; `None` when tracing
    /// is not installed.
    fn start(
        name: impl Into<std::borrow::Cow<'static, str>>,
        attributes: Vec<KeyValue>,
        parent: &opentelemetry::Context,
    ) -> Option<Self> {
        let tracer = super::TRACER.get()?;
        let span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(tracer, parent);
        Some(ServerSpan {
            cx: parent.with_span(span),
        })
    }

    /// Run `fut` in this span's context (attached on each poll): spans made
    /// meanwhile are its children, and [`record_reason`] reaches it.
    pub fn run<F: std::future::Future>(&self, fut: F) -> WithContext<F> {
        fut.with_context(self.cx.clone())
    }

    /// Attach this span's context while a service makes its future (which
    /// may start work, and spans, before its first poll).
    pub(super) fn attach(&self) -> opentelemetry::ContextGuard {
        self.cx.clone().attach()
    }

    /// Record a gRPC status code; the codes that mean the server failed
    /// (not a refusal) mark the span as an error (OTel's gRPC conventions).
    pub fn grpc_code(&self, code: i32) {
        // UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS
        let failed = matches!(code, 2 | 4 | 12 | 13 | 14 | 15);
        self.outcome(
            KeyValue::new("rpc.grpc.status_code", i64::from(code)),
            failed,
        );
    }

    /// Record an HTTP answer's status; a server error marks the span as an
    /// error.
    pub fn http_status(&self, status: http::StatusCode) {
        let code = KeyValue::new("http.response.status_code", i64::from(status.as_u16()));
        self.outcome(code, status.is_server_error());
    }

    /// Put the answer's status code on the span, and mark it as an error
    /// when the server failed.
    fn outcome(&self, code: KeyValue, failed: bool) {
        let span = self.cx.span();
        span.set_attribute(code);
        if failed {
            span.set_status(Status::error(""));
        }
    }
}

impl Drop for ServerSpan {
    fn drop(&mut self) {
        self.cx.span().end();
    }
}

/// The server span of one RPC, `tessera.v1.TokenAuthority/Issue`, child of
/// the caller's context.
pub(super) fn grpc_span(path: &str, parent: opentelemetry::Context) -> Option<ServerSpan> {
    let full = path.trim_start_matches('/');
    let (service, method) = full.split_once('/').unwrap_or((full, ""));
    let attributes = vec![
        KeyValue::new("rpc.system", "grpc"),
        KeyValue::new("rpc.service", service.to_owned()),
        KeyValue::new("rpc.method", method.to_owned()),
    ];
    ServerSpan::start(full.to_owned(), attributes, &parent)
}

/// The span of Envoy's `Check`: made by the handler, which alone sees the
/// checked request's headers (whose `traceparent` is the parent when the
/// call's own metadata carried none).
pub fn check_span(
    metadata: &http::HeaderMap,
    checked: Option<&std::collections::HashMap<String, String>>,
) -> Option<ServerSpan> {
    let parent = match checked {
        Some(headers) if !has_traceparent(metadata) && headers.contains_key("traceparent") => {
            start(Some(&StringMap(headers)))
        }
        _ => start(
            traceparent_of(metadata)
                .as_ref()
                .map(|h| h as &dyn Extractor),
        ),
    }?;
    grpc_span(CHECK_PATH, parent)
}

/// The extractor of a header map that has a `traceparent`.
pub(super) fn traceparent_of(headers: &http::HeaderMap) -> Option<Headers<'_>> {
    has_traceparent(headers).then_some(Headers(headers))
}

/// The gRPC path of Envoy's external authorization.
pub const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

/// The server span of one OAuth HTTP request, `POST /oauth2/introspect`
/// (`route` is the matched route, never the raw path).
pub fn http_span(
    method: &http::Method,
    route: &str,
    headers: &http::HeaderMap,
) -> Option<ServerSpan> {
    let parent = start(
        traceparent_of(headers)
            .as_ref()
            .map(|h| h as &dyn Extractor),
    )?;
    let attributes = vec![
        KeyValue::new("http.request.method", method.as_str().to_owned()),
        KeyValue::new("http.route", route.to_owned()),
    ];
    ServerSpan::start(format!("{method} {route}"), attributes, &parent)
}

/// Set an attribute on the span whose context is current (that of a
/// traced call, or of its store call).
fn set_on_current(attribute: KeyValue) {
    if in_trace() {
        opentelemetry::Context::map_current(|cx| cx.span().set_attribute(attribute));
    }
}

/// Put a refusal's reason code (`TOKEN_REVOKED`, …) on the current span.
pub fn record_reason(reason: &'static str) {
    if !reason.is_empty() {
        set_on_current(KeyValue::new("tessera.reason", reason));
    }
}

/// A store call: `store.<op>` with the store kind and, on Redis, the Lua
/// script it runs; the Redis store adds the partition ([`record_partition`]).
fn store_span(kind: &'static str, op: &'static str) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "store",
        otel.name = op,
        otel.kind = "client",
        otel.status_code = Empty,
        db.system = kind,
        db.operation.name = op,
        tessera.store.script = Empty,
        tessera.store.partition = Empty,
    );
    if kind == "redis" {
        span.record("tessera.store.script", script_of(op));
    }
    span
}

/// The Lua script (or command) a store operation runs in Redis.
fn script_of(op: &str) -> &'static str {
    match op {
        "create_session" => "create.lua",
        "rotate" => "rotate.lua",
        "renew" => "renew.lua",
        "revoke" => "revoke.lua",
        "list_sessions" => "list.lua",
        "rate_limit" => "rate.lua",
        "log_head" => "log_head.lua",
        "read_log" => "XRANGE",
        "revocation_state" => "MGET",
        "first_use" => "SET NX",
        "shared_value" => "SET NX GET",
        "ping" => "TIME",
        _ => "",
    }
}

/// The partition the current store call works on.
pub fn record_partition(partition: u32) {
    set_on_current(KeyValue::new(
        "tessera.store.partition",
        i64::from(partition),
    ));
}

/// Run a store call inside its span; the span is marked as an error when
/// the call fails. The call runs in the span's OpenTelemetry context rather
/// than entering it: the span starts here, once, and each poll attaches its
/// context (a thread-local push) instead of entering it through the
/// subscriber (registry lookups by every layer on every poll, which were
/// the larger part of a traced call's cost: BENCHMARKS.md, "Tracing"), and
/// [`record_partition`] reaches it. (A plain function, not an `async fn`: a
/// future passed to one is kept twice in its state, and store calls' futures
/// are large.)
pub fn in_store_span<T, E, F>(
    kind: &'static str,
    op: &'static str,
    fut: F,
) -> futures::future::Either<F, impl std::future::Future<Output = Result<T, E>>>
where
    F: std::future::Future<Output = Result<T, E>>,
{
    use futures::future::Either;
    use futures::FutureExt as _;
    if !in_trace() {
        return Either::Left(fut);
    }
    let span = store_span(kind, op);
    Either::Right(fut.with_context(span.context()).map(move |result| {
        if result.is_err() {
            span.record("otel.status_code", "ERROR");
        }
        result
    }))
}

/// A signature (minting an access token): the algorithm only, never the
/// key or its id.
pub fn sign_span(alg: &'static str) -> Span {
    if !in_trace() {
        return Span::none();
    }
    tracing::info_span!(target: TARGET, "sign", otel.name = "sign", jwt.alg = alg)
}

/// A replica applied a revocation event: a span linked to the span of the
/// `Revoke` that made it, when the event carries its `traceparent`.
pub fn applied(event: &tessera_core::revocation::RevocationEvent, lag_ms: i64) {
    if !on() || event.traceparent.is_empty() {
        return;
    }
    let Some(linked) = parse_traceparent(&event.traceparent) else {
        return;
    };
    let kind = match event.kind {
        tessera_core::revocation::RevocationKind::Token => "token",
        tessera_core::revocation::RevocationKind::Session => "session",
        tessera_core::revocation::RevocationKind::Subject => "subject",
    };
    let span = tracing::info_span!(
        target: TARGET,
        parent: None,
        "revocation.apply",
        otel.name = "revocation.apply",
        otel.kind = "consumer",
        tessera.revocation.kind = kind,
        tessera.revocation.cursor = event.cursor.as_str(),
        tessera.store.partition = event.partition,
        tessera.feed.lag_ms = lag_ms,
    );
    span.add_link(linked);
    // Started and ended here: the span marks the moment of applying.
    drop(span.entered());
}
