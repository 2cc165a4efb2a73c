//! [`GrpcTraceLayer`]: the tower layer that puts a server span around
//! every traced gRPC call and records its status code.

use std::task::{Context, Poll};

use futures::future::Either;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::FutureExt as _;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::spans::{grpc_span, traceparent_of, CHECK_PATH};
use super::{on, start};
use crate::telemetry::BoxFuture;

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
        // The span's context, looked up once: attached while the service
        // makes its future, then on each of its polls.
        let cx = span.context();
        let fut = {
            let _attached = cx.clone().attach();
            self.inner.call(req)
        };
        let traced = fut.with_context(cx);
        Either::Right(Box::pin(futures::FutureExt::map(traced, move |result| {
            if let Ok(resp) = &result {
                // Unary errors are trailers-only (status in the headers);
                // a response without one is OK.
                let code = resp
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .unwrap_or(0);
                record_grpc_code(&span, code);
            }
            result
        })))
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
