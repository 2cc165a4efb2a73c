//! Redis over TLS: `rediss://` (and `rediss-sentinel://`,
//! `rediss-cluster://`) is real TLS or a startup error, never plaintext.
//!
//! fred is built with `enable-rustls` (rustls on aws-lc-rs, the provider of
//! the rest of the binary), but its own `rediss` default loads the system's
//! roots with no way to add a CA or a client certificate. So the URL is
//! parsed with its plaintext scheme and the TLS connector is built here:
//! `--redis-tls-ca` (else the system's roots), `--redis-tls-cert` and
//! `--redis-tls-key`, on an explicit aws-lc-rs provider.
//!
//! Before fred connects, [`probe`] makes one TLS connection to the first
//! host of the URL and sends `PING`: a certificate that does not verify, a
//! plaintext port, or a server that refuses our client certificate is a
//! startup error with the reason, rather than a replica that stays
//! NOT_SERVING while fred retries. An unreachable host is not: Redis may
//! come up later, and fred then connects over the same TLS settings.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::store::StoreError;

/// TLS settings of the Redis connection (`--redis-tls-*`).
#[derive(Debug, Clone, Default)]
pub struct RedisTls {
    /// CA bundle the server's certificate must chain to; `None` = the
    /// system's roots.
    pub ca: Option<PathBuf>,
    /// Client certificate chain and key, for `tls-auth-clients`.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// Whether a Redis URL asks for TLS (`rediss`, `valkeys`, with or without
/// `-cluster`/`-sentinel`).
pub fn url_uses_tls(url: &str) -> bool {
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    let scheme = scheme.to_ascii_lowercase();
    scheme.starts_with("rediss") || scheme.starts_with("valkeys")
}

/// `url` with its TLS scheme turned into the plaintext one (`rediss-cluster`
/// -> `redis-cluster`), for fred's parser; TLS is then set on the config.
pub(super) fn plaintext_scheme(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let lower = scheme.to_ascii_lowercase();
    let plain = if let Some(tail) = lower.strip_prefix("rediss") {
        format!("redis{tail}")
    } else if let Some(tail) = lower.strip_prefix("valkeys") {
        format!("valkey{tail}")
    } else {
        lower
    };
    format!("{plain}://{rest}")
}

fn tls_error(message: String) -> StoreError {
    StoreError::Tls(message)
}

/// The rustls client configuration of the Redis connection.
pub(super) fn client_config(tls: &RedisTls) -> Result<ClientConfig, StoreError> {
    let bad = |p: &Path, e: &dyn std::fmt::Display| {
        tls_error(format!("cannot read {}: {e}", p.display()))
    };
    let mut roots = RootCertStore::empty();
    match &tls.ca {
        Some(ca) => {
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| bad(ca, &e))? {
                roots
                    .add(cert.map_err(|e| bad(ca, &e))?)
                    .map_err(|e| bad(ca, &e))?;
            }
            if roots.is_empty() {
                return Err(tls_error(format!(
                    "--redis-tls-ca {}: no certificate in it",
                    ca.display()
                )));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(tls_error(
                    "rediss:// without --redis-tls-ca, and no system root certificate was found: give --redis-tls-ca".into(),
                ));
            }
        }
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(format!("TLS: {e}")))?
        .with_root_certificates(roots);
    match &tls.client {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| bad(cert, &e))?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| tls_error(format!("--redis-tls-cert/--redis-tls-key: {e}")))
        }
    }
}

/// One TLS connection to `host:port` and a `PING`: `Ok(true)` when a Redis
/// answered over TLS, `Ok(false)` when the host could not be reached (not
/// an error at start-up), and an error when TLS itself failed.
pub(super) async fn probe(
    config: Arc<ClientConfig>,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<bool, StoreError> {
    let timeout = timeout.max(Duration::from_secs(2));
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| tls_error(format!("Redis host {host} is not a TLS server name: {e}")))?;
    let tcp =
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(_)) | Err(_) => return Ok(false),
        };
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        tls_error(format!(
            "TLS to Redis at {host}:{port} failed ({what}): {e}. Is it a TLS port (tls-port), does --redis-tls-ca hold the CA of its certificate, and does it require a client certificate (--redis-tls-cert, --redis-tls-key)?"
        ))
    };
    let exchange = async {
        let connector = tokio_rustls::TlsConnector::from(config);
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| failed("handshake", &e))?;
        tls.write_all(b"PING\r\n")
            .await
            .map_err(|e| failed("write", &e))?;
        let mut reply = [0u8; 64];
        let n = tls.read(&mut reply).await.map_err(|e| failed("read", &e))?;
        // `+PONG`, or an error such as `-NOAUTH`: either way a Redis speaks
        // RESP over this TLS connection.
        match reply[..n].first() {
            Some(b'+' | b'-') => Ok(()),
            _ => Err(failed(
                "reply",
                &"the server closed the connection or did not answer PING",
            )),
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result.map(|()| true),
        Err(_) => Err(failed("timeout", &"no answer to the handshake and PING")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        for (url, tls, plain) in [
            ("rediss://h:1", true, "redis://h:1"),
            (
                "rediss-cluster://h:1?node=a:2",
                true,
                "redis-cluster://h:1?node=a:2",
            ),
            ("REDISS-SENTINEL://h:1", true, "redis-sentinel://h:1"),
            ("valkeys://h", true, "valkey://h"),
            ("redis://h:1", false, "redis://h:1"),
            ("redis-cluster://h", false, "redis-cluster://h"),
        ] {
            assert_eq!(url_uses_tls(url), tls, "{url}");
            assert_eq!(plaintext_scheme(url), plain, "{url}");
        }
    }
}
