use serde_json::Value;

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
