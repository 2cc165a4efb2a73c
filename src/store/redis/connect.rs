//! From a URL to fred's configuration (credentials redacted in every
//! error, TLS set up by [`super::tls`]), and the server version check.

use std::sync::Arc;
use std::time::Duration;

use fred::prelude::*;
use fred::types::config::TlsConnector;
use fred::types::InfoKind;

use super::tls::{self, RedisTls};
use crate::store::StoreError;

/// The oldest Redis major version served: sharded pub/sub (`SPUBLISH`,
/// `SSUBSCRIBE`) came with Redis 7.
pub const MIN_REDIS_MAJOR: u32 = 7;

/// fred's configuration of `url`. A TLS URL gets the connector of
/// [`tls::client_config`] and is probed before anything else: TLS that
/// cannot be honoured is an error here, never a plaintext connection.
pub(super) async fn config(
    url: &str,
    tls_files: &RedisTls,
    timeout: Duration,
) -> Result<Config, StoreError> {
    let uses_tls = tls::url_uses_tls(url);
    let parsed = if uses_tls {
        tls::plaintext_scheme(url)
    } else {
        url.to_owned()
    };
    let mut config = Config::from_url(&parsed).map_err(|e| {
        // fred's message may quote the URL: only the redacted one goes out.
        let redacted = redact_url(url);
        let why = e
            .details()
            .replace(&parsed, &redacted)
            .replace(url, &redacted);
        StoreError::Unavailable(format!("invalid Redis URL {redacted}: {why}"))
    })?;
    if !uses_tls {
        return Ok(config);
    }
    let client_config = Arc::new(tls::client_config(tls_files)?);
    let connector = tokio_rustls::TlsConnector::from(client_config.clone());
    config.tls = Some(TlsConnector::from(connector).into());
    for host in config.server.hosts() {
        if tls::probe(client_config.clone(), &host.host, host.port, timeout).await? {
            return Ok(config);
        }
    }
    tracing::warn!("no Redis host answered yet; TLS is checked when one does");
    Ok(config)
}

/// Refuse a Redis older than [`MIN_REDIS_MAJOR`] (its error is a layout
/// error: a startup error, or every command's error if Redis was not
/// reachable at start-up).
pub(super) async fn check_version(client: &Client) -> Result<(), StoreError> {
    let info: String = client
        .info(Some(InfoKind::Server))
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    match version(&info) {
        Some((major, full)) if major < MIN_REDIS_MAJOR => {
            let message = format!(
                "Redis {full} is too old: Tessera needs Redis {MIN_REDIS_MAJOR} or later (sharded pub/sub, SPUBLISH/SSUBSCRIBE)"
            );
            tracing::error!("{message}");
            Err(StoreError::Layout(message))
        }
        Some(_) => Ok(()),
        None => {
            tracing::warn!("INFO server names no redis_version; assuming Redis 7 or later");
            Ok(())
        }
    }
}

/// The major and full version in `INFO server`'s `redis_version:` line.
fn version(info: &str) -> Option<(u32, &str)> {
    let full = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("redis_version:"))?
        .trim();
    let major = full.split('.').next()?.parse().ok()?;
    Some((major, full))
}

/// `url` with its credentials replaced by `***`, for logs and errors: the
/// user and password before `@`, and query parameters whose name mentions a
/// password (fred's `sentinelPassword`).
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let authority = match authority.rsplit_once('@') {
        Some((_, hosts)) => format!("***@{hosts}"),
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        None => tail.to_owned(),
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.to_ascii_lowercase().contains("password") => {
                        format!("{k}=***")
                    }
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
    };
    if scheme.is_empty() {
        format!("{authority}{tail}")
    } else {
        format!("{scheme}://{authority}{tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            version("# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n"),
            Some((7, "7.0.15"))
        );
        assert_eq!(version("redis_version:6.2.1\n"), Some((6, "6.2.1")));
        assert_eq!(version("nothing"), None);
    }
}
