//! Prometheus metrics: names in one place, the RPC metrics recorded in one
//! tower layer ([`MetricsLayer`]) rather than sprinkled through handlers.

use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;
use tessera_core::wire::Rpc;

use http_body::{Body, Frame};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Header names looked up on every call, made once: a `&str` key is parsed
/// into a header name (a table walk and a match over the standard names)
/// on every lookup, which was about 1.4k instructions of each hot `Verify`
/// (BENCHMARKS.md, "Server instructions per call").
pub mod header {
    use http::HeaderName;
    pub static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
    pub static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
    pub static API_KEY: HeaderName = HeaderName::from_static(tessera_core::wire::API_KEY_HEADER);
    pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
}

pub const TOKENS_ISSUED: &str = "tessera_tokens_issued_total";
/// Refreshes by outcome: rotated, grace_replay, reused, invalid, fingerprint_mismatch, rate_limited, error.
pub const REFRESHES: &str = "tessera_refresh_total";
/// The seeds' name for all refreshes, kept for existing dashboards.
pub const TOKEN_REFRESH: &str = "token_refresh_total";
/// Verifications by outcome (ok / rejected) and reason.
pub const VERIFICATIONS: &str = "tessera_verify_total";
/// RFC 7662 introspections on the OAuth port, by `active`.
pub const INTROSPECTIONS: &str = "tessera_introspections_total";
/// Requests on the OAuth HTTP port, by route and status.
pub const HTTP_REQUESTS: &str = "tessera_http_requests_total";
/// Their duration, by route.
pub const HTTP_DURATION: &str = "tessera_http_request_duration_seconds";
/// HTTP requests (admin and OAuth ports) cut at `--http-request-timeout`.
pub const HTTP_REQUEST_TIMEOUTS: &str = "tessera_http_request_timeouts_total";
/// Calls refused for their caller (unauthenticated, not allowed), by
/// `reason`: every one, though their log lines are rate-limited.
pub const CALLS_REFUSED: &str = "tessera_calls_refused_total";
/// Per tenant listed in `--metrics-tenants` (every other one as `other`),
/// by `event`: `issued`, `refreshed`, `verified` (Verify and Check that
/// succeeded), `denied` (`TENANT_NOT_ALLOWED`, by the tenant asked for).
pub const TENANT_EVENTS: &str = "tessera_tenant_events_total";
/// The `tenant` label of a tenant `--metrics-tenants` does not list.
pub const OTHER_TENANT: &str = "other";
/// Sliding renewals by band: extend, mint, refused.
pub const RENEWALS: &str = "tessera_renewals_total";
pub const REVOCATIONS: &str = "tessera_revocations_total";
pub const RPC_DURATION: &str = "tessera_rpc_duration_seconds";
pub const STORE_DURATION: &str = "tessera_store_duration_seconds";
/// From a revocation being made (its revoked_at) to this replica applying it.
pub const FEED_LAG: &str = "tessera_feed_lag_seconds";
pub const WATCHERS: &str = "tessera_watchers";
pub const CACHE_ENTRIES: &str = "tessera_revocation_cache_entries";
pub const FEED_IN_SYNC: &str = "tessera_feed_in_sync";
/// Per partition of the revocation log: seconds since it was last read to
/// its end (about the poll interval when healthy; -1 = never yet).
pub const FEED_PARTITION_LAG: &str = "tessera_feed_partition_lag_seconds";
/// Possible theft: a refresh presented with another device's fingerprint.
/// How far this host's clock is corrected to the store's (seconds).
pub const CLOCK_OFFSET: &str = "tessera_clock_offset_seconds";
pub const FINGERPRINT_MISMATCHES: &str = "tessera_fingerprint_mismatch_total";
/// Verified-token cache: lookups answered from it / sent on to full verification.
pub const VERIFY_CACHE_HITS: &str = "tessera_verify_cache_hits_total";
pub const VERIFY_CACHE_MISSES: &str = "tessera_verify_cache_misses_total";
/// Entries dropped, by cause: capacity (to make room), expired (token dead).
pub const VERIFY_CACHE_EVICTIONS: &str = "tessera_verify_cache_evictions_total";
/// Whole-cache clears because another key set came into force (SIGHUP).
pub const VERIFY_CACHE_CLEARS: &str = "tessera_verify_cache_clears_total";
pub const VERIFY_CACHE_ENTRIES: &str = "tessera_verify_cache_entries";
/// Bytes counted against `--verify-cache-bytes`.
pub const VERIFY_CACHE_BYTES: &str = "tessera_verify_cache_bytes";

/// Always 1, labelled with the build: `version` (the crate's) and `commit`
/// (`git rev-parse --short HEAD` at build time, `unknown` without git).
pub const BUILD_INFO: &str = "tessera_build_info";
/// The commit this binary was built from (see build.rs).
pub const BUILD_COMMIT: &str = env!("TESSERA_BUILD_COMMIT");

/// Latency buckets in seconds, from 50 µs (cache hits) to 5 s (timeouts).
const BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide Prometheus recorder (installed on first use; one
/// process is one authority, as Prometheus sees it).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .ok()?
                .install_recorder()
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .ok()?;
            // Histogram samples are kept raw until upkeep folds them into
            // buckets; without it they grow with every call when nobody
            // scrapes (the 10-minute soak found +70 MiB). Fold them often.
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "metrics upkeep thread not started");
            }
            Some(handle)
        })
        .as_ref()
}

/// Publish [`BUILD_INFO`] (once the recorder is installed).
pub fn record_build_info() {
    metrics::gauge!(
        BUILD_INFO,
        "version" => env!("CARGO_PKG_VERSION"),
        "commit" => BUILD_COMMIT,
    )
    .set(1.0);
}

/// How often histogram samples are folded into buckets.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

type Collector = Box<dyn Fn() -> bool + Send + Sync>;
static COLLECTORS: std::sync::Mutex<Vec<Collector>> = std::sync::Mutex::new(Vec::new());

/// Run `collect` before every scrape: for figures that live in counters of
/// their own (the verified-token cache) rather than being recorded per call
/// on the hot path. It answers whether it still has something to collect;
/// once it says no, it is dropped.
pub fn on_render(collect: impl Fn() -> bool + Send + Sync + 'static) {
    COLLECTORS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Box::new(collect));
}

/// Publish the verified-token cache's counters.
pub fn record_verify_cache(stats: &tessera_core::tokens::CacheStats) {
    metrics::counter!(VERIFY_CACHE_HITS).absolute(stats.hits);
    metrics::counter!(VERIFY_CACHE_MISSES).absolute(stats.misses);
    metrics::counter!(VERIFY_CACHE_EVICTIONS, "cause" => "capacity").absolute(stats.evictions);
    metrics::counter!(VERIFY_CACHE_EVICTIONS, "cause" => "expired").absolute(stats.expired);
    metrics::counter!(VERIFY_CACHE_CLEARS).absolute(stats.key_changes);
    metrics::gauge!(VERIFY_CACHE_ENTRIES).set(stats.entries as f64);
    metrics::gauge!(VERIFY_CACHE_BYTES).set(stats.bytes as f64);
}

/// Render the exposition text.
pub fn render() -> String {
    match handle() {
        Some(h) => {
            COLLECTORS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|collect| collect());
            h.run_upkeep();
            h.render()
        }
        None => String::new(),
    }
}

/// Time a store operation, from now to its answer. (A `map` of `fut`, not
/// an `async fn`: a future passed to one is kept twice in its state, and
/// store calls' futures are the largest part of every RPC's.)
pub fn store_op<T, E>(
    op: &'static str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> impl std::future::Future<Output = Result<T, E>> {
    let start = Instant::now();
    futures::FutureExt::map(fut, move |result| {
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::histogram!(STORE_DURATION, "op" => op, "outcome" => outcome)
            .record(start.elapsed().as_secs_f64());
        result
    })
}

// === impl MetricsLayer ===

/// Records `tessera_rpc_duration_seconds{method, code}` for every gRPC call.
#[derive(Clone, Default)]
pub struct MetricsLayer;

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MetricsService { inner }
    }
}

#[derive(Clone)]
pub struct MetricsService<S> {
    inner: S,
}

pub(crate) type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B, RB> tower::Service<http::Request<B>> for MetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    RB: Body + Send + 'static,
{
    type Response = http::Response<TimedBody<RB>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = method_label(req.uri().path());
        let start = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            // Trailers-only responses (errors before any message) carry the
            // status in the headers; others in the trailers.
            let early = resp
                .headers()
                .get(&header::GRPC_STATUS)
                .and_then(|v| v.to_str().ok())
                .map(code_label);
            let (parts, body) = resp.into_parts();
            let mut timed = TimedBody {
                inner: body,
                method,
                start,
                done: false,
            };
            if let Some(code) = early {
                timed.finish(code);
            }
            Ok(http::Response::from_parts(parts, timed))
        })
    }
}

/// Handles of the series every successful call records, registered once:
/// `metrics::histogram!` with labels builds its key and looks it up in the
/// registry on every call (about 2 % of a cached Verify's server CPU in
/// `perf`). Made on first use, which comes after `serve` installed the
/// recorder ([`handle`]).
struct HotSeries {
    ok_durations: Vec<(&'static str, metrics::Histogram)>,
    verify_ok: metrics::Counter,
}

fn hot() -> &'static HotSeries {
    static HOT: OnceLock<HotSeries> = OnceLock::new();
    HOT.get_or_init(|| HotSeries {
        ok_durations: Rpc::ALL
            .into_iter()
            .map(Rpc::as_str)
            .chain(["HealthCheck", "HealthWatch", "other"])
            .map(|m| {
                (
                    m,
                    metrics::histogram!(RPC_DURATION, "method" => m, "code" => "OK"),
                )
            })
            .collect(),
        verify_ok: metrics::counter!(VERIFICATIONS, "outcome" => "ok", "reason" => ""),
    })
}

/// Count a successful `Verify`.
pub fn verify_ok() {
    hot().verify_ok.increment(1);
}

fn method_label(path: &str) -> &'static str {
    if path.starts_with("/grpc.health.v1.Health/") {
        return if path.ends_with("/Watch") {
            "HealthWatch"
        } else {
            "HealthCheck"
        };
    }
    let name = path.rsplit('/').next().unwrap_or("");
    name.parse::<Rpc>().map_or("other", Rpc::as_str)
}

fn code_label(code: &str) -> &'static str {
    match tonic::Code::from_bytes(code.as_bytes()) {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "CANCELLED",
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        tonic::Code::Unimplemented => "UNIMPLEMENTED",
        tonic::Code::Internal => "INTERNAL",
        tonic::Code::Unavailable => "UNAVAILABLE",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
        _ => "OTHER",
    }
}

/// A response body that records the call when its trailers pass by.
pub struct TimedBody<B> {
    inner: B,
    method: &'static str,
    start: Instant,
    done: bool,
}

impl<B> TimedBody<B> {
    fn finish(&mut self, code: &'static str) {
        if !self.done {
            self.done = true;
            let seconds = self.start.elapsed().as_secs_f64();
            let hot = (code == "OK")
                .then(|| hot().ok_durations.iter().find(|(m, _)| *m == self.method))
                .flatten();
            match hot {
                Some((_, histogram)) => histogram.record(seconds),
                None => metrics::histogram!(RPC_DURATION, "method" => self.method, "code" => code)
                    .record(seconds),
            }
        }
    }
}

impl<B> Drop for TimedBody<B> {
    fn drop(&mut self) {
        // A body dropped before its trailers: the client went away.
        self.finish("CANCELLED");
    }
}

impl<B: Body + Unpin> Body for TimedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &poll {
            if let Some(trailers) = frame.trailers_ref() {
                let code = trailers
                    .get(&header::GRPC_STATUS)
                    .and_then(|v| v.to_str().ok())
                    .map_or("OK", code_label);
                self.finish(code);
            }
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
