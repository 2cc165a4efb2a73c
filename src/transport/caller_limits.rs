//! Per-caller budgets (`--caller-rate`), enforced by a tower layer beside
//! the authorization layer, before any handler runs.

use std::sync::Arc;
use std::task::{Context, Poll};
use tessera_core::wire::Rpc;

use crate::authority::caller::{caller_name, charge};
use crate::transport::layer::{Wrap, Wrapped};

// === impl CallerLimitLayer ===

/// Per-caller budgets (`--caller-rate`), a tower layer inside the `AuthLayer`:
/// a call over its caller's budget for its RPC is refused with
/// `RESOURCE_EXHAUSTED`/`RATE_LIMITED` before any handler runs. Counted in
/// the store, so a budget holds across replicas (one round trip per limited
/// call). Issue's budget is counted by the store in the same step as the
/// session it writes, so it is not counted here.
pub(crate) type CallerLimitLayer<S> = Wrap<Budgets<S>>;

/// The service [`CallerLimitLayer`] makes.
pub(crate) type CallerLimits<S, Svc> = Wrapped<Budgets<S>, Svc>;

/// The store that counts the budgets, and the budgets by RPC name.
pub(crate) struct Budgets<S> {
    store: Arc<S>,
    rates: Arc<Vec<(String, crate::store::RateLimit)>>,
}

impl<S> Clone for Budgets<S> {
    fn clone(&self) -> Self {
        Budgets {
            store: self.store.clone(),
            rates: self.rates.clone(),
        }
    }
}

impl<S> CallerLimitLayer<S> {
    /// Budgets by RPC name (`*` = any).
    pub fn new(store: Arc<S>, rates: Vec<(String, crate::store::RateLimit)>) -> Self {
        Wrap(Budgets {
            store,
            rates: Arc::new(rates),
        })
    }
}

impl<S, Svc, B> tower::Service<http::Request<B>> for CallerLimits<S, Svc>
where
    S: crate::store::Store,
    Svc: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    Svc::Future: Send + 'static,
    Svc::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = Svc::Response;
    type Error = Svc::Error;
    // Calls without a budget pass through without an allocation.
    type Future = futures::future::Either<
        Svc::Future,
        futures::future::BoxFuture<'static, Result<Svc::Response, Svc::Error>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let rates = &self.state.rates;
        let limit = tessera_core::wire::rpc_of_path(req.uri().path())
            .and_then(|rpc| rpc.parse::<Rpc>().ok())
            .and_then(|rpc| budget_for(rates, rpc).map(|limit| (rpc, limit)));
        let Some((rpc, limit)) = limit else {
            return futures::future::Either::Left(self.inner.call(req));
        };
        // The service that was polled ready serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let store = self.state.store.clone();
        let caller = caller_name(req.extensions()).to_owned();
        let scope = crate::authority::scope::of(req.extensions()).label();
        futures::future::Either::Right(Box::pin(async move {
            match charge(store.as_ref(), limit, (&caller, &scope), rpc).await {
                Ok(()) => inner.call(req).await,
                Err(e) => Ok(crate::error::failed(rpc, e).into_http()),
            }
        }))
    }
}

/// The caller budget of `rpc` (`--caller-rate`; `*` for any RPC), if any.
/// Issue's is counted by the store in the same step as its session, and
/// Exchange's by its handler (both have a budget by default).
pub fn budget_for(
    rates: &[(String, crate::store::RateLimit)],
    rpc: Rpc,
) -> Option<crate::store::RateLimit> {
    if matches!(rpc, Rpc::Issue | Rpc::Exchange) {
        return None;
    }
    rates
        .iter()
        .find(|(r, _)| r == rpc.as_str())
        .or_else(|| rates.iter().find(|(r, _)| r == "*"))
        .map(|(_, limit)| *limit)
}
