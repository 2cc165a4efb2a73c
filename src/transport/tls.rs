//! TLS on the gRPC port and the OAuth HTTP port.

use std::path::PathBuf;

/// The certificate files of the gRPC and OAuth ports (`--tls-cert`,
/// `--tls-key`, `--tls-client-ca`).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Client certificates are verified against these roots.
    pub client_ca: Option<PathBuf>,
}

/// TLS on the gRPC port (rustls), with client certificates required when
/// `--tls-client-ca` is given.
pub(crate) fn server_config(
    files: Option<&TlsFiles>,
) -> Result<Option<tonic::transport::ServerTlsConfig>, String> {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let Some(files) = files else {
        return Ok(None);
    };
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let mut tls =
        ServerTlsConfig::new().identity(Identity::from_pem(read(&files.cert)?, read(&files.key)?));
    if let Some(ca) = &files.client_ca {
        tls = tls
            .client_ca_root(Certificate::from_pem(read(ca)?))
            .client_auth_optional(false);
    }
    Ok(Some(tls))
}

/// TLS on the OAuth HTTP port: the gRPC port's certificate and key; with
/// `--tls-client-ca`, a client certificate is verified when one is shown
/// but not required (the token endpoint serves public clients, and callers
/// may authenticate with an API key instead).
pub(crate) fn http_acceptor(
    files: Option<&TlsFiles>,
) -> Result<Option<tokio_rustls::TlsAcceptor>, String> {
    use std::sync::Arc;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls::{server::WebPkiClientVerifier, RootCertStore, ServerConfig};
    let Some(TlsFiles {
        cert,
        key,
        client_ca,
    }) = files
    else {
        return Ok(None);
    };
    let bad = |p: &std::path::Path, e: &dyn std::fmt::Display| {
        format!("cannot read {}: {e}", p.display())
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(cert, &e))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).map_err(|e| bad(ca, &e))? {
                roots
                    .add(c.map_err(|e| bad(ca, &e))?)
                    .map_err(|e| bad(ca, &e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("--tls-client-ca: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key_der)
        .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}
