//! Tessera: a gRPC token authority.
//!
//! [`serve`] runs the whole authority on a listener until a shutdown future
//! resolves; `main.rs` and the integration tests both call it.
#![forbid(unsafe_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic_health::ServingStatus;

pub mod admin;
pub mod callers;
pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod feed;
pub mod limits;
pub mod service;
pub mod signals;
pub mod store;
pub mod telemetry;

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

use callers::{AuthLayer, Callers};
use config::ServeArgs;
use feed::Feed;
use keys::{KeyRing, KeySet};
use service::{Authority, Policy};
use store::memory::MemoryStore;
use store::redis::RedisStore;
use store::Store;

/// The fully qualified gRPC service name, as health checks know it.
pub use tessera_core::wire::SERVICE_NAME;
/// How often the store is pinged for the health status.
const HEALTH_INTERVAL: Duration = Duration::from_millis(500);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    #[error(transparent)]
    Store(#[from] error::StoreError),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection: {0}")]
    Reflection(String),
}

/// Load the signing keys the configuration names, or make an ephemeral one.
pub fn load_keys(args: &ServeArgs) -> Result<KeySet, keys::KeyError> {
    match &args.signing_key {
        Some(path) => {
            let active = KeySet::load(path, args.signing_alg)?;
            // HS256 only when explicitly configured: then a verify key that
            // is not PEM is the previous (or next) HS256 secret.
            let hs256 = args.signing_alg == Some(config::KeyAlg::Hs256);
            let older = args
                .verify_key
                .iter()
                .map(|p| KeySet::load_verifying(p, hs256))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(active.with_older(older))
        }
        None => {
            if args.signing_alg == Some(config::KeyAlg::Hs256) {
                return Err(keys::KeyError::ShortSecret("(no --signing-key)".into()));
            }
            KeySet::ephemeral()
        }
    }
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
    args.validate().map_err(ServeError::Config)?;
    let local = listener
        .local_addr()
        .map_err(|e| ServeError::Config(e.to_string()))?;
    let callers = caller_policy(&args, local)?;
    let keys = Arc::new(KeyRing::new(load_keys(&args)?));
    if keys.current().ephemeral {
        tracing::warn!(kid = %keys.current().signer.kid, "no --signing-key: using an ephemeral EdDSA key; tokens will not verify after a restart or on other replicas");
    }
    let parts = Parts {
        keys,
        callers,
        args,
        listener,
        admin,
    };
    match parts.args.redis_url.clone() {
        Some(url) => {
            let store = RedisStore::connect(&url, parts.args.store_timeout.0).await?;
            run(Arc::new(store), parts, shutdown).await
        }
        None => run(Arc::new(MemoryStore::new()), parts, shutdown).await,
    }
}

/// Everything `run` needs besides the store.
struct Parts {
    keys: Arc<KeyRing>,
    callers: Callers,
    args: ServeArgs,
    listener: TcpListener,
    admin: TcpListener,
}

/// TLS on the gRPC port (rustls), with client certificates required when
/// `--tls-client-ca` is given.
fn tls_config(args: &ServeArgs) -> Result<Option<tonic::transport::ServerTlsConfig>, ServeError> {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let read = |p: &std::path::Path| {
        std::fs::read(p)
            .map_err(|e| ServeError::Config(format!("cannot read {}: {e}", p.display())))
    };
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(read(cert)?, read(key)?));
    if let Some(ca) = &args.tls_client_ca {
        tls = tls
            .client_ca_root(Certificate::from_pem(read(ca)?))
            .client_auth_optional(false);
    }
    Ok(Some(tls))
}

/// docs/design.md §8: with no callers configured, anonymous calls only on a
/// loopback address or with `--allow-anonymous`; otherwise refuse to start.
fn caller_policy(args: &ServeArgs, local: std::net::SocketAddr) -> Result<Callers, ServeError> {
    match &args.callers {
        Some(path) => {
            let list = Callers::load(path).map_err(ServeError::Config)?;
            if list.is_empty() {
                return Err(ServeError::Config(format!("callers file {} lists no [[caller]]", path.display())));
            }
            Ok(Callers::Listed(Arc::new(list)))
        }
        None if local.ip().is_loopback() || args.allow_anonymous => Ok(Callers::Anonymous),
        None => Err(ServeError::Config(format!(
            "refusing to serve anonymous callers on non-loopback address {local}: give --callers FILE, or --allow-anonymous if a proxy in front authenticates callers"
        ))),
    }
}

/// Ping the store and, when it has a clock, adopt its time (see
/// [`clock`]): the health task does this every tick. Returns whether the
/// store answered.
async fn ping_and_sync_clock<S: Store>(store: &S, timeout: Duration) -> bool {
    let sent = clock::local_ms();
    let answer = tokio::time::timeout(timeout, store.ping()).await;
    let received = clock::local_ms();
    match answer {
        Ok(Ok(Some(server_ms))) => {
            if let Some(offset) = clock::sync(sent, server_ms, received) {
                metrics::gauge!(telemetry::CLOCK_OFFSET).set(offset as f64 / 1000.0);
            }
            true
        }
        Ok(Ok(None)) => true,
        Ok(Err(_)) | Err(_) => false,
    }
}

async fn run<S: Store>(
    store: Arc<S>,
    parts: Parts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let Parts {
        keys,
        callers,
        args,
        listener,
        admin,
    } = parts;
    telemetry::handle();
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
        kid = %keys.current().signer.kid,
        alg = keys::alg_name(keys.current().signer.alg),
        ephemeral_key = keys.current().ephemeral,
        "tessera serving"
    );
    // Before anything is minted: take the store's clock (a replica whose own
    // clock is off must not issue sessions that outlive a logout).
    if !ping_and_sync_clock(store.as_ref(), args.store_timeout.0).await {
        tracing::warn!("store does not answer yet; using this host's clock until it does");
    }
    if clock::offset_ms().abs() > 1_000 {
        tracing::warn!(
            offset_ms = clock::offset_ms(),
            "this host's clock differs from the store's by over a second; using the store's"
        );
    }
    let (drain_tx, drain_rx) = watch::channel(false);
    let feed = Feed::new();
    tokio::spawn(feed.clone().run(store.clone(), drain_rx.clone()));

    let (store_ok_tx, store_ok) = watch::channel(false);
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    reporter
        .set_service_status(SERVICE_NAME, ServingStatus::NotServing)
        .await;
    {
        let store = store.clone();
        let feed = feed.clone();
        let reporter = reporter.clone();
        let mut drain = drain_rx.clone();
        let timeout = args.store_timeout.0;
        tokio::spawn(async move {
            let mut last = None;
            let mut tick = tokio::time::interval(HEALTH_INTERVAL);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = drain.changed() => return,
                }
                let store_ok = ping_and_sync_clock(store.as_ref(), timeout).await;
                store_ok_tx.send_replace(store_ok);
                // SERVING needs the store and a revocation cache in sync with
                // the feed (an out-of-sync replica would put every Verify on
                // the store, so it takes itself out of rotation until resynced).
                let ok = store_ok && feed.in_sync();
                if last != Some(ok) {
                    let status = if ok {
                        ServingStatus::Serving
                    } else {
                        ServingStatus::NotServing
                    };
                    if ok {
                        tracing::info!("store answers: SERVING");
                    } else {
                        tracing::warn!("store does not answer: NOT_SERVING");
                    }
                    reporter.set_service_status("", status).await;
                    reporter.set_service_status(SERVICE_NAME, status).await;
                    last = Some(ok);
                }
            }
        });
    }

    // SIGHUP: re-read every key file; a bad file keeps the old set.
    #[cfg(unix)]
    {
        let keys = keys.clone();
        let args = args.clone();
        let mut drain = drain_rx.clone();
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = hup.recv() => {}
                        _ = drain.changed() => return,
                    }
                    match load_keys(&args) {
                        Ok(set) if !set.ephemeral => {
                            tracing::info!(kid = %set.signer.kid, verifying = ?set.kids(), "keys reloaded");
                            keys.replace(set);
                        }
                        Ok(_) => tracing::warn!(
                            "SIGHUP ignored: no --signing-key to reload (ephemeral key kept)"
                        ),
                        Err(e) => {
                            tracing::error!(error = %e, "key reload failed; keeping the current keys")
                        }
                    }
                }
            });
        }
    }

    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;

    {
        let state = admin::AdminState {
            keys: keys.clone(),
            feed: feed.clone(),
            store_ok,
            jwks_cache_control: format!("public, max-age={}", args.jwks_max_age.0.as_secs()),
        };
        let mut drain = drain_rx.clone();
        let limits = admin::AdminLimits {
            max_connections: args.admin_max_connections,
            idle_timeout: args.idle_timeout.0,
            header_read_timeout: args.header_read_timeout.0,
        };
        tokio::spawn(async move {
            let stop = async move {
                let _ = drain.wait_for(|d| *d).await;
            };
            admin::serve(admin, state, limits, stop).await;
        });
    }

    let policy = Policy::from_args(&args);
    let authority = Authority::new(store, keys, feed, policy, drain_rx);
    let service = pb::token_authority_server::TokenAuthorityServer::new(authority)
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
    if let Some(tls) = tls_config(&args)? {
        builder = builder.tls_config(tls)?;
    }
    let stream_caps = limits::StreamCapLayer::default()
        .cap(
            "/tessera.v1.TokenAuthority/WatchRevocations",
            args.max_watchers,
        )
        .cap("/grpc.health.v1.Health/Watch", args.max_health_watches);
    let incoming = limits::incoming(listener, args.max_connections, args.idle_timeout.0, "grpc");
    let server = builder
        .layer(telemetry::MetricsLayer)
        .layer(AuthLayer::new(callers))
        .layer(stream_caps)
        .layer(error::DecodeErrorLayer)
        .add_service(health)
        .add_service(reflection)
        .add_service(service)
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
