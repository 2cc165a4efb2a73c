//! The gRPC service `tessera.v1.TokenAuthority`: the tonic trait over
//! [`Authority`], turning each call's metadata and connection (caller,
//! tenant scope, client certificate, DPoP nonce, `x-new-token`) into the
//! arguments of the authority's RPC methods, and their errors into
//! statuses (`error::failed`).

use tessera_core::wire::Rpc;
use tonic::{Request, Response, Status};

use crate::authority::caller::{caller_name, ExchangeAudiences};
use crate::authority::scope::{self, TenantScope};
use crate::authority::{Acting, Authority, Violations, WatchStream};
use crate::error::failed;
use crate::pb;
use crate::store::Store;
use crate::telemetry;

/// The RFC 8705 thumbprint of the client certificate of an mTLS call.
fn peer_cert_thumbprint(extensions: &http::Extensions) -> Option<String> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let certs = extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()?
        .peer_certs()?;
    certs
        .first()
        .map(|leaf| tessera_core::checks::cert_thumbprint(leaf.as_ref()))
}

/// Put the current DPoP nonce on an answer to a call that carried a
/// proof (`--dpop-nonce`), for the client's next proof.
async fn with_dpop_nonce<S: Store, T>(
    authority: &Authority<S>,
    had_proof: bool,
    mut response: Response<T>,
) -> Response<T> {
    if authority.policy.dpop_nonce && had_proof {
        if let Ok((current, _)) = authority.dpop_nonces(crate::clock::now_ms()).await {
            if let Ok(value) = current.parse() {
                response
                    .metadata_mut()
                    .insert(tessera_core::wire::DPOP_NONCE_HEADER, value);
            }
        }
    }
    response
}

/// A call taken apart: its message, its extensions (the connection's),
/// and the caller and tenant scope the auth layer (`callers::AuthLayer`)
/// put there.
struct Call<T> {
    message: T,
    extensions: http::Extensions,
    caller: String,
    scope: TenantScope,
}

impl<T> Call<T> {
    fn of(request: Request<T>) -> Self {
        let (_, extensions, message) = request.into_parts();
        Call {
            message,
            caller: caller_name(&extensions).to_owned(),
            scope: scope::of(&extensions),
            extensions,
        }
    }
}

#[tonic::async_trait]
impl<S: Store> pb::token_authority_server::TokenAuthority for Authority<S> {
    async fn issue(
        &self,
        request: Request<pb::IssueRequest>,
    ) -> Result<Response<pb::IssueResponse>, Status> {
        let call = Call::of(request);
        let result = self.issue(call.message, &call.caller, &call.scope).await;
        let response = result.map_err(|e| failed(Rpc::Issue, e))?;
        metrics::counter!(telemetry::TOKENS_ISSUED).increment(1);
        Ok(Response::new(response))
    }

    async fn refresh(
        &self,
        request: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::RefreshResponse>, Status> {
        let Call {
            message: mut request,
            extensions,
            caller,
            scope,
        } = Call::of(request);
        // A certificate-bound session's refresh: the thumbprint the caller
        // names, else that of the mTLS call's own certificate (as Verify).
        if request.cert_thumbprint.is_empty() {
            request.cert_thumbprint = peer_cert_thumbprint(&extensions).unwrap_or_default();
        }
        let had_proof = !request.dpop_proof.is_empty();
        let result = self.refresh_counted(request, &caller, &scope, None).await;
        let refreshed = result.map_err(|e| failed(Rpc::Refresh, e))?;
        Ok(with_dpop_nonce(self, had_proof, Response::new(refreshed.response)).await)
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        // The hot path: the caller's name is borrowed, not copied (Call::of).
        let (_, extensions, message) = request.into_parts();
        let scope = scope::of(&extensions);
        let who = Acting::new(Rpc::Verify, caller_name(&extensions), &scope);
        let had_proof = !message.dpop_proof.is_empty();
        let result = self
            .verify(message, &who, || peer_cert_thumbprint(&extensions))
            .await;
        match &result {
            Ok(_) => telemetry::verify_ok(),
            Err(e) => metrics::counter!(telemetry::VERIFICATIONS, "outcome" => "rejected", "reason" => e.reason()).increment(1),
        }
        let (response, new_token) = result.map_err(|e| failed(Rpc::Verify, e))?;
        let mut response = Response::new(response);
        if let Some(token) = new_token {
            // Sliding renewal: the renewed token also travels as `x-new-token`.
            if let Ok(value) = token.parse() {
                response
                    .metadata_mut()
                    .insert(tessera_core::wire::NEW_TOKEN_HEADER, value);
            }
        }
        Ok(with_dpop_nonce(self, had_proof, response).await)
    }

    async fn revoke(
        &self,
        request: Request<pb::RevokeRequest>,
    ) -> Result<Response<pb::RevokeResponse>, Status> {
        let call = Call::of(request);
        let who = Acting::new(Rpc::Revoke, &call.caller, &call.scope);
        let result = self.revoke(call.message, &who).await;
        Ok(Response::new(result.map_err(|e| failed(Rpc::Revoke, e))?))
    }

    type WatchRevocationsStream = WatchStream;

    async fn watch_revocations(
        &self,
        request: Request<pb::WatchRevocationsRequest>,
    ) -> Result<Response<Self::WatchRevocationsStream>, Status> {
        let call = Call::of(request);
        let who = Acting::new(Rpc::WatchRevocations, &call.caller, &call.scope);
        let result = self.watch(call.message, &who).await;
        Ok(Response::new(
            result.map_err(|e| failed(Rpc::WatchRevocations, e))?,
        ))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let call = Call::of(request);
        let who = Acting::new(Rpc::ListSessions, &call.caller, &call.scope);
        let result = self.list_sessions(call.message, &who).await;
        Ok(Response::new(
            result.map_err(|e| failed(Rpc::ListSessions, e))?,
        ))
    }

    async fn exchange(
        &self,
        request: Request<pb::ExchangeRequest>,
    ) -> Result<Response<pb::ExchangeResponse>, Status> {
        let call = Call::of(request);
        let audiences = call
            .extensions
            .get::<ExchangeAudiences>()
            .cloned()
            // The auth layer names them for every Exchange; without it, none.
            .unwrap_or_else(|| ExchangeAudiences::Only(Vec::new().into()));
        let result = self
            .exchange(
                call.message,
                (&call.caller, &call.scope),
                &audiences,
                || peer_cert_thumbprint(&call.extensions),
            )
            .await;
        Ok(Response::new(
            result.map_err(|e| failed(Rpc::Exchange, e))?.response,
        ))
    }

    async fn get_jwks(
        &self,
        request: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        let tenant = request.into_inner().tenant;
        let mut v = Violations::default();
        v.name("tenant", &tenant, false);
        v.finish().map_err(|e| failed(Rpc::GetJwks, e))?;
        let (jwks_json, issuer) = self.jwks_of(&tenant);
        Ok(Response::new(pb::GetJwksResponse { jwks_json, issuer }))
    }
}
