//! Access-token claims, minting and verification: pure functions of
//! (keys, claims, clock). No I/O; revocation is checked by the caller.
//!
//! jsonwebtoken's `Validation` defaults are not ours (docs/pitfalls.md): its exp
//! and nbf checks read the system clock, nbf is off by default, and `aud`/`iss`
//! of the wrong JSON type slip through. So the library only checks the
//! signature here, with the algorithm pinned by the key; every claim is
//! deserialized into strict types and checked below against the given clock.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use std::sync::Arc;

pub use crate::claims::{
    AccessClaims, Actor, Confirmation, Verified, ACCESS_TOKEN_TYP, MAX_TOKEN_BYTES, RESERVED_CLAIMS,
};
pub use crate::digest::sha256_b64;
use crate::error::TokenError as Error;
use crate::keys::{alg_name, KeyLookup, KeySet, VerifyingKey, Vouches};
pub use crate::verified::{CacheBounds, CacheStats, VerifiedCache};

/// The header fields Tessera looks at before any cryptography.
#[derive(Deserialize)]
struct RawHeader {
    alg: Value,
    #[serde(default)]
    kid: Option<Value>,
    #[serde(default)]
    typ: Option<Value>,
    #[serde(default)]
    crit: Option<Value>,
    #[serde(default)]
    b64: Option<Value>,
}

/// What a verification needs besides the key set and the token.
#[derive(Debug, Clone)]
pub struct VerifyPolicy {
    pub issuer: String,
    /// Clock-skew tolerance in seconds for `exp`, `nbf` and `iat`.
    pub leeway: i64,
}

/// The first instant (Unix ms) at which [`verify`] refuses, as expired, a
/// token whose `exp` is `exp` with `leeway` seconds of tolerance. `verify`
/// compares whole seconds (`now_s > exp + leeway`), so it still accepts
/// during the whole second `exp + leeway`: anything that must outlive the
/// token (a revocation marker, a cache entry) must reach this instant, not
/// `(exp + leeway) * 1000`.
pub fn refused_from_ms(exp: i64, leeway: i64) -> i64 {
    exp.saturating_add(leeway)
        .saturating_add(1)
        .saturating_mul(1000)
}

/// The `kid` of a token's header, unverified (for clients deciding whether
/// to refetch the JWK set).
pub fn header_kid(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid)
}

/// `(exp, iat)` of a base64url payload, **without** any verification: for
/// clients scheduling a refresh of a token they received from the authority
/// over an authenticated channel. Never use it to decide anything.
pub fn decode_payload_unverified(payload_b64: &str) -> Option<(i64, i64)> {
    let bytes = B64.decode(payload_b64).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    Some((v["exp"].as_i64()?, v["iat"].as_i64()?))
}

/// Sign `claims` with the active key; the header carries `kid` and `typ`.
pub fn mint(keys: &KeySet, claims: &AccessClaims) -> Result<String, Error> {
    let mut header = Header::new(keys.signer.alg);
    header.kid = Some(keys.signer.kid.clone());
    header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
    if let Some(pair) = &keys.signer.ed25519 {
        // The JWS jsonwebtoken would build, with the key pair parsed once.
        let mut message = B64.encode(json(&header)?);
        message.push('.');
        message.push_str(&B64.encode(json(claims)?));
        let signature = B64.encode(pair.sign(message.as_bytes()).as_ref());
        message.push('.');
        message.push_str(&signature);
        return Ok(message);
    }
    jsonwebtoken::encode(&header, claims, &keys.signer.encoding)
        .map_err(|e| Error::Internal(format!("signing failed: {e}")))
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::Internal(format!("serializing a token part: {e}")))
}

/// The one place where access tokens are checked — signature, type, issuer,
/// validity window — for the server's `Verify` and `Revoke` and for the
/// SDK's `LocalVerifier` alike, and so the place where the cache of
/// verified tokens ([`VerifiedCache`]) sits in front of the signature check.
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    policy: VerifyPolicy,
    cache: Option<Arc<VerifiedCache>>,
}

impl TokenVerifier {
    /// A verifier without a cache: every call verifies in full.
    pub fn new(policy: VerifyPolicy) -> Self {
        TokenVerifier {
            policy,
            cache: None,
        }
    }

    /// A verifier with a cache of verified tokens within `bounds` (none
    /// when a bound is 0).
    pub fn with_cache(policy: VerifyPolicy, bounds: CacheBounds) -> Self {
        TokenVerifier {
            policy,
            cache: VerifiedCache::new(bounds).map(Arc::new),
        }
    }

    pub fn policy(&self) -> &VerifyPolicy {
        &self.policy
    }

    /// The cache's counters; `None` when there is no cache.
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(|c| c.stats())
    }

    /// The cache itself (shared by every clone of this verifier).
    pub fn cache(&self) -> Option<&Arc<VerifiedCache>> {
        self.cache.as_ref()
    }

    /// [`verify`] with this verifier's policy, at `now` (Unix seconds).
    ///
    /// A token cached by an earlier call with the same key set skips the
    /// parsing and the signature; its validity window is checked again
    /// against `now` exactly as [`verify`] checks it.
    pub fn verify(
        &self,
        keys: &impl KeyLookup,
        token: &str,
        now: i64,
    ) -> Result<Arc<Verified>, Error> {
        let Some(cache) = &self.cache else {
            return verify(keys, token, now, &self.policy).map(|c| Arc::new(Verified::new(c)));
        };
        let generation = keys.generation();
        cache.maintain(generation, now, self.policy.leeway);
        if let Some(claims) = cache.get(token, generation, |kid| keys.verifying_key(kid).is_some())
        {
            return match check_window(&claims, now, self.policy.leeway) {
                Ok(()) => Ok(claims),
                Err(e) => {
                    if e == Error::TokenExpired {
                        cache.remove_expired(token);
                    }
                    Err(e)
                }
            };
        }
        let (claims, kid) = verify_with_kid(keys, token, now, &self.policy)?;
        let claims = Arc::new(Verified::new(claims));
        cache.insert(token, claims.clone(), &kid, generation);
        Ok(claims)
    }
}

/// Check signature and claims of an access token at time `now` (Unix seconds).
///
/// Audience, fingerprint, scopes and revocation are the caller's business;
/// this answers "did we sign this, is it an access token, and is it within
/// its validity window".
pub fn verify(
    keys: &impl KeyLookup,
    token: &str,
    now: i64,
    policy: &VerifyPolicy,
) -> Result<AccessClaims, Error> {
    verify_with_kid(keys, token, now, policy).map(|(claims, _)| claims)
}

/// [`verify`], also answering the `kid` that verified the token. The order
/// of the checks decides which reason a bad token gets: the header, the key
/// and its algorithm, the signature, whom the key vouches for, the required
/// claims, the window.
fn verify_with_kid(
    keys: &impl KeyLookup,
    token: &str,
    now: i64,
    policy: &VerifyPolicy,
) -> Result<(AccessClaims, String), Error> {
    let header = checked_header(token)?;
    let Some(Value::String(kid)) = header.kid else {
        return Err(Error::TokenSignatureInvalid);
    };
    let key = keys
        .verifying_key(&kid)
        .ok_or(Error::TokenSignatureInvalid)?;
    // Algorithm pinning: the key decides, the token only has to agree.
    if header.alg != Value::String(alg_name(key.alg).to_owned()) {
        return Err(Error::TokenSignatureInvalid);
    }
    let claims = signed_claims(token, key)?;
    check_vouched(keys, &kid, &claims, policy)?;
    if claims.sub.is_empty() || claims.jti.is_empty() || claims.sid.is_empty() {
        return Err(Error::TokenMalformed);
    }
    check_window(&claims, now, policy.leeway)?;
    Ok((claims, kid))
}

/// The size, the three parts, and the header: no `crit` nor `b64`, and the
/// access-token `typ`. Anything else is malformed.
fn checked_header(token: &str) -> Result<RawHeader, Error> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Error::TokenMalformed);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::TokenMalformed);
    };
    let header_json = B64.decode(header_b64).map_err(|_| Error::TokenMalformed)?;
    let header: RawHeader =
        serde_json::from_slice(&header_json).map_err(|_| Error::TokenMalformed)?;
    // RFC 7515 §4.1.11: a `crit` we do not understand must be refused; we
    // understand none. `b64: false` (RFC 7797) changes what is signed.
    if header.crit.is_some() || header.b64.is_some() {
        return Err(Error::TokenMalformed);
    }
    match header.typ {
        Some(Value::String(ref t))
            if t.eq_ignore_ascii_case(ACCESS_TOKEN_TYP)
                || t.eq_ignore_ascii_case("application/at+jwt") => {}
        _ => return Err(Error::TokenMalformed),
    }
    Ok(header)
}

/// The claims, once the signature verifies with `key` under its own
/// algorithm. No claim is validated by jsonwebtoken (its defaults are not
/// ours, PITFALLS.md): the window is [`check_window`]'s.
fn signed_claims(token: &str, key: &VerifyingKey) -> Result<AccessClaims, Error> {
    let mut validation = Validation::new(key.alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    let data = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation).map_err(
        |e| match e.kind() {
            ErrorKind::InvalidSignature
            | ErrorKind::InvalidAlgorithm
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat
            | ErrorKind::MissingAlgorithm
            | ErrorKind::UnsupportedAlgorithm => Error::TokenSignatureInvalid,
            _ => Error::TokenMalformed,
        },
    )?;
    Ok(data.claims)
}

/// Whom the key vouches for (issue #28): a tenant's key signs only that
/// tenant's tokens, with its issuer; the default keys sign for the
/// verifier's issuer and only tenants without keys of their own. The
/// signature is right, but no key of the tenant the token names made it:
/// as if signed by an unknown key.
fn check_vouched(
    keys: &impl KeyLookup,
    kid: &str,
    claims: &AccessClaims,
    policy: &VerifyPolicy,
) -> Result<(), Error> {
    match keys.vouches(kid) {
        Vouches::Tenant { tenant, issuer } => {
            if claims.tid != tenant {
                return Err(Error::TokenSignatureInvalid);
            }
            if claims.iss != issuer {
                return Err(Error::IssuerMismatch);
            }
        }
        Vouches::Default => {
            if keys.has_own_keys(&claims.tid) {
                return Err(Error::TokenSignatureInvalid);
            }
            if claims.iss != policy.issuer {
                return Err(Error::IssuerMismatch);
            }
        }
    }
    Ok(())
}

/// The validity window at `now` (Unix seconds) with `leeway`: checked by
/// every verification, the cached ones included. Keep in step with
/// [`refused_from_ms`].
fn check_window(claims: &AccessClaims, now: i64, leeway: i64) -> Result<(), Error> {
    if now > claims.exp.saturating_add(leeway) {
        return Err(Error::TokenExpired);
    }
    if claims.nbf > now.saturating_add(leeway) || claims.iat > now.saturating_add(leeway) {
        return Err(Error::TokenNotYetValid);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{generate_pem, KeyAlg};
    use serde_json::Map;

    fn policy() -> VerifyPolicy {
        VerifyPolicy {
            issuer: "tessera-test".into(),
            leeway: 30,
        }
    }

    fn claims(now: i64) -> AccessClaims {
        AccessClaims {
            iss: "tessera-test".into(),
            sub: "alice".into(),
            aud: vec!["api".into()],
            exp: now + 900,
            nbf: now,
            iat: now,
            jti: "j1".into(),
            sid: "s1".into(),
            tid: "acme".into(),
            roles: vec!["admin".into()],
            scope: "read write".into(),
            cnf: None,
            act: None,
            custom: Map::new(),
        }
    }

    fn b64(v: &Value) -> String {
        B64.encode(v.to_string())
    }

    #[test]
    fn round_trip_for_every_algorithm() {
        for alg in [KeyAlg::Eddsa, KeyAlg::Es256, KeyAlg::Rs256, KeyAlg::Hs256] {
            let pem = generate_pem(alg).unwrap();
            let keys = KeySet::from_bytes(pem.as_bytes(), Some(alg), "t").unwrap();
            let now = 1_800_000_000;
            let token = mint(&keys, &claims(now)).unwrap();
            assert_eq!(
                verify(&keys, &token, now, &policy()).unwrap(),
                claims(now),
                "{alg:?}"
            );
        }
    }

    #[test]
    fn act_chains_nest_and_round_trip() {
        let keys = KeySet::ephemeral().unwrap();
        let now = 1_800_000_000;
        let mut c = claims(now);
        c.act = Some(Actor {
            sub: "b".into(),
            act: Some(Box::new(Actor {
                sub: "a".into(),
                act: None,
            })),
        });
        let token = mint(&keys, &c).unwrap();
        let payload: Value =
            serde_json::from_slice(&B64.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
        assert_eq!(
            payload["act"],
            serde_json::json!({"sub": "b", "act": {"sub": "a"}})
        );
        let back = verify(&keys, &token, now, &policy()).unwrap();
        assert_eq!(back.actors(), ["b", "a"]);
        assert_eq!(back.act.as_ref().map(Actor::depth), Some(2));
        assert!(claims(now).actors().is_empty());
    }

    #[test]
    fn cached_ed25519_signer_matches_jsonwebtoken() {
        let keys = KeySet::ephemeral().unwrap();
        let c = claims(1_800_000_000);
        let mut header = Header::new(keys.signer.alg);
        header.kid = Some(keys.signer.kid.clone());
        header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        let reference = jsonwebtoken::encode(&header, &c, &keys.signer.encoding).unwrap();
        assert!(keys.signer.ed25519.is_some());
        assert_eq!(mint(&keys, &c).unwrap(), reference);
    }

    #[test]
    fn clock_checks_honour_the_leeway() {
        let keys = KeySet::ephemeral().unwrap();
        let now = 1_800_000_000;
        let token = mint(&keys, &claims(now)).unwrap();
        assert!(verify(&keys, &token, now + 900 + 30, &policy()).is_ok());
        assert!(matches!(
            verify(&keys, &token, now + 900 + 31, &policy()),
            Err(Error::TokenExpired)
        ));
        assert!(verify(&keys, &token, now - 30, &policy()).is_ok());
        assert!(matches!(
            verify(&keys, &token, now - 31, &policy()),
            Err(Error::TokenNotYetValid)
        ));
    }

    #[test]
    fn refused_from_ms_is_the_first_refused_instant() {
        let keys = KeySet::ephemeral().unwrap();
        let now = 1_800_000_000;
        let token = mint(&keys, &claims(now)).unwrap();
        let exp = now + 900;
        let first_refused = refused_from_ms(exp, policy().leeway);
        let at = |ms: i64| verify(&keys, &token, ms.div_euclid(1000), &policy());
        assert!(at(first_refused - 1).is_ok());
        assert!(matches!(at(first_refused), Err(Error::TokenExpired)));
    }

    #[test]
    fn alg_none_and_foreign_algorithms_are_refused() {
        let keys = KeySet::ephemeral().unwrap();
        let now = 1_800_000_000;
        let payload = b64(&serde_json::to_value(claims(now)).unwrap());
        for alg in ["none", "None", "HS256", "ES256"] {
            let header =
                b64(&serde_json::json!({"alg": alg, "typ": "at+jwt", "kid": keys.signer.kid}));
            let token = format!("{header}.{payload}.");
            assert!(
                matches!(
                    verify(&keys, &token, now, &policy()),
                    Err(Error::TokenSignatureInvalid)
                ),
                "{alg}"
            );
        }
    }

    #[test]
    fn crit_b64_and_wrong_typ_are_refused() {
        let keys = KeySet::ephemeral().unwrap();
        let now = 1_800_000_000;
        let good = mint(&keys, &claims(now)).unwrap();
        let rest = good.split_once('.').unwrap().1;
        for header in [
            serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": keys.signer.kid, "crit": ["exp"]}),
            serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": keys.signer.kid, "b64": false}),
            serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": keys.signer.kid}),
        ] {
            let token = format!("{}.{rest}", b64(&header));
            assert!(matches!(
                verify(&keys, &token, now, &policy()),
                Err(Error::TokenMalformed)
            ));
        }
    }

    #[test]
    fn wrong_claim_types_are_malformed_not_accepted() {
        let keys = KeySet::ephemeral().unwrap();
        let now = 1_800_000_000;
        for (name, value) in [
            ("aud", serde_json::json!(5)),
            ("iss", serde_json::json!(7)),
            ("exp", serde_json::json!("9999999999")),
        ] {
            let mut c = serde_json::to_value(claims(now)).unwrap();
            c[name] = value;
            let mut header = Header::new(keys.signer.alg);
            header.kid = Some(keys.signer.kid.clone());
            header.typ = Some(ACCESS_TOKEN_TYP.into());
            let token = jsonwebtoken::encode(&header, &c, &keys.signer.encoding).unwrap();
            assert!(
                matches!(
                    verify(&keys, &token, now, &policy()),
                    Err(Error::TokenMalformed)
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let keys = KeySet::ephemeral().unwrap();
        let now = 1_800_000_000;
        let token = mint(&keys, &claims(now)).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut evil = claims(now);
        evil.sub = "mallory".into();
        parts[1] = b64(&serde_json::to_value(evil).unwrap());
        assert!(matches!(
            verify(&keys, &parts.join("."), now, &policy()),
            Err(Error::TokenSignatureInvalid)
        ));
        let other = KeySet::ephemeral().unwrap();
        assert!(matches!(
            verify(&other, &token, now, &policy()),
            Err(Error::TokenSignatureInvalid)
        ));
    }
}
