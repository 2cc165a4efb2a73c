//! The store's own errors. Nothing here knows about gRPC: the mapping onto
//! `tonic::Status` lives a layer up, in `crate::error`.

/// A storage failure. The message is for logs only; clients see
/// `STORE_UNAVAILABLE`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store did not answer (connection refused, timeout, failover).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store answered with something we did not write.
    #[error("store returned unexpected data: {0}")]
    Corrupt(String),
    /// The store holds a deployment of another layout (`--redis-partitions`).
    #[error("{0}")]
    Layout(String),
    /// `rediss://` that cannot be honoured: a certificate that does not
    /// verify, a plaintext port, a refused client certificate, bad PEM.
    #[error("Redis TLS: {0}")]
    Tls(String),
}
