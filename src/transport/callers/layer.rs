//! [`AuthLayer`]: every `TokenAuthority` call authorized before any
//! handler runs.

use std::task::{Context, Poll};

use tessera_core::wire::Rpc;

use super::{certificate_identities, Callers, PeerIdentities, TenantScope};
use crate::authority::caller::CallerName;
use crate::error::to_status;
use crate::transport::layer::{Wrap, Wrapped};

/// The IP address of the peer of a gRPC call ("" when unknown).
fn peer_ip<B>(req: &http::Request<B>) -> String {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let ext = req.extensions();
    ext.get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            ext.get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|info| info.get_ref().remote_addr())
        })
        .map(|a| a.ip().to_string())
        .unwrap_or_default()
}

fn peer_identities<B>(req: &http::Request<B>) -> PeerIdentities {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    req.extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|info| info.peer_certs())
        .and_then(|certs| {
            certs
                .first()
                .map(|leaf| certificate_identities(leaf.as_ref()))
        })
        .unwrap_or_default()
}

/// Tower layer that authorizes every `TokenAuthority` call.
pub(crate) type AuthLayer = Wrap<Callers>;

/// The service [`AuthLayer`] makes.
pub(crate) type Auth<S> = Wrapped<Callers, S>;

impl AuthLayer {
    pub(crate) fn new(callers: Callers) -> Self {
        Wrap(callers)
    }
}

impl<S, B> tower::Service<http::Request<B>> for Auth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        futures::future::Either<S::Future, futures::future::Ready<Result<S::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let Some(rpc) = tessera_core::wire::rpc_of_path(req.uri().path()) else {
            // Health and reflection stay open for probes.
            return futures::future::Either::Left(self.inner.call(req));
        };
        let key = req
            .headers()
            .get(&crate::telemetry::header::API_KEY)
            .map(|v| v.as_bytes());
        let ids = peer_identities(&req);
        let ip = peer_ip(&req);
        match self.state.authorize_scoped(rpc, key, &ids, &ip) {
            Ok(caller) => {
                let (name, scope) =
                    caller.unwrap_or_else(|| ("anonymous".to_owned(), TenantScope::All));
                tracing::trace!(caller = %name, rpc, "authorized");
                if rpc == Rpc::Exchange.as_str() {
                    let audiences = self.state.exchange_audiences(&name);
                    req.extensions_mut().insert(audiences);
                }
                req.extensions_mut().insert(CallerName(name));
                req.extensions_mut().insert(scope);
                futures::future::Either::Left(self.inner.call(req))
            }
            Err(e) => {
                // Logged (rate-limited) and counted by `authorize_scoped`.
                futures::future::Either::Right(futures::future::ready(
                    Ok(to_status(&e).into_http()),
                ))
            }
        }
    }
}
