//! The small configuration each transport part takes, built from the
//! command line here so that no part below the assembly reads
//! [`ServeArgs`].

use super::ServeArgs;
use crate::transport::callers::CallersConfig;
use crate::transport::tls::TlsFiles;
use crate::transport::web::HttpLimits;

impl ServeArgs {
    /// Where the callers come from (`--callers`, `--allow-anonymous`).
    pub(crate) fn callers_config(&self) -> CallersConfig {
        CallersConfig {
            file: self.callers.clone(),
            allow_anonymous: self.allow_anonymous,
        }
    }

    /// The limits of an HTTP port that takes `max_connections`, with the
    /// idle, header-read and request timeouts of the flags.
    pub(crate) fn http_limits(&self, max_connections: usize) -> HttpLimits {
        HttpLimits {
            max_connections,
            idle_timeout: self.idle_timeout.0,
            header_read_timeout: self.header_read_timeout.0,
            request_timeout: self.http_request_timeout.0,
        }
    }

    /// The certificate files of the TLS ports, when TLS is on
    /// (`--tls-cert` and `--tls-key`).
    pub(crate) fn tls_files(&self) -> Option<TlsFiles> {
        let (cert, key) = self.tls_cert.clone().zip(self.tls_key.clone())?;
        Some(TlsFiles {
            cert,
            key,
            client_ca: self.tls_client_ca.clone(),
        })
    }
}
