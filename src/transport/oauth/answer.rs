//! The OAuth port's answers: RFC 6749 §5.2 errors, and JSON that no
//! cache keeps.

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use tessera_core::wire::Rpc;

use crate::error::{Error, TokenError};

/// An OAuth error answer (RFC 6749 §5.2): `{"error", "error_description"}`.
#[derive(Debug)]
pub(super) struct OAuthError {
    pub(super) status: StatusCode,
    pub(super) error: &'static str,
    description: String,
    headers: Vec<(HeaderName, String)>,
}

impl OAuthError {
    pub(super) fn new(
        status: StatusCode,
        error: &'static str,
        description: impl Into<String>,
    ) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
            headers: Vec::new(),
        }
    }

    pub(super) fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    pub(super) fn with_header(mut self, name: HeaderName, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// [`OAuthError::from_service`], or `invalid_request` with the reason
    /// for anything else (introspection, revocation, caller budgets).
    pub(super) fn from_error(rpc: Rpc, e: &Error) -> Self {
        crate::trace::record_reason(e.reason());
        Self::from_service(rpc, e).unwrap_or_else(|| Self::invalid_request(e.reason()))
    }

    /// The answer to a failure of the authority itself (store, budget),
    /// the same on every endpoint.
    pub(super) fn from_service(rpc: Rpc, e: &Error) -> Option<Self> {
        match e {
            Error::Store(_) | Error::Internal(_) | Error::Token(TokenError::Internal(_)) => {
                crate::error::log_failed(rpc, e);
                Some(Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "token store unavailable, retry later",
                ))
            }
            Error::RateLimited { retry_after } => {
                crate::error::log_failed(rpc, e);
                let seconds = retry_after.as_millis().div_ceil(1000).max(1);
                Some(
                    Self::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "temporarily_unavailable",
                        e.reason(),
                    )
                    .with_header(header::RETRY_AFTER, seconds.to_string()),
                )
            }
            _ => None,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "error_description": self.description });
        let mut response = json_response(self.status, body.to_string());
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

/// A JSON answer serialized straight from `body`, a struct of borrowed
/// fields: a `serde_json::Value` built and printed through `Display` cost
/// an introspection about 19k instructions (BENCHMARKS.md, "Introspection,
/// again"). Such a body always serializes; were one ever not to, the caller
/// gets a server error, not a partial answer.
pub(super) fn json_answer<T: Serialize>(status: StatusCode, body: &T) -> Answer {
    let body = serde_json::to_string(body).map_err(|_| {
        OAuthError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the answer could not be written",
        )
    })?;
    Ok(json_response(status, body))
}

/// A JSON answer that no cache keeps (RFC 6749 §5.1, RFC 7662 §2.2).
pub(super) fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub(super) type Answer = Result<Response, OAuthError>;

pub(super) fn answer(result: Answer) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}
