//! Token parsing and verification on arbitrary input: must never panic, and
//! must never accept a token that was not minted with the fuzz key.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tessera_core::keys::KeySet;
use tessera_core::tokens::{self, VerifyPolicy};

/// A fixed Ed25519 key (test-only), so seeds in the corpus verify.
const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----\n";
/// The fuzzing clock: seeds are minted around this instant.
pub const NOW: i64 = 1_800_000_000;

fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| KeySet::from_bytes(PEM.as_bytes(), None, "fuzz").expect("fuzz key"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let policy = VerifyPolicy { issuer: "fuzz".into(), leeway: 30 };
    if let Ok(claims) = tokens::verify(keys(), token, NOW, &policy) {
        // Anything that verifies must re-mint to a token that verifies the same.
        let again = tokens::mint(keys(), &claims).expect("re-mint");
        let back = tokens::verify(keys(), &again, NOW, &policy).expect("re-verify");
        assert_eq!(back, claims);
        assert_eq!(claims.iss, "fuzz");
    }
});
