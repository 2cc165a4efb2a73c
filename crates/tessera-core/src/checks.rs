//! What `Verify` checks after the signature and the validity window, shared
//! with local verifiers so that they agree with the server case by case.

use crate::error::TokenError;
use crate::tokens::{self, AccessClaims};

/// Hash of a device fingerprint as stored and embedded in `cnf`; `None`
/// when empty. The fingerprint itself is never stored.
pub fn fingerprint_hash(fingerprint: &str) -> Option<String> {
    (!fingerprint.is_empty())
        .then(|| tokens::sha256_b64(format!("tessera-dfp\0{fingerprint}").as_bytes()))
}

/// Audience (when the caller expects one) and device binding.
pub fn check_audience_and_binding(
    claims: &AccessClaims,
    audience: &str,
    fingerprint: &str,
) -> Result<(), TokenError> {
    if !audience.is_empty() && !claims.aud.iter().any(|a| a == audience) {
        return Err(TokenError::AudienceMismatch);
    }
    if let Some(bound) = &claims.cnf {
        // Constant time: the hash is not secret, but the habit costs nothing.
        let presented = fingerprint_hash(fingerprint).unwrap_or_default();
        if !constant_time_eq(
            presented.as_bytes(),
            bound.device_fingerprint_sha256.as_bytes(),
        ) {
            return Err(TokenError::FingerprintMismatch);
        }
    }
    Ok(())
}

/// Required scopes, checked after revocation.
pub fn check_scopes(claims: &AccessClaims, required: &[String]) -> Result<(), TokenError> {
    if required.iter().all(|req| claims.scopes().any(|s| s == req)) {
        Ok(())
    } else {
        Err(TokenError::ScopeMissing)
    }
}

/// Equal bytes, compared in constant time (for equal lengths).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
