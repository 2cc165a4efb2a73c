//! Errors, one enum per layer, and the one exhaustive mapping onto
//! `tonic::Status` with a `google.rpc.ErrorInfo` detail (docs/design.md §3).
//!
//! The `match` in [`to_status`] has no `_` arm on purpose: a new variant does
//! not compile until it has a code and a reason. Messages are short, English,
//! and never carry internals or secrets.

use std::collections::HashMap;
use std::time::Duration;
use tessera_core::wire::Rpc;

use tonic::{Code, Status};
use tonic_types::{BadRequest, ErrorDetail, ErrorInfo, FieldViolation, RetryInfo, StatusExt};

pub use tessera_core::error::TokenError;
use tessera_core::wire::reason;
/// The `ErrorInfo.domain` of every error Tessera returns.
pub use tessera_core::wire::ERROR_DOMAIN;

use crate::store::StoreError;

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
    /// What the token core answers (signature, validity, issuer, audience,
    /// binding, revocation, scopes), its reason code included.
    #[error(transparent)]
    Token(TokenError),
    #[error("refresh token is invalid")]
    RefreshTokenInvalid,
    #[error("refresh token was already used; the session has been revoked")]
    RefreshTokenReused,
    #[error("caller is not authenticated")]
    CallerUnauthenticated,
    #[error("caller is not allowed to call this method")]
    CallerNotAllowed,
    /// A caller scoped to tenants acting on another tenant's subject,
    /// token, session or refresh token (or on one it cannot show is its
    /// own: see `service::tenancy`).
    #[error("caller may not act on this tenant")]
    TenantNotAllowed,
    #[error("invalid argument")]
    InvalidArgument(Vec<Violation>),
    /// An Exchange that would widen what the subject token gives or ask
    /// for what the caller may not; `message` says what (no secret in it).
    #[error("exchange not allowed: {message}")]
    ExchangeNotAllowed {
        refusal: ExchangeRefusal,
        message: String,
    },
    /// A `WatchRevocations` cursor that is malformed, from another
    /// deployment, or ahead of the log: accepting it would silence the feed.
    #[error("after_cursor is not a position of this revocation feed; resume with an empty cursor and include_snapshot")]
    CursorInvalid,
    #[error("rate limited")]
    RateLimited { retry_after: Duration },
    /// The subject has as many live sessions as `--max-sessions-per-subject`
    /// allows, and the cap refuses rather than evicts.
    #[error("the subject has the most live sessions allowed")]
    SessionLimit,
    /// A DPoP proof without the server's current nonce (`--dpop-nonce`):
    /// `DPOP_PROOF_INVALID`, with the nonce to use in `dpop-nonce`.
    #[error("DPoP proof must carry the server nonce (see the dpop-nonce metadata)")]
    DpopNonce { nonce: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bug or an impossible state; logged, reported as INTERNAL.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What an Exchange asked for that it may not have (for the OAuth error
/// code of the token endpoint, RFC 8693 §2.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeRefusal {
    /// Scopes the subject token does not carry (`invalid_scope`).
    Scope,
    /// An audience the caller may not request (`invalid_target`).
    Audience,
    /// A lifetime past the subject token's or `--max-access-ttl`.
    Lifetime,
    /// An `act` chain over `--max-exchange-depth` (`invalid_grant`).
    Depth,
    /// An actor token of another tenant than the subject's (`invalid_grant`).
    ActorTenant,
}

impl Error {
    pub fn exchange(refusal: ExchangeRefusal, message: impl Into<String>) -> Self {
        Error::ExchangeNotAllowed {
            refusal,
            message: message.into(),
        }
    }

    pub fn invalid(field: &'static str, description: impl Into<String>) -> Self {
        Error::InvalidArgument(vec![Violation::new(field, description)])
    }

    /// The `ErrorInfo.reason` of docs/design.md §3 (or `INTERNAL`).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Token(e) => e.reason(),
            Error::RefreshTokenInvalid => reason::REFRESH_TOKEN_INVALID,
            Error::RefreshTokenReused => reason::REFRESH_TOKEN_REUSED,
            Error::CallerUnauthenticated => reason::CALLER_UNAUTHENTICATED,
            Error::CallerNotAllowed => reason::CALLER_NOT_ALLOWED,
            Error::TenantNotAllowed => reason::TENANT_NOT_ALLOWED,
            Error::InvalidArgument(_) => reason::FIELD_INVALID,
            Error::ExchangeNotAllowed { .. } => reason::EXCHANGE_NOT_ALLOWED,
            Error::CursorInvalid => reason::CURSOR_INVALID,
            Error::RateLimited { .. } => reason::RATE_LIMITED,
            Error::SessionLimit => reason::SESSION_LIMIT,
            Error::DpopNonce { .. } => reason::DPOP_PROOF_INVALID,
            Error::Store(_) => reason::STORE_UNAVAILABLE,
            Error::Internal(_) => reason::INTERNAL,
        }
    }

    fn code(&self) -> Code {
        match self {
            Error::Token(e) => match e {
                TokenError::TokenMalformed
                | TokenError::TokenSignatureInvalid
                | TokenError::TokenExpired
                | TokenError::TokenNotYetValid
                | TokenError::TokenRevoked
                | TokenError::IssuerMismatch
                | TokenError::AudienceMismatch
                | TokenError::FingerprintMismatch
                | TokenError::TokenBindingMismatch
                | TokenError::DpopProofInvalid
                | TokenError::DpopProofReplayed => Code::Unauthenticated,
                TokenError::ScopeMissing => Code::PermissionDenied,
                TokenError::Internal(_) => Code::Internal,
            },
            Error::RefreshTokenInvalid
            | Error::RefreshTokenReused
            | Error::CallerUnauthenticated
            | Error::DpopNonce { .. } => Code::Unauthenticated,
            Error::CallerNotAllowed
            | Error::TenantNotAllowed
            | Error::ExchangeNotAllowed { .. } => Code::PermissionDenied,
            Error::InvalidArgument(_) | Error::CursorInvalid => Code::InvalidArgument,
            Error::RateLimited { .. } | Error::SessionLimit => Code::ResourceExhausted,
            Error::Store(_) => Code::Unavailable,
            Error::Internal(_) => Code::Internal,
        }
    }
}

impl From<TokenError> for Error {
    fn from(e: TokenError) -> Error {
        match e {
            // A signing failure is the server's own: reported as such.
            TokenError::Internal(why) => Error::Internal(why),
            other => Error::Token(other),
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
        Error::Internal(_) | Error::Token(TokenError::Internal(_)) => "internal error".to_owned(),
        Error::Token(_)
        | Error::RefreshTokenInvalid
        | Error::RefreshTokenReused
        | Error::CallerUnauthenticated
        | Error::CallerNotAllowed
        | Error::TenantNotAllowed
        | Error::ExchangeNotAllowed { .. }
        | Error::SessionLimit
        | Error::DpopNonce { .. } => err.to_string(),
    };
    let mut status = Status::with_error_details_vec(err.code(), message, details);
    if let Error::DpopNonce { nonce } = err {
        if let Ok(value) = nonce.parse() {
            status
                .metadata_mut()
                .insert(tessera_core::wire::DPOP_NONCE_HEADER, value);
        }
    }
    status
}

/// The reason of a status returned by Tessera, if it carries one.
pub fn status_reason(status: &Status) -> Option<String> {
    status.get_details_error_info().map(|i| i.reason)
}

/// Log a failed call once, at the level its cause deserves (store and
/// internal failures are the operator's business; a client's bad token is
/// not), and map it onto its status. Never logs a request field.
pub fn failed(rpc: Rpc, err: Error) -> Status {
    log_failed(rpc, &err);
    Status::from(err)
}

/// The log line of [`failed`], for answers that are not gRPC statuses.
pub fn log_failed(rpc: Rpc, err: &Error) {
    let rpc = rpc.as_str();
    let reason = err.reason();
    crate::trace::record_reason(reason);
    match err {
        Error::Store(e) => tracing::warn!(rpc, reason, error = %e, "call failed"),
        Error::Internal(why) | Error::Token(TokenError::Internal(why)) => {
            tracing::error!(rpc, reason, error = %why, "call failed")
        }
        // Refusals anyone can provoke in bulk: a bounded number of lines.
        Error::RateLimited { .. } | Error::SessionLimit => {
            if crate::refusals::admitted(reason) {
                tracing::info!(rpc, reason, "call failed")
            }
        }
        Error::RefreshTokenReused | Error::Token(TokenError::FingerprintMismatch) => {
            tracing::info!(rpc, reason, "call failed")
        }
        Error::Token(_)
        | Error::RefreshTokenInvalid
        | Error::CallerUnauthenticated
        | Error::CallerNotAllowed
        | Error::TenantNotAllowed
        | Error::ExchangeNotAllowed { .. }
        | Error::InvalidArgument(_)
        | Error::CursorInvalid
        | Error::DpopNonce { .. } => tracing::debug!(rpc, reason, "call failed"),
    }
}

// === tonic's own decode failures ===

/// Largest request message accepted on the gRPC port (bytes). The largest
/// valid request (an Issue with every list full) is well under it; a larger
/// one is refused from its 5-byte length prefix, before it is buffered.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The request failures tonic answers itself, before a handler runs, with
/// no `ErrorInfo`: a message that is not valid protobuf (invalid UTF-8 in a
/// string field answers `INTERNAL` from prost) or one over
/// [`MAX_REQUEST_BYTES`] (`OUT_OF_RANGE`). Mapped here onto
/// `INVALID_ARGUMENT` / `FIELD_INVALID` like every other bad request.
fn decode_failure(headers: &http::HeaderMap) -> Option<Error> {
    use crate::telemetry::header;
    let code = headers.get(&header::GRPC_STATUS)?.to_str().ok()?;
    let message = headers.get(&header::GRPC_MESSAGE)?.to_str().ok()?;
    let message = percent_decode(message);
    match tonic::Code::from_bytes(code.as_bytes()) {
        Code::Internal if message.starts_with("failed to decode Protobuf message") => {
            Some(Error::invalid(
                "request",
                "not a valid protobuf message (strings must be UTF-8)",
            ))
        }
        Code::OutOfRange if message.starts_with("Error, decoded message length too large") => {
            Some(Error::invalid(
                "request",
                format!("messages must be at most {MAX_REQUEST_BYTES} bytes"),
            ))
        }
        _ => None,
    }
}

/// `grpc-message` is percent-encoded (gRPC over HTTP/2 spec); only the
/// prefixes above are compared, so bytes that do not decode are dropped.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Tower layer that rewrites tonic's decode failures (see [`decode_failure`]).
#[derive(Clone, Copy, Default)]
pub struct DecodeErrorLayer;

impl<S> tower::Layer<S> for DecodeErrorLayer {
    type Service = DecodeErrors<S>;
    fn layer(&self, inner: S) -> DecodeErrors<S> {
        DecodeErrors { inner }
    }
}

#[derive(Clone)]
pub struct DecodeErrors<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for DecodeErrors<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    // No allocation per call: every response passes through here.
    type Future = futures::future::MapOk<S::Future, fn(S::Response) -> S::Response>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        use futures::TryFutureExt;
        fn map(response: http::Response<tonic::body::Body>) -> http::Response<tonic::body::Body> {
            match decode_failure(response.headers()) {
                Some(error) => to_status(&error).into_http(),
                None => response,
            }
        }
        self.inner.call(req).map_ok(map as fn(_) -> _)
    }
}
