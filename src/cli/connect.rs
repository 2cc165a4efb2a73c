//! The channel of a client subcommand: `--addr`, TLS from `--ca`,
//! `--cert` and `--key`, and the SDK client on it with `--api-key`.

use std::path::PathBuf;
use std::time::Duration;

use tessera_client::TesseraClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use super::{fail, CliError, ConnectArgs};

/// Connect to `--addr` and wrap the channel in the SDK's client.
pub(super) async fn client(c: &ConnectArgs) -> Result<TesseraClient, CliError> {
    let mut endpoint = Channel::from_shared(c.addr.clone())
        .map_err(|e| fail(format!("invalid --addr: {e}")))?
        .connect_timeout(Duration::from_secs(5));
    if let Some(tls) = client_tls(c)? {
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| fail(format!("TLS: {e}")))?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| fail(format!("cannot connect to {}: {e}", c.addr)))?;
    TesseraClient::new(channel, c.api_key.as_deref()).map_err(|_| fail("invalid --api-key"))
}

/// TLS of an `https://` --addr: --ca (else the system's roots), and the
/// client certificate of --cert/--key. TLS flags with `http://` are refused
/// rather than ignored.
fn client_tls(c: &ConnectArgs) -> Result<Option<ClientTlsConfig>, CliError> {
    let https = c.addr.to_ascii_lowercase().starts_with("https://");
    if !https {
        if c.ca.is_some() || c.cert.is_some() {
            return Err(fail("--ca, --cert and --key need an https:// --addr"));
        }
        return Ok(None);
    }
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|e| fail(format!("cannot read {}: {e}", p.display())))
    };
    let mut tls = ClientTlsConfig::new();
    tls = match &c.ca {
        Some(ca) => tls.ca_certificate(Certificate::from_pem(read(ca)?)),
        None => {
            let roots = rustls_native_certs::load_native_certs().certs;
            tls.ca_certificates(roots.into_iter().map(|der| {
                Certificate::from_pem(pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec())))
            }))
        }
    };
    if let (Some(cert), Some(key)) = (&c.cert, &c.key) {
        tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(Some(tls))
}
