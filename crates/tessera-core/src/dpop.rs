//! DPoP proofs (RFC 9449): a JWT the client signs per request with the key
//! its tokens are bound to (`cnf.jkt`). Checked here, statelessly; the
//! replay of a proof's `jti` is the caller's (a store-wide set).
//!
//! Checked, in order (RFC 9449 §4.3): the size; `typ` is `dpop+jwt`; `alg`
//! is one of [`PROOF_ALGS`] (asymmetric: never `none`, never HMAC); `jwk` is
//! a public key of a type that fits `alg`, with no private member; the
//! signature verifies with it; `jti` is present; `htm` is the request's
//! method; `htu` has no query or fragment and is the request's URL without
//! its query and fragment; `iat` is within the window; `ath` is the hash of
//! the presented access token (when there is one). Any failure is
//! [`TokenError::DpopProofInvalid`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::TokenError;

/// The JOSE `typ` of a DPoP proof.
pub const DPOP_TYP: &str = "dpop+jwt";
/// Largest proof looked at.
pub const MAX_PROOF_BYTES: usize = 4096;
/// Algorithms a proof may use: asymmetric only. `Ed25519` is the fully
/// specified name of EdDSA with Ed25519 (RFC 9864), which current clients
/// (panva's `dpop` 2.x) send.
pub const PROOF_ALGS: &[&str] = &["ES256", "EdDSA", "Ed25519", "RS256", "PS256"];
/// JWK members that only private keys have.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A proof that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// RFC 7638 thumbprint of the proof's key.
    pub jkt: String,
    /// The proof's unique id (for the replay set).
    pub jti: String,
    pub iat: i64,
}

/// What a proof must match.
#[derive(Debug, Clone)]
pub struct ProofRequest<'a> {
    /// The HTTP method of the request the proof was made for.
    pub method: &'a str,
    /// The request's URL (its query and fragment are ignored).
    pub url: &'a str,
    /// The access token presented with the proof (its hash must be `ath`);
    /// `None` for a refresh, which presents none.
    pub access_token: Option<&'a str>,
    /// Now (Unix seconds).
    pub now: i64,
    /// How far `iat` may be from now, seconds (window plus leeway).
    pub max_age: i64,
}

fn invalid() -> TokenError {
    TokenError::DpopProofInvalid
}

/// RFC 7638 thumbprint of a public JWK: base64url SHA-256 of its required
/// members, in lexicographic order, without whitespace.
pub fn jwk_thumbprint(jwk: &Value) -> Option<String> {
    let s = |k: &str| jwk.get(k)?.as_str().map(str::to_owned);
    let canonical = match jwk.get("kty")?.as_str()? {
        "EC" => json!({"crv": s("crv")?, "kty": "EC", "x": s("x")?, "y": s("y")?}),
        "OKP" => json!({"crv": s("crv")?, "kty": "OKP", "x": s("x")?}),
        "RSA" => json!({"e": s("e")?, "kty": "RSA", "n": s("n")?}),
        _ => return None,
    };
    // serde_json writes object members in key order (no preserve_order).
    Some(B64.encode(Sha256::digest(canonical.to_string().as_bytes())))
}

/// `url` without query and fragment, scheme and host lowercased (RFC 9449
/// §4.3 step 9, RFC 3986 §6.2.2.1).
pub fn normalize_htu(url: &str) -> Option<String> {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..end];
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if scheme.is_empty() || authority.is_empty() {
        return None;
    }
    let path = if path.is_empty() { "/" } else { path };
    Some(format!(
        "{}://{}{}",
        scheme.to_ascii_lowercase(),
        authority.to_ascii_lowercase(),
        path
    ))
}

/// base64url SHA-256 of an access token: a proof's `ath`.
pub fn access_token_hash(token: &str) -> String {
    B64.encode(Sha256::digest(token.as_bytes()))
}

/// Check `proof` against `req` (see the module docs).
pub fn verify_proof(proof: &str, req: &ProofRequest<'_>) -> Result<Proof, TokenError> {
    if proof.is_empty() || proof.len() > MAX_PROOF_BYTES {
        return Err(invalid());
    }
    let header_b64 = proof.split('.').next().ok_or_else(invalid)?;
    if proof.split('.').count() != 3 {
        return Err(invalid());
    }
    let header: Value = B64
        .decode(header_b64)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(invalid)?;
    // RFC 7515 §4.1.11: no `crit` extension is understood here.
    if header.get("typ").and_then(Value::as_str) != Some(DPOP_TYP) || header.get("crit").is_some() {
        return Err(invalid());
    }
    let alg_name = header
        .get("alg")
        .and_then(Value::as_str)
        .filter(|a| PROOF_ALGS.contains(a))
        .ok_or_else(invalid)?;
    let jwk_value = header
        .get("jwk")
        .filter(|j| j.is_object())
        .ok_or_else(invalid)?;
    if PRIVATE_MEMBERS.iter().any(|m| jwk_value.get(m).is_some()) {
        return Err(invalid());
    }
    let (alg, kty) = match alg_name {
        "ES256" => (Algorithm::ES256, "EC"),
        "EdDSA" | "Ed25519" => (Algorithm::EdDSA, "OKP"),
        "RS256" => (Algorithm::RS256, "RSA"),
        "PS256" => (Algorithm::PS256, "RSA"),
        _ => return Err(invalid()),
    };
    if jwk_value.get("kty").and_then(Value::as_str) != Some(kty)
        || (kty == "EC" && jwk_value.get("crv").and_then(Value::as_str) != Some("P-256"))
        || (kty == "OKP" && jwk_value.get("crv").and_then(Value::as_str) != Some("Ed25519"))
    {
        return Err(invalid());
    }
    let jwk: Jwk = serde_json::from_value(jwk_value.clone()).map_err(|_| invalid())?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| invalid())?;
    // The signature over `header.payload`, with the algorithm the key's type
    // fixes (checked above); the header's own `alg` parsed by nobody else.
    let (message, signature) = proof.rsplit_once('.').ok_or_else(invalid)?;
    if !jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key, alg).unwrap_or(false) {
        return Err(invalid());
    }
    let payload_b64 = message
        .split_once('.')
        .map(|(_, p)| p)
        .ok_or_else(invalid)?;
    let claims: Value = B64
        .decode(payload_b64)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(Value::is_object)
        .ok_or_else(invalid)?;

    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or_else(invalid)?;
    if claims.get("htm").and_then(Value::as_str) != Some(req.method) {
        return Err(invalid());
    }
    let htu = claims
        .get("htu")
        .and_then(Value::as_str)
        .ok_or_else(invalid)?;
    if htu.contains(['?', '#']) || normalize_htu(htu) != normalize_htu(req.url) {
        return Err(invalid());
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(invalid)?;
    if (req.now - iat).abs() > req.max_age {
        return Err(invalid());
    }
    if let Some(token) = req.access_token {
        let ath = claims
            .get("ath")
            .and_then(Value::as_str)
            .ok_or_else(invalid)?;
        if !crate::checks::constant_time_eq(ath.as_bytes(), access_token_hash(token).as_bytes()) {
            return Err(invalid());
        }
    }
    Ok(Proof {
        jkt: jwk_thumbprint(jwk_value).ok_or_else(invalid)?,
        jti: jti.to_owned(),
        iat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_example_thumbprint() {
        // RFC 7638 §3.1.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            jwk_thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn htu_is_compared_without_query_and_case_of_scheme_and_host() {
        assert_eq!(
            normalize_htu("HTTPS://API.Example.com/a/b?x=1#f").unwrap(),
            "https://api.example.com/a/b"
        );
        assert_eq!(normalize_htu("https://h").unwrap(), "https://h/");
        assert!(normalize_htu("not a url").is_none());
    }
}
