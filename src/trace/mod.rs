//! OpenTelemetry traces, exported over OTLP/gRPC when `--otlp-endpoint` (or
//! `OTEL_EXPORTER_OTLP_ENDPOINT`) is set; with neither, nothing here runs
//! but one relaxed atomic load per call ([`on`]).
//!
//! What a trace holds (README, "Tracing"):
//! - one server span per RPC ([`GrpcTraceLayer`]) and per OAuth HTTP
//!   request ([`http_span`]), parented on the caller's W3C `traceparent`
//!   ([`ServerSpan`]: made through the OpenTelemetry SDK directly; the
//!   spans inside it go through `tracing` and `tracing-opentelemetry`)
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

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

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
/// The tracer of server spans ([`ServerSpan`]), made through the SDK itself.
static TRACER: std::sync::OnceLock<opentelemetry_sdk::trace::SdkTracer> =
    std::sync::OnceLock::new();
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
    // Once per process (`main` calls this once); a second provider's spans
    // would still go to the first tracer's.
    let _ = TRACER.set(tracer.clone());
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
    headers.contains_key(&crate::telemetry::header::TRACEPARENT)
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

// === spans and the gRPC layer ===

mod layer;
mod log_fields;
mod spans;

pub use layer::{GrpcTrace, GrpcTraceLayer};
pub use log_fields::PlainFields;
pub use spans::{
    applied, check_span, http_span, in_store_span, record_partition, record_reason, sign_span,
    ServerSpan, CHECK_PATH,
};

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
