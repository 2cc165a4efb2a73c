//! The assembly: the configuration builds each part of the server, an
//! [`App`] holds the built parts and their bound addresses, and
//! [`App::run`] runs them until shutdown, then drains (the shape of
//! linkerd2-proxy's `app` crate).
//!
//! ```text
//! ServeArgs ─► App::build ─► store ─► startup (clock) ─► feed, health, key reload
//!                                   ─► admin (HTTP) ─► authority ─► OAuth (HTTP) ─► gRPC
//!           App { addresses, parts } ─► App::run(shutdown) ─► Drain
//! ```
//!
//! Every start-up error (a bad callers or keys file, a store that cannot
//! be reached as configured, bad TLS files) comes from [`App::build`],
//! before anything serves.

mod drain;
mod grpc;
mod http;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::authority::{tenants, Authority};
use crate::config::ServeArgs;
use crate::feed::Feed;
use crate::keys::{self, KeyRing};
use crate::store::memory::MemoryStore;
use crate::store::redis::{RedisStore, RedisTls};
use crate::store::{Instrumented, Store};
use crate::transport::callers::Callers;
use crate::transport::health;
use crate::{audit, clock, keyload, telemetry};

pub use drain::LIVENESS_SERVICE;

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
    Store(#[from] crate::store::StoreError),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection: {0}")]
    Reflection(String),
}

/// The listeners the server serves on. The gRPC one is always given (the
/// binary binds `--listen`, tests port 0); `None` binds the configured
/// address (`--admin-listen`, and `--http-listen` if it is set).
pub struct Listeners {
    pub grpc: TcpListener,
    pub admin: Option<TcpListener>,
    pub http: Option<TcpListener>,
}

impl Listeners {
    /// Only the gRPC listener given: the others as configured.
    pub fn grpc(grpc: TcpListener) -> Self {
        Listeners {
            grpc,
            admin: None,
            http: None,
        }
    }
}

/// The built server: its parts, not yet running, and the addresses they
/// are bound to.
pub struct App {
    grpc_addr: SocketAddr,
    admin_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    /// The gRPC server; it stops when the drain tells it to.
    grpc: BoxFuture<'static, Result<(), tonic::transport::Error>>,
    /// Everything that runs beside it until the drain: the revocation
    /// feed, the health loop, the SIGHUP key reload, the admin and OAuth
    /// HTTP servers.
    tasks: Vec<BoxFuture<'static, ()>>,
    drain: drain::Drain,
}

/// What every part is built from besides the store.
struct Loaded {
    args: ServeArgs,
    grpc: TcpListener,
    admin: TcpListener,
    http: Option<TcpListener>,
    callers: Callers,
    keys: Arc<KeyRing>,
    tenants: Arc<tenants::TenantRing>,
}

impl App {
    /// Check the configuration, load what it names (callers, keys,
    /// tenants), connect the store and build every part.
    pub async fn build(args: ServeArgs, listeners: Listeners) -> Result<App, ServeError> {
        args.validate().map_err(ServeError::Invalid)?;
        let loaded = Loaded::load(args, listeners).await?;
        match loaded.args.redis_url.clone() {
            Some(url) => {
                let args = &loaded.args;
                let tls = RedisTls {
                    ca: args.redis_tls_ca.clone(),
                    client: args.redis_tls_cert.clone().zip(args.redis_tls_key.clone()),
                };
                let store = RedisStore::connect_with(
                    &url,
                    &tls,
                    args.store_timeout.0,
                    args.redis_partitions,
                )
                .await?
                .wait_for_replicas(args.redis_wait_replicas)?;
                Self::assemble(Arc::new(Instrumented(store)), loaded).await
            }
            None => Self::assemble(Arc::new(Instrumented(MemoryStore::new())), loaded).await,
        }
    }

    /// The gRPC port's address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The admin HTTP port's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The OAuth HTTP port's address, when there is one (`--http-listen`).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Run every part until `shutdown` resolves, then drain: health goes
    /// `NOT_SERVING`, watch streams end, in-flight RPCs finish (within
    /// `--drain-timeout`).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        for task in self.tasks {
            tokio::spawn(task);
        }
        self.drain.run(self.grpc, shutdown).await
    }

    /// Build every part over `store`.
    async fn assemble<S: Store>(store: Arc<S>, loaded: Loaded) -> Result<App, ServeError> {
        let Loaded {
            args,
            grpc,
            admin,
            http,
            callers,
            keys,
            tenants,
        } = loaded;
        let grpc_addr = local_addr(&grpc)?;
        let admin_addr = local_addr(&admin)?;
        startup(store.as_ref(), &args, &keys, grpc_addr, admin_addr).await;
        let (drain_tx, drain_rx) = watch::channel(false);
        let feed = Feed::new(store.log_partitions());
        let mut tasks: Vec<BoxFuture<'static, ()>> =
            vec![Box::pin(feed.clone().run(store.clone(), drain_rx.clone()))];
        let (store_ok_tx, store_ok) = watch::channel(false);
        let (drain, health, stop) = drain::Drain::new(drain_tx, args.drain_timeout.0).await;
        tasks.push(Box::pin(health::follow(
            store.clone(),
            feed.clone(),
            drain.reporter(),
            store_ok_tx,
            drain_rx.clone(),
            args.store_timeout.0,
        )));
        tasks.extend(keyload::reload_on_sighup(
            keys.clone(),
            tenants.clone(),
            args.clone(),
            drain_rx.clone(),
        ));
        tasks.push(http::admin(&args, admin, &keys, &feed, store_ok, &drain_rx));
        let policy = args.policy();
        audit::configure(args.audit);
        let caller_rates = policy.caller_rates.clone();
        let authority = Arc::new(authority(
            store.clone(),
            policy,
            keys,
            tenants,
            feed,
            &drain_rx,
        ));
        let http_addr = match http {
            Some(http) => {
                let (addr, task) = http::oauth(&args, http, &authority, &callers, &drain_rx)?;
                tasks.push(task);
                Some(addr)
            }
            None => None,
        };
        let services = grpc::Services {
            store,
            caller_rates,
            authority,
            callers,
            health,
        };
        let grpc = grpc::GrpcConfig::new(&args)?.build(grpc, services, stop)?;
        Ok(App {
            grpc_addr,
            admin_addr,
            http_addr,
            grpc,
            tasks,
            drain,
        })
    }
}

impl Loaded {
    /// Bind what is not yet bound; load the callers (judged by each port's
    /// own address), the keys and the tenants file.
    async fn load(args: ServeArgs, listeners: Listeners) -> Result<Loaded, ServeError> {
        let admin = match listeners.admin {
            Some(l) => l,
            None => bind(args.admin_listen, "--admin-listen").await?,
        };
        let http = match (listeners.http, args.http_listen) {
            (Some(l), _) => Some(l),
            (None, Some(addr)) => Some(bind(addr, "--http-listen").await?),
            (None, None) => None,
        };
        let callers_config = args.callers_config();
        let callers = Callers::for_listener(&callers_config, local_addr(&listeners.grpc)?)
            .map_err(ServeError::Config)?;
        if let Some(http) = &http {
            // The OAuth port answers the same callers: anonymous only where
            // the gRPC port would allow it (a loopback address, or
            // --allow-anonymous), judged by its own address.
            Callers::for_listener(&callers_config, local_addr(http)?)
                .map_err(|e| ServeError::Config(format!("--http-listen: {e}")))?;
        }
        let (keys, tenants) = keyload::load_tenants(&args).map_err(ServeError::Config)?;
        let keys = Arc::new(KeyRing::new(keys));
        let default = keys.current().default_keys_arc();
        if default.ephemeral {
            tracing::warn!(kid = %default.signer.kid, "no --signing-key: using an ephemeral EdDSA key; tokens will not verify after a restart or on other replicas");
        }
        Ok(Loaded {
            args,
            grpc: listeners.grpc,
            admin,
            http,
            callers,
            keys,
            tenants: Arc::new(tenants::TenantRing::new(tenants)),
        })
    }
}

/// Metrics on, the start-up line logged, and the store's clock taken
/// before anything is minted (a replica whose own clock is off must not
/// issue sessions that outlive a logout).
async fn startup<S: Store>(
    store: &S,
    args: &ServeArgs,
    keys: &KeyRing,
    grpc: SocketAddr,
    admin: SocketAddr,
) {
    telemetry::handle();
    telemetry::record_build_info();
    let current = keys.current();
    let default = current.default_keys();
    tracing::info!(
        listen = %grpc,
        tls = args.tls_cert.is_some(),
        mtls = args.tls_client_ca.is_some(),
        admin = %admin,
        store = store.kind(),
        kid = %default.signer.kid,
        alg = keys::alg_name(default.signer.alg),
        ephemeral_key = default.ephemeral,
        tenants_with_keys = current.tenant_names().len(),
        "tessera serving"
    );
    if !health::ping_and_sync_clock(store, args.store_timeout.0).await {
        tracing::warn!("store does not answer yet; using this host's clock until it does");
    }
    if clock::offset_ms().abs() > 1_000 {
        tracing::warn!(
            offset_ms = clock::offset_ms(),
            "this host's clock differs from the store's by over a second; using the store's"
        );
    }
}

/// The authority over `store`, its verify cache's counters reported at
/// each scrape.
fn authority<S: Store>(
    store: Arc<S>,
    policy: crate::authority::Policy,
    keys: Arc<KeyRing>,
    tenants: Arc<tenants::TenantRing>,
    feed: Arc<Feed>,
    drain: &watch::Receiver<bool>,
) -> Authority<S> {
    let authority = Authority::new(store, keys, tenants, feed, policy, drain.clone());
    if let Some(cache) = authority.verifier.cache() {
        // Weak: the server (and its cache) may end before the process.
        let cache = Arc::downgrade(cache);
        telemetry::on_render(move || match cache.upgrade() {
            Some(cache) => {
                telemetry::record_verify_cache(&cache.stats());
                true
            }
            None => false,
        });
    }
    authority
}

async fn bind(addr: SocketAddr, flag: &str) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::Config(format!("cannot listen on {flag} {addr}: {e}")))
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, ServeError> {
    listener
        .local_addr()
        .map_err(|e| ServeError::Config(e.to_string()))
}

/// Resolves when the server starts draining.
async fn drained(mut drain: watch::Receiver<bool>) {
    let _ = drain.wait_for(|d| *d).await;
}
