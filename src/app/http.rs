//! The HTTP parts: the admin port (probes, metrics, JWKS) and the OAuth
//! endpoints (`--http-listen`).

use std::net::SocketAddr;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{drained, local_addr, ServeError};
use crate::authority::Authority;
use crate::config::ServeArgs;
use crate::feed::Feed;
use crate::keys::KeyRing;
use crate::store::Store;
use crate::transport::callers::Callers;
use crate::transport::{admin, oauth, tls, web};

/// The admin HTTP server on `listener`, until the drain.
pub(super) fn admin(
    args: &ServeArgs,
    listener: TcpListener,
    keys: &Arc<KeyRing>,
    feed: &Arc<Feed>,
    store_ok: watch::Receiver<bool>,
    drain: &watch::Receiver<bool>,
) -> BoxFuture<'static, ()> {
    let state = admin::AdminState {
        keys: keys.clone(),
        feed: feed.clone(),
        store_ok,
        jwks_cache_control: jwks_cache_control(args),
    };
    let limits = args.http_limits(args.admin_max_connections);
    Box::pin(admin::serve(
        listener,
        state,
        limits,
        drained(drain.clone()),
    ))
}

/// The OAuth HTTP endpoints on `listener`, until the drain; and the
/// address they answer on.
pub(super) fn oauth<S: Store>(
    args: &ServeArgs,
    listener: TcpListener,
    authority: &Arc<Authority<S>>,
    callers: &Callers,
    drain: &watch::Receiver<bool>,
) -> Result<(SocketAddr, BoxFuture<'static, ()>), ServeError> {
    let local = local_addr(&listener)?;
    let tls = tls::http_acceptor(args.tls_files().as_ref()).map_err(ServeError::Config)?;
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
        jwks_cache_control: jwks_cache_control(args),
        client_certificates: args.tls_client_ca.is_some(),
        token_endpoint: args.http_token_endpoint,
        token_rate_per_ip: args.http_token_rate_per_ip.limit(),
        token_rate: args.http_token_rate.limit(),
    };
    let app = oauth::router(authority.clone(), callers.clone(), settings);
    let limits = args.http_limits(args.max_connections);
    let stop = drained(drain.clone());
    Ok((
        local,
        Box::pin(web::serve(listener, app, limits, tls, "http", stop)),
    ))
}

/// `Cache-Control` of the JWK set on both ports (`--jwks-max-age`).
fn jwks_cache_control(args: &ServeArgs) -> String {
    format!("public, max-age={}", args.jwks_max_age.0.as_secs())
}
