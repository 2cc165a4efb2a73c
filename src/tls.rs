//! TLS on the gRPC port.

use crate::config::ServeArgs;
use crate::ServeError;

/// TLS on the gRPC port (rustls), with client certificates required when
/// `--tls-client-ca` is given.
pub(crate) fn server_config(
    args: &ServeArgs,
) -> Result<Option<tonic::transport::ServerTlsConfig>, ServeError> {
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
