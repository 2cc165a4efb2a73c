//! Errors, one enum per layer, and the one exhaustive mapping onto
//! `tonic::Status` with a `google.rpc.ErrorInfo` detail (DESIGN.md §3).
//!
//! The `match` in [`to_status`] has no `_` arm on purpose: a new variant does
//! not compile until it has a code and a reason. Messages are short, English,
//! and never carry internals or secrets.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{BadRequest, ErrorDetail, ErrorInfo, FieldViolation, RetryInfo, StatusExt};

/// The `ErrorInfo.domain` of every error Tessera returns.
pub const ERROR_DOMAIN: &str = "tessera";

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
}

/// One bad field of a request: the proto field path and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: &'static str,
    pub description: String,
}

impl Violation {
    pub fn new(field: &'static str, description: impl Into<String>) -> Self {
        Self {
            field,
            description: description.into(),
        }
    }
}

/// Everything an RPC can answer with other than success.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("token is malformed")]
    TokenMalformed,
    #[error("token signature is invalid")]
    TokenSignatureInvalid,
    #[error("token has expired")]
    TokenExpired,
    #[error("token is not yet valid")]
    TokenNotYetValid,
    #[error("token has been revoked")]
    TokenRevoked,
    #[error("token issuer does not match")]
    IssuerMismatch,
    #[error("token audience does not match")]
    AudienceMismatch,
    #[error("device fingerprint does not match")]
    FingerprintMismatch,
    #[error("refresh token is invalid")]
    RefreshTokenInvalid,
    #[error("refresh token was already used; the session has been revoked")]
    RefreshTokenReused,
    #[error("caller is not authenticated")]
    CallerUnauthenticated,
    #[error("token lacks a required scope")]
    ScopeMissing,
    #[error("caller is not allowed to call this method")]
    CallerNotAllowed,
    #[error("invalid argument")]
    InvalidArgument(Vec<Violation>),
    /// A `WatchRevocations` cursor that is malformed, from another
    /// deployment, or ahead of the log: accepting it would silence the feed.
    #[error("after_cursor is not a position of this revocation feed; resume with an empty cursor and include_snapshot")]
    CursorInvalid,
    #[error("rate limited")]
    RateLimited { retry_after: Duration },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bug or an impossible state; logged, reported as INTERNAL.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(field: &'static str, description: impl Into<String>) -> Self {
        Error::InvalidArgument(vec![Violation::new(field, description)])
    }

    /// The `ErrorInfo.reason` of DESIGN.md §3 (or `INTERNAL`).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::TokenMalformed => "TOKEN_MALFORMED",
            Error::TokenSignatureInvalid => "TOKEN_SIGNATURE_INVALID",
            Error::TokenExpired => "TOKEN_EXPIRED",
            Error::TokenNotYetValid => "TOKEN_NOT_YET_VALID",
            Error::TokenRevoked => "TOKEN_REVOKED",
            Error::IssuerMismatch => "ISSUER_MISMATCH",
            Error::AudienceMismatch => "AUDIENCE_MISMATCH",
            Error::FingerprintMismatch => "FINGERPRINT_MISMATCH",
            Error::RefreshTokenInvalid => "REFRESH_TOKEN_INVALID",
            Error::RefreshTokenReused => "REFRESH_TOKEN_REUSED",
            Error::CallerUnauthenticated => "CALLER_UNAUTHENTICATED",
            Error::ScopeMissing => "SCOPE_MISSING",
            Error::CallerNotAllowed => "CALLER_NOT_ALLOWED",
            Error::InvalidArgument(_) => "FIELD_INVALID",
            Error::CursorInvalid => "CURSOR_INVALID",
            Error::RateLimited { .. } => "RATE_LIMITED",
            Error::Store(_) => "STORE_UNAVAILABLE",
            Error::Internal(_) => "INTERNAL",
        }
    }

    fn code(&self) -> Code {
        match self {
            Error::TokenMalformed
            | Error::TokenSignatureInvalid
            | Error::TokenExpired
            | Error::TokenNotYetValid
            | Error::TokenRevoked
            | Error::IssuerMismatch
            | Error::AudienceMismatch
            | Error::FingerprintMismatch
            | Error::RefreshTokenInvalid
            | Error::RefreshTokenReused
            | Error::CallerUnauthenticated => Code::Unauthenticated,
            Error::ScopeMissing | Error::CallerNotAllowed => Code::PermissionDenied,
            Error::InvalidArgument(_) | Error::CursorInvalid => Code::InvalidArgument,
            Error::RateLimited { .. } => Code::ResourceExhausted,
            Error::Store(_) => Code::Unavailable,
            Error::Internal(_) => Code::Internal,
        }
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        to_status(&err)
    }
}

/// The single mapping from [`Error`] to a gRPC status with rich details.
pub fn to_status(err: &Error) -> Status {
    let info = ErrorDetail::ErrorInfo(ErrorInfo::new(
        err.reason(),
        ERROR_DOMAIN,
        HashMap::<String, String>::new(),
    ));
    let mut details = vec![info];
    let message = match err {
        Error::InvalidArgument(violations) => {
            details.push(ErrorDetail::BadRequest(BadRequest::new(
                violations
                    .iter()
                    .map(|v| FieldViolation::new(v.field, v.description.clone()))
                    .collect::<Vec<_>>(),
            )));
            let fields: Vec<&str> = violations.iter().map(|v| v.field).collect();
            format!("invalid argument: {}", fields.join(", "))
        }
        Error::CursorInvalid => {
            details.push(ErrorDetail::BadRequest(BadRequest::new(vec![
                FieldViolation::new("after_cursor", "not a position of this revocation feed"),
            ])));
            err.to_string()
        }
        Error::RateLimited { retry_after } => {
            details.push(ErrorDetail::RetryInfo(RetryInfo::new(Some(*retry_after))));
            err.to_string()
        }
        // Internals stay in the logs.
        Error::Store(_) => "token store unavailable, retry later".to_owned(),
        Error::Internal(_) => "internal error".to_owned(),
        Error::TokenMalformed
        | Error::TokenSignatureInvalid
        | Error::TokenExpired
        | Error::TokenNotYetValid
        | Error::TokenRevoked
        | Error::IssuerMismatch
        | Error::AudienceMismatch
        | Error::FingerprintMismatch
        | Error::RefreshTokenInvalid
        | Error::RefreshTokenReused
        | Error::CallerUnauthenticated
        | Error::ScopeMissing
        | Error::CallerNotAllowed => err.to_string(),
    };
    Status::with_error_details_vec(err.code(), message, details)
}

/// The reason of a status returned by Tessera, if it carries one.
pub fn status_reason(status: &Status) -> Option<String> {
    status.get_details_error_info().map(|i| i.reason)
}
