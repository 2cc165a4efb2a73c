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
    /// The server nonce the proof carries (RFC 9449 §8), if any.
    pub nonce: Option<String>,
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

/// `url` without query and fragment, normalised as RFC 9449 §4.3 step 9
/// asks (RFC 3986 §6.2.2 and §6.2.3), by the `url` crate's WHATWG parser
/// plus the percent-encoding rules it leaves out:
/// - scheme and host lowercased, the default port of the scheme dropped
///   (`https://h:443/x` is `https://h/x`, `http://h:80/` is `http://h/`),
///   an empty path is `/`, dot segments removed;
/// - percent-encoded unreserved characters decoded (`%7E` is `~`) and the
///   hex digits of every other escape uppercased (`%2f` is `%2F`).
///
/// `None` for anything that is no absolute URL with a host.
pub fn normalize_htu(url: &str) -> Option<String> {
    let mut parsed = url::Url::parse(url).ok()?;
    if !parsed.has_host() || parsed.cannot_be_a_base() {
        return None;
    }
    parsed.set_query(None);
    parsed.set_fragment(None);
    let path = normalize_percent_encoding(parsed.path());
    parsed.set_path(&path);
    Some(parsed.to_string())
}

/// RFC 3986 §6.2.2.1 and §6.2.2.2 on an already-escaped path.
fn normalize_percent_encoding(path: &str) -> String {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) if unreserved(b) => out.push(b as char),
            Some(_) => out.push_str(&path[i..i + 3].to_ascii_uppercase()),
            None => {
                // Not an escape: copy one whole character.
                let c = path[i..].chars().next().unwrap_or('%');
                out.push(c);
                i += c.len_utf8();
                continue;
            }
        }
        i += 3;
    }
    out
}

/// base64url SHA-256 of an access token: a proof's `ath`.
pub fn access_token_hash(token: &str) -> String {
    B64.encode(Sha256::digest(token.as_bytes()))
}

/// Check `proof` against `req` (see the module docs): its header, its key,
/// its signature, then its claims, in that order.
pub fn verify_proof(proof: &str, req: &ProofRequest<'_>) -> Result<Proof, TokenError> {
    let header = proof_header(proof)?;
    let (alg, jwk_value, key) = proof_key(&header)?;
    let claims = signed_claims(proof, &key, alg)?;
    let (jti, iat) = check_claims(&claims, req)?;
    Ok(Proof {
        jkt: jwk_thumbprint(jwk_value).ok_or_else(invalid)?,
        jti: jti.to_owned(),
        iat,
        nonce: claims
            .get("nonce")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// The size, the three parts, and the header: `typ` is `dpop+jwt` and no
/// `crit` (RFC 7515 §4.1.11: no extension is understood here).
fn proof_header(proof: &str) -> Result<Value, TokenError> {
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
    if header.get("typ").and_then(Value::as_str) != Some(DPOP_TYP) || header.get("crit").is_some() {
        return Err(invalid());
    }
    Ok(header)
}

/// The header's `alg` (one of [`PROOF_ALGS`]) and its `jwk`: a public key
/// (no private member) of the type and curve `alg` fixes.
fn proof_key(header: &Value) -> Result<(Algorithm, &Value, DecodingKey), TokenError> {
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
    Ok((alg, jwk_value, key))
}

/// The claims, once the signature over `header.payload` verifies with the
/// algorithm the key's type fixes (checked before); the header's own `alg`
/// parsed by nobody else.
fn signed_claims(proof: &str, key: &DecodingKey, alg: Algorithm) -> Result<Value, TokenError> {
    let (message, signature) = proof.rsplit_once('.').ok_or_else(invalid)?;
    if !jsonwebtoken::crypto::verify(signature, message.as_bytes(), key, alg).unwrap_or(false) {
        return Err(invalid());
    }
    let payload_b64 = message
        .split_once('.')
        .map(|(_, p)| p)
        .ok_or_else(invalid)?;
    B64.decode(payload_b64)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(Value::is_object)
        .ok_or_else(invalid)
}

/// `jti` present, `htm` and `htu` those of the request, `iat` within the
/// window, `ath` the hash of the presented access token; the `jti` and
/// `iat`.
fn check_claims<'c>(
    claims: &'c Value,
    req: &ProofRequest<'_>,
) -> Result<(&'c str, i64), TokenError> {
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
    Ok((jti, iat))
}

/// A client's DPoP key (ES256, P-256), for clients that make proofs: the
/// Rust SDK's `TokenSource`, tests. The private key never leaves it.
pub struct DpopKey {
    pair: aws_lc_rs::signature::EcdsaKeyPair,
    jwk: Value,
    jkt: String,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopKey")
            .field("jkt", &self.jkt)
            .finish_non_exhaustive()
    }
}

impl DpopKey {
    /// A new random key.
    pub fn generate() -> Result<Self, TokenError> {
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let fail = || TokenError::Internal("DPoP key generation".into());
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|_| fail())?;
        // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = pair.public_key().as_ref().to_vec();
        if point.len() != 65 || point[0] != 4 {
            return Err(fail());
        }
        let jwk = json!({
            "kty": "EC",
            "crv": "P-256",
            "x": B64.encode(&point[1..33]),
            "y": B64.encode(&point[33..]),
        });
        let jkt = jwk_thumbprint(&jwk).ok_or_else(fail)?;
        Ok(DpopKey { pair, jwk, jkt })
    }

    /// The key's RFC 7638 thumbprint: what Issue's `dpop_jkt` takes.
    pub fn jkt(&self) -> &str {
        &self.jkt
    }

    /// A proof for the request `method url` at `now` (Unix seconds), with
    /// `ath` for `access_token` when the request carries one.
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        now: i64,
    ) -> Result<String, TokenError> {
        self.proof_with_nonce(method, url, access_token, None, now)
    }

    /// [`DpopKey::proof`] carrying the server's `nonce` (RFC 9449 §8, the
    /// `dpop-nonce` metadata of Tessera's last answer).
    pub fn proof_with_nonce(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
        now: i64,
    ) -> Result<String, TokenError> {
        let fail = || TokenError::Internal("DPoP proof signing".into());
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti).map_err(|_| fail())?;
        let header = json!({"typ": DPOP_TYP, "alg": "ES256", "jwk": self.jwk});
        let mut claims = json!({
            "jti": B64.encode(jti),
            "htm": method,
            "htu": url,
            "iat": now,
        });
        if let Some(token) = access_token {
            claims["ath"] = json!(access_token_hash(token));
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        let message = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let signature = self
            .pair
            .sign(&rng, message.as_bytes())
            .map_err(|_| fail())?;
        Ok(format!("{message}.{}", B64.encode(signature.as_ref())))
    }
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
    fn a_generated_key_makes_proofs_that_verify() {
        let key = DpopKey::generate().unwrap();
        let now = 1_800_000_000;
        let proof = key
            .proof("POST", "https://as.example/token", Some("tok"), now)
            .unwrap();
        let ok = verify_proof(
            &proof,
            &ProofRequest {
                method: "POST",
                url: "https://as.example/token?x=1",
                access_token: Some("tok"),
                now,
                max_age: 60,
            },
        )
        .unwrap();
        assert_eq!(ok.jkt, key.jkt());
        // Another method, another token, another key's thumbprint.
        for (method, token) in [
            ("GET", Some("tok")),
            ("POST", Some("other")),
            ("POST", None),
        ] {
            let r = verify_proof(
                &proof,
                &ProofRequest {
                    method,
                    url: "https://as.example/token",
                    access_token: token,
                    now,
                    max_age: 60,
                },
            );
            if token.is_none() {
                assert!(r.is_ok(), "ath is not required without a token");
            } else {
                assert_eq!(r, Err(TokenError::DpopProofInvalid), "{method} {token:?}");
            }
        }
        assert_ne!(DpopKey::generate().unwrap().jkt(), key.jkt());
    }

    #[test]
    fn htu_is_compared_without_query_and_case_of_scheme_and_host() {
        assert_eq!(
            normalize_htu("HTTPS://API.Example.com/a/b?x=1#f").unwrap(),
            "https://api.example.com/a/b"
        );
        assert_eq!(normalize_htu("https://h").unwrap(), "https://h/");
        assert!(normalize_htu("not a url").is_none());
        assert!(normalize_htu("mailto:a@b").is_none());
    }

    /// RFC 3986 §6.2.3: the default port of either scheme is no port.
    #[test]
    fn htu_default_ports_of_both_schemes_are_dropped() {
        for (a, b) in [
            ("https://h:443/x", "https://h/x"),
            ("http://h:80/x", "http://h/x"),
            ("HTTP://H:80", "http://h/"),
            ("https://h:443", "https://h"),
            ("https://h.example/a/./b/../c", "https://h.example/a/c"),
            ("https://h/%7Euser/%2f", "https://h/~user/%2F"),
            ("https://h/a%2Db", "https://h/a-b"),
        ] {
            assert_eq!(normalize_htu(a), normalize_htu(b), "{a} vs {b}");
            assert!(normalize_htu(a).is_some());
        }
        for (a, b) in [
            ("https://h:80/x", "https://h/x"),
            ("http://h:443/x", "http://h/x"),
            ("https://h:8443/x", "https://h/x"),
            ("http://h/x", "https://h/x"),
            ("https://h/a%2Fb", "https://h/a/b"),
        ] {
            assert_ne!(normalize_htu(a), normalize_htu(b), "{a} vs {b}");
        }
    }

    /// The same, through a whole proof check.
    #[test]
    fn a_proof_for_the_default_port_matches_the_url_without_it() {
        let key = DpopKey::generate().unwrap();
        let now = 1_700_000_000;
        let proof = key
            .proof("POST", "https://h:443/oauth2/token", None, now)
            .unwrap();
        let req = ProofRequest {
            method: "POST",
            url: "https://h/oauth2/token",
            access_token: None,
            now,
            max_age: 60,
        };
        assert!(verify_proof(&proof, &req).is_ok());
    }
}
