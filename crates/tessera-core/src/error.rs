//! What the token checks answer when a token is not good.

use crate::wire::reason;

/// Why a token was refused. Each variant has its reason code of the wire
/// contract ([`TokenError::reason`]); the server maps them onto gRPC
/// statuses, the SDK returns them as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
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
    /// A certificate-bound token presented without the certificate it is
    /// bound to (RFC 8705), or with another.
    #[error("token is bound to another key or certificate")]
    TokenBindingMismatch,
    /// A DPoP proof that fails a check of RFC 9449 §4.3.
    #[error("DPoP proof is invalid")]
    DpopProofInvalid,
    /// A DPoP proof whose `jti` was seen before within its window.
    #[error("DPoP proof was already used")]
    DpopProofReplayed,
    #[error("token lacks a required scope")]
    ScopeMissing,
    /// Signing or serializing failed: a bug or a broken key, never the
    /// caller's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl TokenError {
    /// The `ErrorInfo.reason` of the wire contract.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::TokenMalformed => reason::TOKEN_MALFORMED,
            TokenError::TokenSignatureInvalid => reason::TOKEN_SIGNATURE_INVALID,
            TokenError::TokenExpired => reason::TOKEN_EXPIRED,
            TokenError::TokenNotYetValid => reason::TOKEN_NOT_YET_VALID,
            TokenError::TokenRevoked => reason::TOKEN_REVOKED,
            TokenError::IssuerMismatch => reason::ISSUER_MISMATCH,
            TokenError::AudienceMismatch => reason::AUDIENCE_MISMATCH,
            TokenError::FingerprintMismatch => reason::FINGERPRINT_MISMATCH,
            TokenError::TokenBindingMismatch => reason::TOKEN_BINDING_MISMATCH,
            TokenError::DpopProofInvalid => reason::DPOP_PROOF_INVALID,
            TokenError::DpopProofReplayed => reason::DPOP_PROOF_REPLAYED,
            TokenError::ScopeMissing => reason::SCOPE_MISSING,
            TokenError::Internal(_) => reason::INTERNAL,
        }
    }
}
