//! [`GrpcTraceLayer`]: the tower layer that puts a server span around
//! every traced gRPC call and records its status code.

use std::task::{Context, Poll};

use futures::future::Either;
use opentelemetry::propagation::Extractor;

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
        let Some(span) = parent.and_then(|parent| grpc_span(req.uri().path(), parent)) else {
            return Either::Left(self.inner.call(req));
        };
        let fut = {
            let _attached = span.attach();
            self.inner.call(req)
        };
        Either::Right(Box::pin(futures::FutureExt::map(
            span.run(fut),
            move |result| {
                if let Ok(resp) = &result {
                    // Unary errors are trailers-only (status in the headers);
                    // a response without one is OK.
                    let code = resp
                        .headers()
                        .get(&crate::telemetry::header::GRPC_STATUS)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .unwrap_or(0);
                    span.grpc_code(code);
                }
                result
            },
        )))
    }
}
