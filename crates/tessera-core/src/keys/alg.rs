//! Algorithms: the `--signing-alg` choice, JOSE names, key generation.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::Algorithm;

use super::lookup::KeyError;

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
