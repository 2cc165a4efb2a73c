//! The gRPC part: the server's limits, its tower layers (outermost
//! first), reflection, health, the authority and Envoy's ext_authz.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::HealthService;

use super::ServeError;
use crate::authority::Authority;
use crate::config::ServeArgs;
use crate::store::{RateLimit, Store};
use crate::transport::callers::{AuthLayer, Callers};
use crate::transport::{caller_limits, limits, tls};
use crate::{error, pb, telemetry, trace};

/// What a peer can make the gRPC server hold (docs/security.md).
pub(super) struct GrpcConfig {
    max_concurrent_streams: u32,
    keepalive_interval: Duration,
    keepalive_timeout: Duration,
    max_resets: usize,
    request_timeout: Duration,
    max_connections: usize,
    idle_timeout: Duration,
    max_watchers: usize,
    max_health_watches: usize,
    tls: Option<tonic::transport::ServerTlsConfig>,
}

/// What the gRPC server serves and whom it answers.
pub(super) struct Services<S: Store> {
    pub store: Arc<S>,
    pub caller_rates: Vec<(String, RateLimit)>,
    pub authority: Arc<Authority<S>>,
    pub callers: Callers,
    pub health: HealthServer<HealthService>,
}

impl GrpcConfig {
    pub(super) fn new(args: &ServeArgs) -> Result<Self, ServeError> {
        Ok(GrpcConfig {
            max_concurrent_streams: args.max_concurrent_streams,
            keepalive_interval: args.http2_keepalive_interval.0,
            keepalive_timeout: args.http2_keepalive_timeout.0,
            max_resets: args.http2_max_resets,
            request_timeout: args.request_timeout.0,
            max_connections: args.max_connections,
            idle_timeout: args.idle_timeout.0,
            max_watchers: args.max_watchers,
            max_health_watches: args.max_health_watches,
            tls: tls::server_config(args.tls_files().as_ref()).map_err(ServeError::Config)?,
        })
    }

    /// The server on `listener`, not yet running; it stops accepting and
    /// finishes its calls when `stop` fires.
    pub(super) fn build<S: Store>(
        self,
        listener: TcpListener,
        services: Services<S>,
        stop: oneshot::Receiver<()>,
    ) -> Result<BoxFuture<'static, Result<(), tonic::transport::Error>>, ServeError> {
        let Services {
            store,
            caller_rates,
            authority,
            callers,
            health,
        } = services;
        let (reflection, reflection_v1alpha) = reflection()?;
        let service = pb::token_authority_server::TokenAuthorityServer::from_arc(authority.clone())
            .max_decoding_message_size(error::MAX_REQUEST_BYTES);
        // Envoy's external authorization, beside the authority (authority/ext_authz.rs).
        let ext_authz = envoy_types::ext_authz::v3::pb::AuthorizationServer::from_arc(authority)
            .max_decoding_message_size(error::MAX_REQUEST_BYTES);
        let mut builder = tonic::transport::Server::builder()
            .max_concurrent_streams(self.max_concurrent_streams)
            .http2_keepalive_interval(Some(self.keepalive_interval))
            .http2_keepalive_timeout(Some(self.keepalive_timeout))
            .http2_max_local_error_reset_streams(Some(self.max_resets))
            .timeout(self.request_timeout);
        if let Some(tls) = self.tls {
            builder = builder.tls_config(tls)?;
        }
        let stream_caps = limits::StreamCapLayer::default()
            .cap(
                tessera_core::wire::WATCH_REVOCATIONS_PATH,
                self.max_watchers,
            )
            .cap("/grpc.health.v1.Health/Watch", self.max_health_watches);
        let incoming = limits::incoming(listener, self.max_connections, self.idle_timeout, "grpc");
        let server = builder
            .layer(trace::GrpcTraceLayer)
            .layer(telemetry::MetricsLayer)
            .layer(AuthLayer::new(callers))
            .layer(caller_limits::CallerLimitLayer::new(store, caller_rates))
            .layer(stream_caps)
            .layer(error::DecodeErrorLayer)
            .add_service(health)
            .add_service(reflection)
            .add_service(reflection_v1alpha)
            .add_service(service)
            .add_service(ext_authz)
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop.await;
            });
        Ok(Box::pin(server))
    }
}

type Reflection<T> = tonic_reflection::server::v1::ServerReflectionServer<T>;
type ReflectionV1Alpha<T> = tonic_reflection::server::v1alpha::ServerReflectionServer<T>;

/// Reflection in both versions: grpc.reflection.v1, and v1alpha for the
/// clients that only ask for it (Python's grpcio-reflection, older
/// grpcurl, grpcui, Postman).
fn reflection() -> Result<
    (
        Reflection<impl tonic_reflection::server::v1::ServerReflection>,
        ReflectionV1Alpha<impl tonic_reflection::server::v1alpha::ServerReflection>,
    ),
    ServeError,
> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let v1 = builder()
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let v1alpha = builder()
        .build_v1alpha()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    Ok((v1, v1alpha))
}
