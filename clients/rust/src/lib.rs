//! `tessera-client`: call Tessera from Rust.
//!
//! - [`TesseraClient`]: typed calls over the generated stubs, with the API key.
//! - [`TokenSource`]: holds a session's pair, refreshes it ahead of expiry
//!   (scheduled from `expires_in`, so a skewed local clock does not matter),
//!   single-flight across concurrent callers; [`TokenSource::call`] is the
//!   silent refresh: on `TOKEN_EXPIRED` it refreshes once and retries once,
//!   and it picks up `x-new-token`.
//! - [`BearerInterceptor`]: a tonic interceptor attaching `authorization: Bearer …`.
//! - [`LocalVerifier`]: verifies access tokens in process with the server's
//!   own checks and reason codes, from the JWK set and the revocation feed;
//!   fails closed while its cache is out of sync.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use tessera_core::dpop::DpopKey;
pub use tessera_core::error::TokenError;
pub use tessera_core::tokens::{AccessClaims, CacheBounds, CacheStats};
use tessera_core::wire::reason as code;
use tonic::Status;

mod client;
mod source;
mod verifier;

pub use client::TesseraClient;
pub use source::{BearerInterceptor, TokenSource};
pub use verifier::{LocalVerifier, VerifierOptions, VerifyError};
/// Client stubs of `tessera.v1`, generated from the repository's proto and
/// checked in (`tests/stubs.rs` regenerates and compares them).
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    include!("pb/tessera.v1.rs");
}

/// What a client call can end in.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The session is over (revoked, expired, or its refresh token was
    /// reused): sign the user in again; do not retry.
    #[error("session ended ({reason}); sign in again")]
    SessionEnded {
        /// The reason code the server gave.
        reason: String,
    },
    /// Any other failure of a call; see [`reason`] for its code.
    #[error("call failed: {0}")]
    Rpc(Status),
    /// No connection to the server.
    #[error("cannot connect: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The call could not be made as asked (a bad address, a non-ASCII API
    /// key, a response without tokens).
    #[error("invalid argument: {0}")]
    Invalid(String),
}

impl ClientError {
    /// The gRPC code of the failure, as the server gave it. The refusals
    /// folded into [`ClientError::SessionEnded`] (reused or invalid refresh
    /// token, revoked) are all `Unauthenticated` on the wire; a failed
    /// connection is `Unavailable`; a call that could not be made as asked
    /// is `InvalidArgument`.
    ///
    /// ```
    /// use tessera_client::ClientError;
    /// let ended = ClientError::SessionEnded { reason: "TOKEN_REVOKED".into() };
    /// assert_eq!(ended.code(), tonic::Code::Unauthenticated);
    /// let limited = ClientError::from(tonic::Status::resource_exhausted("slow down"));
    /// assert_eq!(limited.code(), tonic::Code::ResourceExhausted);
    /// ```
    pub fn code(&self) -> tonic::Code {
        match self {
            ClientError::Rpc(s) => s.code(),
            ClientError::SessionEnded { .. } => tonic::Code::Unauthenticated,
            ClientError::Transport(_) => tonic::Code::Unavailable,
            ClientError::Invalid(_) => tonic::Code::InvalidArgument,
        }
    }
}

impl From<Status> for ClientError {
    fn from(s: Status) -> Self {
        match reason(&s) {
            Some(r)
                if [
                    code::REFRESH_TOKEN_REUSED,
                    code::REFRESH_TOKEN_INVALID,
                    code::TOKEN_REVOKED,
                ]
                .contains(&r.as_str()) =>
            {
                ClientError::SessionEnded { reason: r }
            }
            _ => ClientError::Rpc(s),
        }
    }
}

/// The `ErrorInfo.reason` of a status from Tessera.
pub fn reason(status: &Status) -> Option<String> {
    use tonic_types::StatusExt;
    status.get_details_error_info().map(|i| i.reason)
}
