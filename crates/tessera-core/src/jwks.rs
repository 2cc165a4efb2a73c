//! [`PublicKeys`]: the public keys of a JWK set (RFC 7517), as a local
//! verifier fetches them from `GetJwks` or `/.well-known/jwks.json`, looked
//! up by `kid` exactly as the server's own key set is.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use crate::keys::lookup::{next_generation, KeyError, KeyLookup, VerifyingKey, Vouches};

/// Public keys from an RFC 7517 JWK set (what `GetJwks` returns).
pub struct PublicKeys {
    keys: HashMap<String, VerifyingKey>,
    generation: u64,
    /// The tenant and issuer every key vouches for, when the set is one
    /// tenant's ([`PublicKeys::for_tenant`]).
    tenant: Option<(String, String)>,
}

impl PublicKeys {
    /// Parse a JWK set. Keys without `kid` or a supported `alg` are skipped;
    /// a key whose `kty`/`crv` do not fit its `alg` is refused.
    pub fn from_jwks_json(json: &str) -> Result<Self, KeyError> {
        let bad = || KeyError::Unsupported("JWK set".into());
        let set: Value = serde_json::from_str(json).map_err(|_| bad())?;
        let mut keys = HashMap::new();
        for jwk in set["keys"].as_array().ok_or_else(bad)? {
            let (Some(kid), Some(alg)) = (jwk["kid"].as_str(), jwk["alg"].as_str()) else {
                continue;
            };
            let s = |k: &str| jwk[k].as_str().ok_or_else(bad);
            let (alg, decoding) = match (alg, jwk["kty"].as_str(), jwk["crv"].as_str()) {
                ("EdDSA", Some("OKP"), Some("Ed25519")) => (
                    Algorithm::EdDSA,
                    DecodingKey::from_ed_components(s("x")?).map_err(|_| bad())?,
                ),
                ("ES256", Some("EC"), Some("P-256")) => (
                    Algorithm::ES256,
                    DecodingKey::from_ec_components(s("x")?, s("y")?).map_err(|_| bad())?,
                ),
                ("RS256", Some("RSA"), _) => (
                    Algorithm::RS256,
                    DecodingKey::from_rsa_components(s("n")?, s("e")?).map_err(|_| bad())?,
                ),
                _ => continue,
            };
            keys.insert(
                kid.to_owned(),
                VerifyingKey {
                    kid: kid.to_owned(),
                    alg,
                    decoding,
                    jwk: Some(jwk.clone()),
                },
            );
        }
        Ok(PublicKeys {
            keys,
            generation: next_generation(),
            tenant: None,
        })
    }

    /// These keys as one tenant's (`GetJwks` with `tenant`): they vouch
    /// only for tokens naming `tenant` (`tid`) with `issuer` (`iss`).
    pub fn for_tenant(mut self, tenant: &str, issuer: &str) -> Self {
        self.tenant = Some((tenant.to_owned(), issuer.to_owned()));
        self.generation = next_generation();
        self
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl KeyLookup for PublicKeys {
    fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    fn generation(&self) -> u64 {
        self.generation
    }

    fn vouches(&self, _kid: &str) -> Vouches<'_> {
        match &self.tenant {
            Some((tenant, issuer)) => Vouches::Tenant { tenant, issuer },
            None => Vouches::Default,
        }
    }
}
