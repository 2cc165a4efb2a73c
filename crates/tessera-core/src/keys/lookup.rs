//! What every key set answers, whoever built it: the verifying key of a
//! `kid`, whose tokens it vouches for, and the errors of loading keys. The
//! lowest module of `keys`: `jwks` builds on it, and the facade re-exports
//! both.

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// The shortest HMAC secret accepted: jsonwebtoken accepts an empty one (docs/pitfalls.md).
pub const MIN_HMAC_SECRET: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("key file {0} holds no PEM private key")]
    NotPem(String),
    #[error("key file {0}: unsupported or invalid key (expected PKCS#8 Ed25519, P-256 or RSA)")]
    Unsupported(String),
    #[error("HS256 secret in {0} is shorter than {MIN_HMAC_SECRET} bytes")]
    ShortSecret(String),
    #[error("key generation failed")]
    Generate,
}

/// A public key that verifies tokens of exactly one algorithm.
pub struct VerifyingKey {
    pub kid: String,
    pub alg: Algorithm,
    pub decoding: DecodingKey,
    /// Public JWK (absent for HS256: a symmetric key is never published).
    pub jwk: Option<Value>,
}

/// Whose tokens a key may sign: checked by [`crate::tokens::verify`] after
/// the signature, so that one tenant's key never vouches for another
/// tenant (issue #28).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vouches<'a> {
    /// The default keys: tokens of the verifier's own issuer
    /// ([`crate::tokens::VerifyPolicy::issuer`]), naming any tenant that
    /// has no keys of its own ([`KeyLookup::has_own_keys`]).
    Default,
    /// A tenant's keys: tokens naming exactly this tenant (`tid`) and
    /// carrying exactly this issuer.
    Tenant { tenant: &'a str, issuer: &'a str },
}

/// Finds the verifying key of a `kid`: implemented by the server's
/// [`KeySet`](crate::keys::KeySet) and [`Keys`](crate::keys::Keys) and by [`PublicKeys`](crate::jwks::PublicKeys) (a JWK set fetched by a
/// local verifier), so all verify with the very same [`crate::tokens::verify`].
pub trait KeyLookup {
    fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey>;
    /// Which set of keys this is: unique to each set built in this process
    /// (a reload or a refetch builds a new one). The verified-token cache
    /// trusts only entries verified by the set in force.
    fn generation(&self) -> u64;
    /// Whose tokens the key `kid` signs (asked only of a key this set has).
    fn vouches(&self, _kid: &str) -> Vouches<'_> {
        Vouches::Default
    }
    /// Whether `tenant` has keys of its own: then the default keys do not
    /// vouch for it.
    fn has_own_keys(&self, _tenant: &str) -> bool {
        false
    }
}

/// A number no other key set of this process has.
pub(crate) fn next_generation() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
