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
    if let Some(bound) = claims
        .cnf
        .as_ref()
        .and_then(|c| c.device_fingerprint_sha256.as_ref())
    {
        // Constant time: the hash is not secret, but the habit costs nothing.
        let presented = fingerprint_hash(fingerprint).unwrap_or_default();
        if !constant_time_eq(presented.as_bytes(), bound.as_bytes()) {
            return Err(TokenError::FingerprintMismatch);
        }
    }
    Ok(())
}

/// The RFC 8705 thumbprint of a certificate: base64url SHA-256 of its DER.
pub fn cert_thumbprint(der: &[u8]) -> String {
    tokens::sha256_b64(der)
}

/// Certificate binding (RFC 8705): a token with `cnf.x5t#S256` verifies only
/// for the holder of that certificate, whose thumbprint the caller presents
/// (or the server reads from the mTLS connection). An unbound token ignores
/// a presented thumbprint.
pub fn check_certificate_binding(
    claims: &AccessClaims,
    cert_thumbprint: &str,
) -> Result<(), TokenError> {
    match claims
        .cnf
        .as_ref()
        .and_then(|c| c.cert_thumbprint_sha256.as_ref())
    {
        Some(bound) if !constant_time_eq(cert_thumbprint.as_bytes(), bound.as_bytes()) => {
            Err(TokenError::TokenBindingMismatch)
        }
        _ => Ok(()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::Confirmation;

    fn claims(cnf: Option<Confirmation>) -> AccessClaims {
        AccessClaims {
            iss: "t".into(),
            sub: "alice".into(),
            aud: vec![],
            exp: 2,
            nbf: 1,
            iat: 1,
            jti: "j".into(),
            sid: "s".into(),
            tid: String::new(),
            roles: vec![],
            scope: String::new(),
            cnf,
            act: None,
            custom: Default::default(),
        }
    }

    #[test]
    fn certificate_binding_needs_the_same_thumbprint() {
        let print = cert_thumbprint(b"certificate DER");
        let bound = claims(Some(Confirmation {
            cert_thumbprint_sha256: Some(print.clone()),
            ..Default::default()
        }));
        assert_eq!(check_certificate_binding(&bound, &print), Ok(()));
        for other in ["", "x", &cert_thumbprint(b"another DER")] {
            assert_eq!(
                check_certificate_binding(&bound, other),
                Err(TokenError::TokenBindingMismatch)
            );
        }
        // Unbound: any thumbprint, or none.
        assert_eq!(check_certificate_binding(&claims(None), "x"), Ok(()));
        // A fingerprint-only binding is not a certificate binding, and the
        // other way round.
        let fp_only = claims(Some(Confirmation {
            device_fingerprint_sha256: fingerprint_hash("dev"),
            ..Default::default()
        }));
        assert_eq!(check_certificate_binding(&fp_only, ""), Ok(()));
        assert_eq!(check_audience_and_binding(&bound, "", ""), Ok(()));
    }
}
