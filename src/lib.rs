//! Tessera: a gRPC token authority.
//!
//! [`serve`] runs the whole authority on a listener until a shutdown future
//! resolves; `main.rs` and the integration tests both call it.
#![forbid(unsafe_code)]

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic_health::ServingStatus;

// The layers, top down; a module imports only its own layer and those
// below it (tests/it/architecture.rs checks):
//   assembly:  lib.rs (serve), config, keyload, signals; cli (client commands)
//   transport: gRPC wiring, HTTP (oauth, admin, web), TLS, callers and their limits
//   authority: one file per RPC, policy, tenancy
//   feed, then store (+ cursor, the position in the store's log)
//   base:      error, trace, telemetry, audit, refusals, clock (used by all)
pub mod audit;
pub mod authority;
pub mod cli;
pub mod clock;
pub mod config;
pub mod cursor;
pub mod error;
pub mod feed;
pub mod keyload;
pub mod refusals;
pub mod signals;
pub mod store;
pub mod telemetry;
pub mod trace;
pub mod transport;

/// The token core (claims, minting, verification, keys), shared with the SDK.
pub use tessera_core::{keys, tokens};

/// Generated protobuf and gRPC code of `proto/tessera/v1/tessera.proto`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("tessera.v1");
    /// Encoded descriptors, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("tessera_descriptor");
}

use authority::{tenants, Authority};
use config::ServeArgs;
use feed::Feed;
use keys::KeyRing;
use store::memory::MemoryStore;
use store::redis::RedisStore;
use store::{Instrumented, Store};
use transport::callers::{AuthLayer, Callers};
use transport::{admin, caller_limits, health, limits, oauth, tls, web};

/// The fully qualified gRPC service name, as health checks know it.
pub use tessera_core::wire::SERVICE_NAME;

/// The gRPC health service name of liveness: `SERVING` from start-up until
/// the shutdown drain, whatever the store does (a liveness probe must not
/// restart replicas for a Redis outage). `""` and [`SERVICE_NAME`] mean
/// readiness.
pub const LIVENESS_SERVICE: &str = "liveness";

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("configuration: {0}")]
    Config(String),
    /// Settings that contradict each other (`ServeArgs::validate`); the
    /// message names the flags.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection: {0}")]
    Reflection(String),
}

/// Run the authority on `listener` until `shutdown` resolves, then drain:
/// health goes `NOT_SERVING`, watch streams end, in-flight RPCs finish.
/// The admin HTTP server binds `--admin-listen`.
pub async fn serve(
    args: ServeArgs,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let admin = TcpListener::bind(args.admin_listen).await.map_err(|e| {
        ServeError::Config(format!(
            "cannot listen on --admin-listen {}: {e}",
            args.admin_listen
        ))
    })?;
    serve_with_admin(args, listener, admin, shutdown).await
}

/// [`serve`] with the admin listener given (tests bind both to port 0).
pub async fn serve_with_admin(
    args: ServeArgs,
    listener: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_with_listeners(args, listener, admin, None, shutdown).await
}

/// [`serve_with_admin`] with the OAuth HTTP listener given too; `None`
/// binds `--http-listen` if it is set.
pub async fn serve_with_listeners(
    args: ServeArgs,
    listener: TcpListener,
    admin: TcpListener,
    http: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    args.validate().map_err(ServeError::Invalid)?;
    let http = match (http, args.http_listen) {
        (Some(l), _) => Some(l),
        (None, Some(addr)) => Some(TcpListener::bind(addr).await.map_err(|e| {
            ServeError::Config(format!("cannot listen on --http-listen {addr}: {e}"))
        })?),
        (None, None) => None,
    };
    let local = listener
        .local_addr()
        .map_err(|e| ServeError::Config(e.to_string()))?;
    let callers = Callers::for_listener(&args, local).map_err(ServeError::Config)?;
    if let Some(http) = &http {
        // The OAuth port answers the same callers: anonymous only where
        // the gRPC port would allow it (a loopback address, or
        // --allow-anonymous), judged by its own address.
        let http_local = http
            .local_addr()
            .map_err(|e| ServeError::Config(e.to_string()))?;
        Callers::for_listener(&args, http_local)
            .map_err(|e| ServeError::Config(format!("--http-listen: {e}")))?;
    }
    let (keys, tenants) = tenants::load(&args).map_err(ServeError::Config)?;
    let keys = Arc::new(KeyRing::new(keys));
    let default = keys.current().default_keys_arc();
    if default.ephemeral {
        tracing::warn!(kid = %default.signer.kid, "no --signing-key: using an ephemeral EdDSA key; tokens will not verify after a restart or on other replicas");
    }
    let parts = Parts {
        keys,
        tenants: Arc::new(tenants::TenantRing::new(tenants)),
        callers,
        args,
        listener,
        admin,
        http,
    };
    match parts.args.redis_url.clone() {
        Some(url) => {
            let tls = store::redis::RedisTls {
                ca: parts.args.redis_tls_ca.clone(),
                client: parts
                    .args
                    .redis_tls_cert
                    .clone()
                    .zip(parts.args.redis_tls_key.clone()),
            };
            let store = RedisStore::connect_with(
                &url,
                &tls,
                parts.args.store_timeout.0,
                parts.args.redis_partitions,
            )
            .await?
            .wait_for_replicas(parts.args.redis_wait_replicas)?;
            run(Arc::new(Instrumented(store)), parts, shutdown).await
        }
        None => run(Arc::new(Instrumented(MemoryStore::new())), parts, shutdown).await,
    }
}

/// Everything `run` needs besides the store.
struct Parts {
    keys: Arc<KeyRing>,
    tenants: Arc<tenants::TenantRing>,
    callers: Callers,
    args: ServeArgs,
    listener: TcpListener,
    admin: TcpListener,
    http: Option<TcpListener>,
}

async fn run<S: Store>(
    store: Arc<S>,
    parts: Parts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let Parts {
        keys,
        tenants,
        callers,
        args,
        listener,
        admin,
        http,
    } = parts;
    telemetry::handle();
    telemetry::record_build_info();
    let admin_addr = admin
        .local_addr()
        .map_err(|e| ServeError::Config(e.to_string()))?;
    let local = listener
        .local_addr()
        .map_err(|e| ServeError::Config(e.to_string()))?;
    tracing::info!(
        listen = %local,
        tls = args.tls_cert.is_some(),
        mtls = args.tls_client_ca.is_some(),
        admin = %admin_addr,
        store = store.kind(),
        kid = %keys.current().default_keys().signer.kid,
        alg = keys::alg_name(keys.current().default_keys().signer.alg),
        ephemeral_key = keys.current().default_keys().ephemeral,
        tenants_with_keys = keys.current().tenant_names().len(),
        "tessera serving"
    );
    // Before anything is minted: take the store's clock (a replica whose own
    // clock is off must not issue sessions that outlive a logout).
    if !health::ping_and_sync_clock(store.as_ref(), args.store_timeout.0).await {
        tracing::warn!("store does not answer yet; using this host's clock until it does");
    }
    if clock::offset_ms().abs() > 1_000 {
        tracing::warn!(
            offset_ms = clock::offset_ms(),
            "this host's clock differs from the store's by over a second; using the store's"
        );
    }
    let (drain_tx, drain_rx) = watch::channel(false);
    let feed = Feed::new(store.log_partitions());
    tokio::spawn(feed.clone().run(store.clone(), drain_rx.clone()));

    let (store_ok_tx, store_ok) = watch::channel(false);
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    reporter
        .set_service_status(SERVICE_NAME, ServingStatus::NotServing)
        .await;
    // Alive from here: the port is bound and the process answers.
    reporter
        .set_service_status(LIVENESS_SERVICE, ServingStatus::Serving)
        .await;
    health::spawn(
        store.clone(),
        feed.clone(),
        reporter.clone(),
        store_ok_tx,
        drain_rx.clone(),
        args.store_timeout.0,
    );

    keyload::reload_on_sighup(
        keys.clone(),
        tenants.clone(),
        args.clone(),
        drain_rx.clone(),
    );

    // Reflection in both versions: grpc.reflection.v1, and v1alpha for the
    // clients that only ask for it (Python's grpcio-reflection, older
    // grpcurl, grpcui, Postman).
    let reflection_builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection = reflection_builder()
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let reflection_v1alpha = reflection_builder()
        .build_v1alpha()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;

    {
        let state = admin::AdminState {
            keys: keys.clone(),
            feed: feed.clone(),
            store_ok,
            jwks_cache_control: format!("public, max-age={}", args.jwks_max_age.0.as_secs()),
        };
        let limits = web::HttpLimits::new(args.admin_max_connections, &args);
        let stop = drained(drain_rx.clone());
        tokio::spawn(async move {
            admin::serve(admin, state, limits, stop).await;
        });
    }

    let policy = args.policy();
    audit::configure(args.audit);
    let caller_limits =
        caller_limits::CallerLimitLayer::new(store.clone(), policy.caller_rates.clone());
    let authority = Authority::new(store, keys, tenants, feed, policy, drain_rx.clone());
    if let Some(cache) = authority.verifier.cache() {
        // Weak: the server (and its cache) may end before the process.
        let cache = std::sync::Arc::downgrade(cache);
        telemetry::on_render(move || match cache.upgrade() {
            Some(cache) => {
                telemetry::record_verify_cache(&cache.stats());
                true
            }
            None => false,
        });
    }
    let authority = std::sync::Arc::new(authority);
    if let Some(http) = http {
        spawn_oauth(
            http,
            &args,
            authority.clone(),
            callers.clone(),
            drain_rx.clone(),
        )?;
    }
    let service = pb::token_authority_server::TokenAuthorityServer::from_arc(authority.clone())
        .max_decoding_message_size(error::MAX_REQUEST_BYTES);
    // Envoy's external authorization, beside the authority (authority/ext_authz.rs).
    let ext_authz =
        envoy_types::ext_authz::v3::pb::AuthorizationServer::from_arc(authority.clone())
            .max_decoding_message_size(error::MAX_REQUEST_BYTES);

    let (draining_tx, draining_rx) = tokio::sync::oneshot::channel::<()>();
    let drain = async move {
        shutdown.await;
        tracing::info!("shutting down: NOT_SERVING, draining in-flight calls");
        reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        reporter
            .set_service_status(SERVICE_NAME, ServingStatus::NotServing)
            .await;
        reporter
            .set_service_status(LIVENESS_SERVICE, ServingStatus::NotServing)
            .await;
        let _ = drain_tx.send(true);
        let _ = draining_tx.send(());
    };
    // What a peer can make the server hold (docs/security.md).
    let mut builder = tonic::transport::Server::builder()
        .max_concurrent_streams(args.max_concurrent_streams)
        .http2_keepalive_interval(Some(args.http2_keepalive_interval.0))
        .http2_keepalive_timeout(Some(args.http2_keepalive_timeout.0))
        .http2_max_local_error_reset_streams(Some(args.http2_max_resets))
        .timeout(args.request_timeout.0);
    if let Some(tls) = tls::server_config(&args)? {
        builder = builder.tls_config(tls)?;
    }
    let stream_caps = limits::StreamCapLayer::default()
        .cap(
            tessera_core::wire::WATCH_REVOCATIONS_PATH,
            args.max_watchers,
        )
        .cap("/grpc.health.v1.Health/Watch", args.max_health_watches);
    let incoming = limits::incoming(listener, args.max_connections, args.idle_timeout.0, "grpc");
    let server = builder
        .layer(trace::GrpcTraceLayer)
        .layer(telemetry::MetricsLayer)
        .layer(AuthLayer::new(callers))
        .layer(caller_limits)
        .layer(stream_caps)
        .layer(error::DecodeErrorLayer)
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(service)
        .add_service(ext_authz)
        .serve_with_incoming_shutdown(incoming, drain);
    let drain_timeout = args.drain_timeout.0;
    let deadline = async move {
        if draining_rx.await.is_ok() {
            tokio::time::sleep(drain_timeout).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = server => result?,
        () = deadline => tracing::warn!(?drain_timeout, "drain deadline passed; exiting with calls in flight"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// The OAuth HTTP endpoints on their own port (`--http-listen`).
fn spawn_oauth<S: Store>(
    listener: TcpListener,
    args: &ServeArgs,
    authority: Arc<Authority<S>>,
    callers: Callers,
    drain: watch::Receiver<bool>,
) -> Result<(), ServeError> {
    let local = listener
        .local_addr()
        .map_err(|e| ServeError::Config(e.to_string()))?;
    let tls = tls::http_acceptor(args)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let issuer_is_url = args.issuer.starts_with("https://") || args.issuer.starts_with("http://");
    let public_url = match &args.public_url {
        Some(url) => url.clone(),
        None if issuer_is_url => args.issuer.trim_end_matches('/').to_owned(),
        None => format!("{scheme}://{local}"),
    };
    tracing::info!(listen = %local, tls = tls.is_some(), %public_url, "OAuth HTTP endpoints");
    let settings = oauth::Settings {
        issuer: args.issuer.clone(),
        public_url,
        cors_origins: args.http_cors_origin.clone(),
        jwks_cache_control: format!("public, max-age={}", args.jwks_max_age.0.as_secs()),
        client_certificates: args.tls_client_ca.is_some(),
        token_endpoint: args.http_token_endpoint,
        token_rate_per_ip: args.http_token_rate_per_ip.limit(),
        token_rate: args.http_token_rate.limit(),
    };
    let app = oauth::router(authority, callers, settings);
    let limits = web::HttpLimits::new(args.max_connections, args);
    let stop = drained(drain);
    tokio::spawn(web::serve(listener, app, limits, tls, "http", stop));
    Ok(())
}

/// Resolves when the server starts draining.
async fn drained(mut drain: watch::Receiver<bool>) {
    let _ = drain.wait_for(|d| *d).await;
}
