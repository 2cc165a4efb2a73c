//! Signing keys: loading, `kid`, the public JWK set, and algorithm pinning.
//!
//! Each key carries exactly one algorithm. The verifier looks a key up by the
//! token's `kid` and accepts only that key's algorithm — never `none`, never
//! an algorithm chosen by the token (RFC 8725 §3.1).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Signing algorithm of a key (`--signing-alg`, `keygen --alg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlg {
    Eddsa,
    Es256,
    Rs256,
    /// Symmetric: only when explicitly configured; the key file holds the secret (≥ 32 bytes).
    Hs256,
}

impl KeyAlg {
    /// Every algorithm, by its name on the command line.
    pub const NAMES: [(&'static str, KeyAlg); 4] = [
        ("eddsa", KeyAlg::Eddsa),
        ("es256", KeyAlg::Es256),
        ("rs256", KeyAlg::Rs256),
        ("hs256", KeyAlg::Hs256),
    ];
}

impl std::str::FromStr for KeyAlg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
            .map(|(_, alg)| *alg)
            .ok_or_else(|| format!("unknown algorithm {s:?} (eddsa, es256, rs256, hs256)"))
    }
}

pub use crate::jwks::PublicKeys;

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
    verifiers: HashMap<String, Arc<VerifyingKey>>,
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

    let (alg, encoding, decoding, mut jwk) = if let Some(pair) = try_ed
        .then(|| Ed25519KeyPair::from_pkcs8(der).ok())
        .flatten()
    {
        let x = B64.encode(pair.public_key().as_ref());
        let decoding = DecodingKey::from_ed_components(&x).map_err(|_| unsupported())?;
        let jwk = json!({ "crv": "Ed25519", "kty": "OKP", "x": x });
        (
            Algorithm::EdDSA,
            EncodingKey::from_ed_der(der),
            decoding,
            jwk,
        )
    } else if let Some(pair) = try_ec
        .then(|| EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).ok())
        .flatten()
    {
        // Uncompressed SEC1 point: 0x04 || x (32) || y (32).
        let point = pair.public_key().as_ref();
        if point.len() != 65 || point[0] != 4 {
            return Err(unsupported());
        }
        let x = B64.encode(&point[1..33]);
        let y = B64.encode(&point[33..65]);
        let decoding = DecodingKey::from_ec_components(&x, &y).map_err(|_| unsupported())?;
        let jwk = json!({ "crv": "P-256", "kty": "EC", "x": x, "y": y });
        (
            Algorithm::ES256,
            EncodingKey::from_ec_der(der),
            decoding,
            jwk,
        )
    } else if let Some(pair) = try_rsa.then(|| RsaKeyPair::from_pkcs8(der).ok()).flatten() {
        let public = pair.public_key();
        let n = public.modulus().big_endian_without_leading_zero().to_vec();
        let e = public.exponent().big_endian_without_leading_zero().to_vec();
        let decoding = DecodingKey::from_rsa_raw_components(&n, &e);
        // jsonwebtoken's RSA signer wants PKCS#1 DER; aws-lc parses both.
        let pkcs1 = rsa_pkcs1_from_pkcs8(der).ok_or_else(unsupported)?;
        let jwk = json!({ "e": B64.encode(&e), "kty": "RSA", "n": B64.encode(&n) });
        (
            Algorithm::RS256,
            EncodingKey::from_rsa_der(&pkcs1),
            decoding,
            jwk,
        )
    } else {
        return Err(unsupported());
    };

    // RFC 7638 thumbprint over the required members, already in lexicographic
    // order above: replicas sharing a key agree on its kid without configuration.
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
/// [`KeySet`] and [`Keys`] and by [`PublicKeys`] (a JWK set fetched by a
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

impl KeyLookup for KeySet {
    fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verifiers.get(kid).map(|k| k.as_ref())
    }

    fn generation(&self) -> u64 {
        self.generation
    }
}

// === impl Keys ===

/// A tenant's own issuer and keys (`--tenants`).
pub struct TenantKeys {
    pub issuer: String,
    pub keys: KeySet,
}

/// Two key sets hold the same key: refused, since a key must vouch for
/// exactly one owner.
#[derive(Debug, thiserror::Error)]
#[error("key {kid} belongs to both {first} and {second}: every tenant needs a key of its own")]
pub struct SharedKey {
    pub kid: String,
    pub first: String,
    pub second: String,
}

/// The default keys and every tenant's own, as one lookup: a `kid` names
/// exactly one owner, and [`KeyLookup::vouches`] answers which.
pub struct Keys {
    default: Arc<KeySet>,
    tenants: HashMap<String, TenantKeys>,
    /// `kid` → the tenant it belongs to (`None`: the default keys).
    owners: HashMap<String, Option<String>>,
    generation: u64,
}

impl Keys {
    /// The default keys alone (no `--tenants`).
    pub fn single(default: KeySet) -> Self {
        let owners = default
            .verifiers
            .keys()
            .map(|k| (k.clone(), None))
            .collect();
        Keys {
            default: Arc::new(default),
            tenants: HashMap::new(),
            owners,
            generation: next_generation(),
        }
    }

    /// The default keys and each tenant's. A key in two sets is refused.
    pub fn new(default: KeySet, tenants: HashMap<String, TenantKeys>) -> Result<Self, SharedKey> {
        Self::build(Arc::new(default), tenants)
    }

    /// These tenants' keys with `default` as the default keys (a reload
    /// keeps an ephemeral default key: a new one would end its tokens).
    pub fn with_default(self, default: Arc<KeySet>) -> Result<Self, SharedKey> {
        Self::build(default, self.tenants)
    }

    fn build(
        default: Arc<KeySet>,
        tenants: HashMap<String, TenantKeys>,
    ) -> Result<Self, SharedKey> {
        let mut owners: HashMap<String, Option<String>> = HashMap::new();
        let name = |o: &Option<String>| match o {
            None => "the default keys".to_owned(),
            Some(t) => format!("tenant {t:?}"),
        };
        let sets = std::iter::once((None, default.as_ref()))
            .chain(tenants.iter().map(|(t, k)| (Some(t.clone()), &k.keys)));
        for (owner, set) in sets {
            for kid in set.verifiers.keys() {
                if let Some(first) = owners.insert(kid.clone(), owner.clone()) {
                    return Err(SharedKey {
                        kid: kid.clone(),
                        first: name(&first),
                        second: name(&owner),
                    });
                }
            }
        }
        Ok(Keys {
            default,
            tenants,
            owners,
            generation: next_generation(),
        })
    }

    /// The default keys, shared (see [`Keys::with_default`]).
    pub fn default_keys_arc(&self) -> Arc<KeySet> {
        self.default.clone()
    }

    /// The default keys: those of every tenant without its own.
    pub fn default_keys(&self) -> &KeySet {
        &self.default
    }

    /// A tenant's own issuer and keys, if it has them.
    pub fn tenant(&self, tenant: &str) -> Option<&TenantKeys> {
        self.tenants.get(tenant)
    }

    /// Tenants with keys of their own, sorted.
    pub fn tenant_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tenants.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The keys that sign `tenant`'s tokens: its own, else the default.
    pub fn signer_for(&self, tenant: &str) -> &KeySet {
        self.tenant(tenant)
            .map_or(self.default.as_ref(), |t| &t.keys)
    }

    /// The issuer of `tenant`'s tokens: its own, else `default_issuer`.
    pub fn issuer_for<'a>(&'a self, tenant: &str, default_issuer: &'a str) -> &'a str {
        self.tenant(tenant).map_or(default_issuer, |t| &t.issuer)
    }
}

impl KeyLookup for Keys {
    fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        match self.owners.get(kid)? {
            None => self.default.verifying_key(kid),
            Some(t) => self.tenants.get(t)?.keys.verifying_key(kid),
        }
    }

    fn generation(&self) -> u64 {
        self.generation
    }

    fn vouches(&self, kid: &str) -> Vouches<'_> {
        match self.owners.get(kid) {
            Some(Some(t)) => match self.tenants.get_key_value(t) {
                Some((tenant, keys)) => Vouches::Tenant {
                    tenant,
                    issuer: &keys.issuer,
                },
                None => Vouches::Default,
            },
            _ => Vouches::Default,
        }
    }

    fn has_own_keys(&self, tenant: &str) -> bool {
        self.tenants.contains_key(tenant)
    }
}

/// The keys in force, replaced whole on reload (SIGHUP), so a request
/// sees either the old keys or the new ones, never a mix.
pub struct KeyRing(RwLock<Arc<Keys>>);

impl KeyRing {
    pub fn new(keys: Keys) -> Self {
        KeyRing(RwLock::new(Arc::new(keys)))
    }

    pub fn current(&self) -> Arc<Keys> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn replace(&self, keys: Keys) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
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

/// The JOSE name of an algorithm.
pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        // Algorithm is non-exhaustive; a name no header can match refuses it.
        _ => "unsupported",
    }
}

/// Generate a private key as PKCS#8 PEM (`tessera keygen`).
pub fn generate_pem(alg: KeyAlg) -> Result<String, KeyError> {
    let der: Vec<u8> = match alg {
        KeyAlg::Eddsa => Ed25519KeyPair::generate()
            .and_then(|k| k.to_pkcs8v1())
            .map_err(|_| KeyError::Generate)?
            .as_ref()
            .to_vec(),
        KeyAlg::Es256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .and_then(|k| k.to_pkcs8v1())
            .map_err(|_| KeyError::Generate)?
            .as_ref()
            .to_vec(),
        KeyAlg::Rs256 => {
            let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| KeyError::Generate)?;
            let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
                .map_err(|_| KeyError::Generate)?;
            der.as_ref().to_vec()
        }
        KeyAlg::Hs256 => {
            let mut secret = [0u8; 32];
            aws_lc_rs::rand::fill(&mut secret).map_err(|_| KeyError::Generate)?;
            return Ok(format!("{}\n", B64.encode(secret)));
        }
    };
    Ok(pem::encode(&pem::Pem::new("PRIVATE KEY", der)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generated_key_loads_with_its_algorithm() {
        for (alg, name) in [
            (KeyAlg::Eddsa, "EdDSA"),
            (KeyAlg::Es256, "ES256"),
            (KeyAlg::Rs256, "RS256"),
        ] {
            let pem = generate_pem(alg).unwrap();
            let keys = KeySet::from_bytes(pem.as_bytes(), None, "test").unwrap();
            assert_eq!(alg_name(keys.signer.alg), name);
            let jwks: Value = serde_json::from_str(keys.jwks_json()).unwrap();
            assert_eq!(jwks["keys"][0]["alg"], name);
            assert_eq!(jwks["keys"][0]["kid"], keys.signer.kid.as_str());
            assert_eq!(jwks["keys"][0]["use"], "sig");
            assert!(jwks["keys"][0].get("d").is_none(), "private part leaked");
        }
    }

    #[test]
    fn kid_is_stable_for_the_same_key() {
        let pem = generate_pem(KeyAlg::Eddsa).unwrap();
        let a = KeySet::from_bytes(pem.as_bytes(), None, "a").unwrap();
        let b = KeySet::from_bytes(pem.as_bytes(), None, "b").unwrap();
        assert_eq!(a.signer.kid, b.signer.kid);
    }

    #[test]
    fn hs256_needs_a_long_secret_and_stays_private() {
        assert!(matches!(
            KeySet::from_bytes(b"short", Some(KeyAlg::Hs256), "s"),
            Err(KeyError::ShortSecret(_))
        ));
        let secret = generate_pem(KeyAlg::Hs256).unwrap();
        let keys = KeySet::from_bytes(secret.as_bytes(), Some(KeyAlg::Hs256), "s").unwrap();
        assert_eq!(keys.jwks_json(), r#"{"keys":[]}"#);
    }

    #[test]
    fn older_keys_keep_verifying_and_are_published() {
        let a = generate_pem(KeyAlg::Eddsa).unwrap();
        let b = generate_pem(KeyAlg::Es256).unwrap();
        let old = KeySet::from_bytes(a.as_bytes(), None, "a").unwrap();
        let old_kid = old.signer.kid.clone();
        let set = KeySet::from_bytes(b.as_bytes(), None, "b")
            .unwrap()
            .with_older(vec![old]);
        assert_eq!(set.kids().len(), 2);
        assert!(set.verifier(&old_kid).is_some());
        let jwks: Value = serde_json::from_str(set.jwks_json()).unwrap();
        assert_eq!(
            jwks["keys"][0]["kid"],
            set.signer.kid.as_str(),
            "active first"
        );
        assert_eq!(jwks["keys"][1]["kid"], old_kid.as_str());
    }

    #[test]
    fn published_keys_verify_what_the_private_keys_sign() {
        for alg in [KeyAlg::Eddsa, KeyAlg::Es256, KeyAlg::Rs256] {
            let pem = generate_pem(alg).unwrap();
            let keys = KeySet::from_bytes(pem.as_bytes(), None, "k").unwrap();
            let public = PublicKeys::from_jwks_json(keys.jwks_json()).unwrap();
            assert_eq!(public.len(), 1);
            let k = public.verifying_key(&keys.signer.kid).unwrap();
            assert_eq!(k.alg, keys.signer.alg);
        }
        assert!(PublicKeys::from_jwks_json("nope").is_err());
    }

    #[test]
    fn garbage_is_refused() {
        assert!(KeySet::from_bytes(b"not a key", None, "g").is_err());
        let pem = generate_pem(KeyAlg::Eddsa).unwrap();
        assert!(KeySet::from_bytes(pem.as_bytes(), Some(KeyAlg::Rs256), "g").is_err());
    }
}
