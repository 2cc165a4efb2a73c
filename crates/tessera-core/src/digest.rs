//! Hashes shared by tokens, revocation keys and the checks: a leaf.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};

/// base64url SHA-256: how fingerprints and refresh secrets are stored.
pub fn sha256_b64(data: &[u8]) -> String {
    B64.encode(Sha256::digest(data))
}
