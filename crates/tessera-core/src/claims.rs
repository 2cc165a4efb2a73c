//! Access-token claims and what verification derives from them: the types
//! `tokens` mints and verifies and `verified` caches. Below both, so the
//! cache never imports the verifier that owns it.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Longest token accepted anywhere; longer input is refused before parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The JOSE `typ` of Tessera access tokens (RFC 9068 §2.1): a refresh token,
/// ID token or any other JWT signed by the same key is not an access token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Claims that custom claims may not set: RFC 7519 registered names and
/// the ones Tessera itself writes.
pub const RESERVED_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "sid",
    "tid",
    "roles",
    "scope",
    "cnf",
    "act",
    "azp",
    "client_id",
    "typ",
    "auth_time",
    "acr",
    "amr",
];

/// Confirmation claim (RFC 7800) binding a token to what its holder must
/// show: a device fingerprint (Tessera's own member), a client certificate
/// (RFC 8705 `x5t#S256`), or both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// base64url SHA-256 of the device fingerprint.
    #[serde(rename = "dfp#S256", default, skip_serializing_if = "Option::is_none")]
    pub device_fingerprint_sha256: Option<String>,
    /// base64url SHA-256 of the DER of the client certificate (RFC 8705 §3.1).
    #[serde(rename = "x5t#S256", default, skip_serializing_if = "Option::is_none")]
    pub cert_thumbprint_sha256: Option<String>,
    /// RFC 9449 §6: the thumbprint of the DPoP key the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
}

/// The actor of an exchanged token (RFC 8693 §4.1): who acts for the
/// subject, and, nested, for whom that actor acted in turn (a chain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

impl Actor {
    /// The chain from this actor outwards: its `sub`, then the one it
    /// acted for, and so on.
    pub fn chain(&self) -> Vec<&str> {
        let mut out = vec![self.sub.as_str()];
        let mut next = self.act.as_deref();
        while let Some(a) = next {
            out.push(a.sub.as_str());
            next = a.act.as_deref();
        }
        out
    }

    /// How many actors the chain holds (1 for a single `act`).
    pub fn depth(&self) -> usize {
        1 + self.act.as_deref().map_or(0, Actor::depth)
    }
}

/// The claims of a Tessera access token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    #[serde(
        default,
        deserialize_with = "string_or_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub aud: Vec<String>,
    #[serde(deserialize_with = "numeric_date")]
    pub exp: i64,
    #[serde(deserialize_with = "numeric_date")]
    pub nbf: i64,
    #[serde(deserialize_with = "numeric_date")]
    pub iat: i64,
    pub jti: String,
    pub sid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tid: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Space-separated scopes (RFC 8693 §4.2).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// RFC 8693 §4.1: the actor of an exchanged token (nested for chains).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// Custom claims, flattened into the payload.
    #[serde(flatten)]
    pub custom: Map<String, Value>,
}

impl AccessClaims {
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }

    /// The `act` chain, the current actor first; empty when not exchanged.
    pub fn actors(&self) -> Vec<&str> {
        self.act.as_ref().map(Actor::chain).unwrap_or_default()
    }
}

/// `aud` may be one string or an array of strings (RFC 7519 §4.1.3); nothing else.
fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// A NumericDate (RFC 7519 §2), strictly: an integer within ±2^53.
/// RFC 7519 allows fractions, but Tessera only verifies tokens it minted,
/// and it mints integers; anything else (strings, floats, 2^64) is a token
/// someone else made up, refused as malformed.
fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    use serde::de::Error as _;
    const LIMIT: i64 = 9_007_199_254_740_992; // 2^53
    let n = serde_json::Number::deserialize(d)?;
    match n.as_i64() {
        Some(i) if (-LIMIT..=LIMIT).contains(&i) => Ok(i),
        _ => Err(D::Error::custom(
            "NumericDate must be an integer within ±2^53",
        )),
    }
}

/// Claims that passed verification, with what the checks after the
/// signature derive from them, computed once (and cached with them): reads
/// as the [`AccessClaims`] it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub claims: AccessClaims,
    /// [`crate::revocation::subject_key`] of the token's tenant and subject.
    pub subject_key: String,
}

impl Verified {
    pub fn new(claims: AccessClaims) -> Self {
        let subject_key = crate::revocation::subject_key(&claims.tid, &claims.sub);
        Verified {
            claims,
            subject_key,
        }
    }
}

impl std::ops::Deref for Verified {
    type Target = AccessClaims;
    fn deref(&self) -> &AccessClaims {
        &self.claims
    }
}
