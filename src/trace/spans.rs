//! The spans Tessera makes: server spans of gRPC calls and OAuth HTTP
//! requests, store calls, signatures, and applied revocations; and the
//! fields recorded on them.

use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{FutureExt as _, TraceContextExt as _, WithContext};
use opentelemetry::KeyValue;
use tracing::field::Empty;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{has_traceparent, in_trace, on, parse_traceparent, start, Headers, StringMap, TARGET};

/// The server span of one RPC, `tessera.v1.TokenAuthority/Issue`, child of
/// the caller's context.
pub(super) fn grpc_span(path: &str, parent: opentelemetry::Context) -> Span {
    let full = path.trim_start_matches('/');
    let (service, method) = full.split_once('/').unwrap_or((full, ""));
    let span = tracing::info_span!(
        target: TARGET,
        "rpc",
        otel.name = full,
        otel.kind = "server",
        otel.status_code = Empty,
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = Empty,
        tessera.reason = Empty,
    );
    let _ = span.set_parent(parent);
    span
}

/// The span of Envoy's `Check`: made by the handler, which alone sees the
/// checked request's headers (whose `traceparent` is the parent when the
/// call's own metadata carried none).
pub fn check_span(
    metadata: &http::HeaderMap,
    checked: Option<&std::collections::HashMap<String, String>>,
) -> Option<Span> {
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
    Some(grpc_span(CHECK_PATH, parent))
}

/// The extractor of a header map that has a `traceparent`.
pub(super) fn traceparent_of(headers: &http::HeaderMap) -> Option<Headers<'_>> {
    has_traceparent(headers).then_some(Headers(headers))
}

/// The gRPC path of Envoy's external authorization.
pub const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

/// The server span of one OAuth HTTP request, `POST /oauth2/introspect`
/// (`route` is the matched route, never the raw path).
pub fn http_span(method: &http::Method, route: &str, headers: &http::HeaderMap) -> Option<Span> {
    let parent = start(
        traceparent_of(headers)
            .as_ref()
            .map(|h| h as &dyn Extractor),
    )?;
    let span = tracing::info_span!(
        target: TARGET,
        "http",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method.as_str(),
        http.route = route,
        http.response.status_code = Empty,
        tessera.reason = Empty,
    );
    let _ = span.set_parent(parent);
    Some(span)
}

/// Record an HTTP answer's status on `span`.
pub fn record_http_status(span: &Span, status: http::StatusCode) {
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

/// Run `fut` in `span`'s OpenTelemetry context rather than entering the
/// `tracing` span: the span starts here, once, and each poll attaches its
/// context (a thread-local push) instead of entering it through the
/// subscriber (registry lookups by every layer on every poll, which were
/// the larger part of a traced call's cost: BENCHMARKS.md, "Tracing").
/// Spans made meanwhile (store calls, signatures) are its children, and
/// [`record_reason`] and [`record_partition`] reach it. It ends when the
/// caller drops `span`, after recording the outcome on it.
/// (A plain function, not an `async fn`: a future passed to one is kept
/// twice in its state, and the futures run here are large.)
pub fn run_in<F: std::future::Future>(span: &Span, fut: F) -> WithContext<F> {
    fut.with_context(span.context())
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
/// the call fails. (Not an `async fn`, for the reason of [`run_in`].)
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
    Either::Right(run_in(&span, fut).map(move |result| {
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
