//! One active signer plus the keys that still verify, loaded from PEM.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::alg::{alg_name, KeyAlg};
use super::lookup::{next_generation, KeyError, KeyLookup, VerifyingKey, MIN_HMAC_SECRET};

/// The active signer.
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    /// The parsed Ed25519 key pair, kept so that minting does not re-parse
    /// PKCS#8 (and re-derive the public key) on every token, as
    /// `jsonwebtoken::encode` does. Output is byte-identical (Ed25519 is
    /// deterministic; see `tokens::tests::cached_ed25519_signer_matches_jsonwebtoken`).
    pub ed25519: Option<Ed25519KeyPair>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// One active signer plus every key that still verifies.
pub struct KeySet {
    pub signer: SigningKey,
    pub(super) verifiers: HashMap<String, Arc<VerifyingKey>>,
    jwks_json: String,
    /// True when the signer was generated at start-up.
    pub ephemeral: bool,
    generation: u64,
}

impl KeySet {
    fn new(signer: SigningKey, verifying: VerifyingKey, ephemeral: bool) -> Self {
        let mut verifiers = HashMap::new();
        let keys: Vec<Value> = verifying.jwk.iter().cloned().collect();
        verifiers.insert(verifying.kid.clone(), Arc::new(verifying));
        let jwks_json = json!({ "keys": keys }).to_string();
        KeySet {
            signer,
            verifiers,
            jwks_json,
            ephemeral,
            generation: next_generation(),
        }
    }

    /// A fresh Ed25519 key that lives as long as the process.
    pub fn ephemeral() -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::generate().map_err(|_| KeyError::Generate)?;
        let der = pair.to_pkcs8v1().map_err(|_| KeyError::Generate)?;
        let (signer, verifying) = from_pkcs8(der.as_ref(), Some(KeyAlg::Eddsa), "ephemeral")?;
        Ok(Self::new(signer, verifying, true))
    }

    /// Load `--signing-key`; `alg` overrides detection and is required for HS256.
    pub fn load(path: &Path, alg: Option<KeyAlg>) -> Result<Self, KeyError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
            path: name.clone(),
            source,
        })?;
        Self::from_bytes(&bytes, alg, &name)
    }

    /// Build from key material (PEM, or the raw secret for HS256).
    /// Load a `--verify-key`: a PEM key of any supported algorithm, or, when
    /// HS256 is configured (`hs256`), an HS256 secret in a file that is not PEM.
    pub fn load_verifying(path: &Path, hs256: bool) -> Result<Self, KeyError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
            path: name.clone(),
            source,
        })?;
        let alg = (hs256 && pem::parse(&bytes).is_err()).then_some(KeyAlg::Hs256);
        Self::from_bytes(&bytes, alg, &name)
    }

    pub fn from_bytes(bytes: &[u8], alg: Option<KeyAlg>, name: &str) -> Result<Self, KeyError> {
        if alg == Some(KeyAlg::Hs256) {
            let secret = trim_ascii(bytes);
            if secret.len() < MIN_HMAC_SECRET {
                return Err(KeyError::ShortSecret(name.to_owned()));
            }
            // The kid must not reveal the secret; a hash of a ≥ 256-bit secret does not.
            let kid = hex::encode(&Sha256::digest([b"tessera-hs256-kid:", secret].concat())[..12]);
            let signer = SigningKey {
                kid: kid.clone(),
                alg: Algorithm::HS256,
                encoding: EncodingKey::from_secret(secret),
                ed25519: None,
            };
            let verifying = VerifyingKey {
                kid,
                alg: Algorithm::HS256,
                decoding: DecodingKey::from_secret(secret),
                jwk: None,
            };
            return Ok(Self::new(signer, verifying, false));
        }
        let block = pem::parse(bytes).map_err(|_| KeyError::NotPem(name.to_owned()))?;
        let (signer, verifying) = match block.tag() {
            "PRIVATE KEY" => from_pkcs8(block.contents(), alg, name)?,
            "RSA PRIVATE KEY" => {
                let pair = RsaKeyPair::from_der(block.contents())
                    .map_err(|_| KeyError::Unsupported(name.to_owned()))?;
                let der = pair
                    .as_der()
                    .map_err(|_| KeyError::Unsupported(name.to_owned()))?;
                from_pkcs8(der.as_ref(), Some(KeyAlg::Rs256), name)?
            }
            _ => return Err(KeyError::NotPem(name.to_owned())),
        };
        Ok(Self::new(signer, verifying, false))
    }

    /// The active signer of `self`, plus every verifying key of `older`:
    /// after a rotation, tokens signed by the previous key keep verifying
    /// until they expire. The JWK set lists them all, active first.
    pub fn with_older(mut self, older: Vec<KeySet>) -> Self {
        let mut jwks: Vec<Value> = serde_json::from_str::<Value>(&self.jwks_json)
            .ok()
            .and_then(|v| v["keys"].as_array().cloned())
            .unwrap_or_default();
        for set in older {
            for (kid, key) in set.verifiers {
                if self.verifiers.contains_key(&kid) {
                    continue;
                }
                if let Some(jwk) = &key.jwk {
                    jwks.push(jwk.clone());
                }
                self.verifiers.insert(kid, key);
            }
        }
        self.jwks_json = json!({ "keys": jwks }).to_string();
        self.generation = next_generation();
        self
    }

    /// Every `kid` that verifies.
    pub fn kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.verifiers.keys().cloned().collect();
        kids.sort();
        kids
    }

    /// The key that verifies tokens with this `kid`.
    pub fn verifier(&self, kid: &str) -> Option<&Arc<VerifyingKey>> {
        self.verifiers.get(kid)
    }

    /// RFC 7517 JWK set of every public key that verifies.
    pub fn jwks_json(&self) -> &str {
        &self.jwks_json
    }
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

/// What a key pair gives: its algorithm, both halves for jsonwebtoken, and
/// its public JWK (the RFC 7638 required members, in lexicographic order).
struct KeyParts {
    alg: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Value,
}

/// Identify a PKCS#8 private key and derive its public half.
fn from_pkcs8(
    der: &[u8],
    alg: Option<KeyAlg>,
    name: &str,
) -> Result<(SigningKey, VerifyingKey), KeyError> {
    let unsupported = || KeyError::Unsupported(name.to_owned());
    let try_ed = alg.is_none() || alg == Some(KeyAlg::Eddsa);
    let try_ec = alg.is_none() || alg == Some(KeyAlg::Es256);
    let try_rsa = alg.is_none() || alg == Some(KeyAlg::Rs256);

    let KeyParts {
        alg,
        encoding,
        decoding,
        mut jwk,
    } = if let Some(pair) = try_ed
        .then(|| Ed25519KeyPair::from_pkcs8(der).ok())
        .flatten()
    {
        ed25519_parts(&pair, der).ok_or_else(unsupported)?
    } else if let Some(pair) = try_ec
        .then(|| EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).ok())
        .flatten()
    {
        es256_parts(&pair, der).ok_or_else(unsupported)?
    } else if let Some(pair) = try_rsa.then(|| RsaKeyPair::from_pkcs8(der).ok()).flatten() {
        rs256_parts(&pair, der).ok_or_else(unsupported)?
    } else {
        return Err(unsupported());
    };

    // RFC 7638 thumbprint over the required members, already in lexicographic
    // order: replicas sharing a key agree on its kid without configuration.
    let kid = B64.encode(Sha256::digest(jwk.to_string().as_bytes()));
    if let Value::Object(map) = &mut jwk {
        map.insert("kid".into(), Value::String(kid.clone()));
        map.insert("alg".into(), Value::String(alg_name(alg).into()));
        map.insert("use".into(), Value::String("sig".into()));
    }
    let ed25519 = if alg == Algorithm::EdDSA {
        Ed25519KeyPair::from_pkcs8(der).ok()
    } else {
        None
    };
    Ok((
        SigningKey {
            kid: kid.clone(),
            alg,
            encoding,
            ed25519,
        },
        VerifyingKey {
            kid,
            alg,
            decoding,
            jwk: Some(jwk),
        },
    ))
}

/// An Ed25519 pair (EdDSA, OKP); `None` when its public key does not load.
fn ed25519_parts(pair: &Ed25519KeyPair, der: &[u8]) -> Option<KeyParts> {
    let x = B64.encode(pair.public_key().as_ref());
    let decoding = DecodingKey::from_ed_components(&x).ok()?;
    Some(KeyParts {
        alg: Algorithm::EdDSA,
        encoding: EncodingKey::from_ed_der(der),
        decoding,
        jwk: json!({ "crv": "Ed25519", "kty": "OKP", "x": x }),
    })
}

/// A P-256 pair (ES256, EC); `None` when its public point is not an
/// uncompressed one or does not load.
fn es256_parts(pair: &EcdsaKeyPair, der: &[u8]) -> Option<KeyParts> {
    // Uncompressed SEC1 point: 0x04 || x (32) || y (32).
    let point = pair.public_key().as_ref();
    if point.len() != 65 || point[0] != 4 {
        return None;
    }
    let x = B64.encode(&point[1..33]);
    let y = B64.encode(&point[33..65]);
    let decoding = DecodingKey::from_ec_components(&x, &y).ok()?;
    Some(KeyParts {
        alg: Algorithm::ES256,
        encoding: EncodingKey::from_ec_der(der),
        decoding,
        jwk: json!({ "crv": "P-256", "kty": "EC", "x": x, "y": y }),
    })
}

/// An RSA pair (RS256); `None` when its PKCS#1 form cannot be found.
fn rs256_parts(pair: &RsaKeyPair, der: &[u8]) -> Option<KeyParts> {
    let public = pair.public_key();
    let n = public.modulus().big_endian_without_leading_zero().to_vec();
    let e = public.exponent().big_endian_without_leading_zero().to_vec();
    let decoding = DecodingKey::from_rsa_raw_components(&n, &e);
    // jsonwebtoken's RSA signer wants PKCS#1 DER; aws-lc parses both.
    let pkcs1 = rsa_pkcs1_from_pkcs8(der)?;
    Some(KeyParts {
        alg: Algorithm::RS256,
        encoding: EncodingKey::from_rsa_der(&pkcs1),
        decoding,
        jwk: json!({ "e": B64.encode(&e), "kty": "RSA", "n": B64.encode(&n) }),
    })
}

impl KeyLookup for KeySet {
    fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verifiers.get(kid).map(|k| k.as_ref())
    }

    fn generation(&self) -> u64 {
        self.generation
    }
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo`: the OCTET
/// STRING after the version and the algorithm identifier.
fn rsa_pkcs1_from_pkcs8(der: &[u8]) -> Option<Vec<u8>> {
    fn read(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = der.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (first as usize, rest)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (len, &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        Some((tag, &rest[..len], &rest[len..]))
    }
    let (tag, body, _) = read(der)?;
    if tag != 0x30 {
        return None;
    }
    let (_, _version, rest) = read(body)?;
    let (_, _alg_id, rest) = read(rest)?;
    let (tag, key, _) = read(rest)?;
    (tag == 0x04).then(|| key.to_vec())
}
