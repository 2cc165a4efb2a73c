//! Signing keys: loading, `kid`, the public JWK set, and algorithm pinning.
//!
//! Each key carries exactly one algorithm. The verifier looks a key up by the
//! token's `kid` and accepts only that key's algorithm — never `none`, never
//! an algorithm chosen by the token (RFC 8725 §3.1).
//!
//! A facade: `lookup` (what every key set answers) sits lowest, `jwks`
//! (a fetched JWK set) and `keyset` build on it, `ring` on `keyset`; this
//! file only names them, so every import points one way.

mod alg;
mod keyset;
pub(crate) mod lookup;
mod ring;
#[cfg(test)]
mod tests;

pub use crate::jwks::PublicKeys;
pub use alg::{alg_name, generate_pem, KeyAlg};
pub use keyset::{KeySet, SigningKey};
pub use lookup::{KeyError, KeyLookup, VerifyingKey, Vouches, MIN_HMAC_SECRET};
pub use ring::{KeyRing, Keys, SharedKey, TenantKeys};
