//! OpenTelemetry traces, exported over OTLP/gRPC when `--otlp-endpoint` (or
//! `OTEL_EXPORTER_OTLP_ENDPOINT`) is set; with neither, nothing here runs
//! but one relaxed atomic load per call ([`on`]).
//!
//! What a trace holds (README, "Tracing"):
//! - one server span per RPC ([`GrpcTraceLayer`]) and per OAuth HTTP
//!   request ([`http_span`]), parented on the caller's W3C `traceparent`
//!   (gRPC metadata, HTTP headers; for ext_authz, the checked request's
//!   headers when Envoy sent none of its own);
//! - a child span per store call ([`in_store_span`]: operation, Lua script,
//!   partition) and per signature ([`sign_span`]);
//! - the refusal's reason code (`tessera.reason`, [`record_reason`]);
//! - on a replica applying a revocation, a `revocation.apply` span with a
//!   *link* to the span of the `Revoke` that caused it ([`applied`]):
//!   the event carries that span's `traceparent` in the revocation log.
//!
//! Sampling is parent based, decided *before* any span is made
//! (`start`): a call whose `traceparent` says sampled is traced, one that
//! says not is not, and one without draws at `--trace-sample-ratio`. A call
//! not sampled makes no span at all, nor do its store calls or signatures
//! ([`in_trace`]), so its cost is a header lookup and a random draw.
//!
//! Never on a span: tokens, refresh secrets, keys, fingerprints or
//! thumbprints, nor any request body. Spans take their fields from the
//! names listed here only (no `#[instrument]` of arguments), and the OTLP
//! layer takes spans of Tessera's own targets only, never log events.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures::future::Either;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::field::Empty;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The target of every span made here: the OTLP layer takes these and
/// nothing else, and the log layer leaves them out (log lines stay as
/// they are with tracing on).
pub const TARGET: &str = "tessera::trace";

/// `--trace-sample-ratio`'s default: one trace in ten of those that start
/// here. A trace a caller started keeps the caller's decision (parent
/// based), so a sampled request is followed through Tessera whatever the
/// ratio; 0.1 keeps the exporter's queue and cost small for an authority
/// that answers every request of every service (BENCHMARKS.md, "Tracing").
pub const DEFAULT_SAMPLE_RATIO: &str = "0.1";

/// How long one export may take before the exporter gives up on it.
const EXPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long the exit waits for the last spans to be sent.
const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

static ON: AtomicBool = AtomicBool::new(false);
/// `--trace-sample-ratio`, as the bits of an `f64`.
static RATIO: AtomicU64 = AtomicU64::new(0);

/// Is the OTLP layer installed? Everything here is a no-op when not.
#[inline]
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Flushes and stops the exporter when dropped (at the end of `main`).
pub struct Guard {
    provider: SdkTracerProvider,
}

impl Drop for Guard {
    fn drop(&mut self) {
        ON.store(false, Ordering::Relaxed);
        // Bounded: a collector that is gone must not hold up the exit past
        // the drain (Kubernetes' grace period).
        if let Err(e) = self.provider.shutdown_with_timeout(FLUSH_TIMEOUT) {
            eprintln!("tessera: flushing traces: {e}");
        }
    }
}

/// The OTLP layer for `endpoint`, sampling root traces at `ratio`, and the
/// guard that flushes it; `main` adds it to the subscriber. Must be called
/// inside the Tokio runtime (the exporter's channel lives there).
pub fn otlp_layer<S>(
    endpoint: &str,
    ratio: f64,
) -> Result<(Box<dyn tracing_subscriber::Layer<S> + Send + Sync>, Guard), String>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    use tracing_subscriber::Layer;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| format!("--otlp-endpoint {endpoint}: {e}"))?;
    let mut resource = opentelemetry_sdk::Resource::builder()
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("tessera");
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        // Spans are made only for sampled calls ([`start`]) and for the
        // revocations of sampled Revokes ([`applied`]): record them all.
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer("tessera");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        // Not the thread or source location of each span: neither helps
        // follow a request, and both cost on every span.
        .with_threads(false)
        .with_location(false)
        .with_tracked_inactivity(false)
        .with_target(false)
        // Cached per callsite (a function of the metadata only), and no
        // level above INFO: the dependencies' `trace!`/`debug!` stay off
        // at the macro's level check.
        .with_filter(
            tracing_subscriber::filter::filter_fn(|m| m.is_span() && m.target() == TARGET)
                .with_max_level_hint(tracing::level_filters::LevelFilter::INFO),
        )
        .boxed();
    RATIO.store(ratio.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    ON.store(true, Ordering::Relaxed);
    Ok((layer, Guard { provider }))
}

/// For the log layer: everything but the spans made here.
pub fn not_ours(meta: &tracing::Metadata<'_>) -> bool {
    !(meta.is_span() && meta.target() == TARGET)
}

// === sampling ===

/// The parent a sampled call's span takes: `Some` with the caller's context
/// when its `traceparent` says sampled, or with an empty one (a new trace)
/// when it has none (or a malformed one) and the ratio draws it; `None`:
/// not traced.
fn start(traceparent: Option<&dyn Extractor>) -> Option<opentelemetry::Context> {
    if let Some(extractor) = traceparent {
        let cx = extract(extractor);
        let sc = cx.span().span_context().clone();
        if sc.is_valid() {
            return sc.is_sampled().then_some(cx);
        }
    }
    let ratio = f64::from_bits(RATIO.load(Ordering::Relaxed));
    (ratio >= 1.0 || rand::random::<f64>() < ratio).then(opentelemetry::Context::new)
}

/// Is a traced call running here (an OTel span entered on this thread)?
/// Store calls and signatures outside one make no span: not those of an
/// unsampled call, nor the feed reader's and health checks' own.
pub fn in_trace() -> bool {
    on() && opentelemetry::Context::map_current(|cx| cx.has_active_span())
}

// === propagation ===

/// W3C trace context (`traceparent`, `tracestate`) of any header map: gRPC
/// metadata are HTTP/2 headers, so one extractor serves both ports.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The same, from the header map Envoy's `CheckRequest` carries (lower-case
/// names).
struct StringMap<'a>(&'a std::collections::HashMap<String, String>);

impl Extractor for StringMap<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// The caller's trace context; an empty one when there is none (or it does
/// not parse: a malformed `traceparent` starts a new trace).
fn extract(extractor: &dyn Extractor) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(extractor)
}

/// Does this header map carry a `traceparent`?
pub fn has_traceparent(headers: &http::HeaderMap) -> bool {
    headers.contains_key("traceparent")
}

/// The `traceparent` of the current span when it is sampled (what a
/// revocation event keeps, so that a replica applying it can link back);
/// `None` with tracing off or unsampled.
pub fn current_traceparent() -> Option<String> {
    if !on() {
        return None;
    }
    // The OTel context entered last, not `Span::current()`: a span the
    // OTLP layer does not take (a debug span of the log layer) has none.
    let cx = opentelemetry::Context::current();
    let span = cx.span();
    let sc = span.span_context();
    (sc.is_valid() && sc.is_sampled()).then(|| traceparent(sc))
}

/// `00-<trace id>-<span id>-<flags>` (W3C Trace Context §3.2).
fn traceparent(sc: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    )
}

/// The span context a `traceparent` names, if it is a valid one.
fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let mut map = std::collections::HashMap::with_capacity(1);
    map.insert("traceparent".to_owned(), value.to_owned());
    let cx = extract(&StringMap(&map));
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}

// === spans ===

/// The server span of one RPC, `tessera.v1.TokenAuthority/Issue`, child of
/// the caller's context.
fn grpc_span(path: &str, parent: opentelemetry::Context) -> Span {
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
fn traceparent_of(headers: &http::HeaderMap) -> Option<Headers<'_>> {
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

/// Put a refusal's reason code (`TOKEN_REVOKED`, …) on the current span.
pub fn record_reason(reason: &'static str) {
    if !reason.is_empty() && in_trace() {
        Span::current().record("tessera.reason", reason);
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
    if in_trace() {
        Span::current().record("tessera.store.partition", partition);
    }
}

/// Run a store call inside its span; the span is marked as an error when
/// the call fails.
pub async fn in_store_span<T, E>(
    kind: &'static str,
    op: &'static str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    if !in_trace() {
        return fut.await;
    }
    let span = store_span(kind, op);
    let result = fut.instrument(span.clone()).await;
    if result.is_err() {
        span.record("otel.status_code", "ERROR");
    }
    result
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

// === impl GrpcTraceLayer ===

/// A server span around every gRPC call but health, reflection and
/// `Check` (which makes its own: [`check_span`]). Outermost layer, so caller
/// refusals and budgets are inside it.
#[derive(Clone, Default)]
pub struct GrpcTraceLayer;

impl<S> tower::Layer<S> for GrpcTraceLayer {
    type Service = GrpcTrace<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcTrace { inner }
    }
}

#[derive(Clone)]
pub struct GrpcTrace<S> {
    inner: S,
}

use crate::telemetry::BoxFuture;

/// Calls that get no span: probes, reflection, and `Check` (its own).
fn untraced(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
        || path.starts_with("/grpc.reflection.")
        || path == CHECK_PATH
}

impl<S, B, RB> tower::Service<http::Request<B>> for GrpcTrace<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<Result<S::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let parent = match on() && !untraced(req.uri().path()) {
            true => start(
                traceparent_of(req.headers())
                    .as_ref()
                    .map(|h| h as &dyn Extractor),
            ),
            false => None,
        };
        let Some(parent) = parent else {
            return Either::Left(self.inner.call(req));
        };
        let span = grpc_span(req.uri().path(), parent);
        let fut = span.in_scope(|| self.inner.call(req));
        let recorded = span.clone();
        Either::Right(Box::pin(
            async move {
                let result = fut.await;
                if let Ok(resp) = &result {
                    // Unary errors are trailers-only (status in the headers);
                    // a response without one is OK.
                    let code = resp
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .unwrap_or(0);
                    record_grpc_code(&recorded, code);
                }
                result
            }
            .instrument(span),
        ))
    }
}

/// Record a gRPC status code; the codes that mean the server failed
/// (not a refusal) mark the span as an error (OTel's gRPC conventions).
pub fn record_grpc_code(span: &Span, code: i32) {
    span.record("rpc.grpc.status_code", code);
    // UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS
    if matches!(code, 2 | 4 | 12 | 13 | 14 | 15) {
        span.record("otel.status_code", "ERROR");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_round_trips_and_garbage_is_refused() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let sc = parse_traceparent(tp).expect("valid");
        assert_eq!(traceparent(&sc), tp);
        for bad in [
            "",
            "garbage",
            "00-0000-00f067aa0ba902b7-01",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn nothing_is_made_with_tracing_off() {
        assert!(!on());
        assert!(!in_trace());
        assert!(sign_span("EdDSA").is_none());
        assert_eq!(current_traceparent(), None);
    }

    #[test]
    fn only_sampled_callers_and_drawn_roots_are_traced() {
        let headers = |tp: &str| {
            let mut h = http::HeaderMap::new();
            h.insert("traceparent", tp.parse().expect("ascii"));
            h
        };
        let sampled = headers("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let unsampled = headers("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
        let garbage = headers("garbage");
        for ratio in [0.0, 1.0] {
            RATIO.store(f64::to_bits(ratio), Ordering::Relaxed);
            let parent = start(Some(&Headers(&sampled))).expect("a sampled caller is traced");
            assert!(parent.span().span_context().is_remote());
            assert!(start(Some(&Headers(&unsampled))).is_none());
            // No (valid) traceparent: the ratio decides, for a new trace.
            assert_eq!(start(Some(&Headers(&garbage))).is_some(), ratio == 1.0);
            assert_eq!(start(None).is_some(), ratio == 1.0);
        }
        RATIO.store(0, Ordering::Relaxed);
    }
}
