//! Criterion benchmarks of the token core: sign and verify per algorithm,
//! and the raw jsonwebtoken verify (the floor). Run:
//! `cargo bench -p tessera-core --bench tokens`. The server's revocation
//! cache and whole `Verify` path are `benches/feed.rs` in the server package.

use criterion::{criterion_group, criterion_main, Criterion};
use tessera_core::keys::{generate_pem, KeyAlg, KeySet};
use tessera_core::tokens::{self, AccessClaims, VerifyPolicy};

fn claims(now: i64) -> AccessClaims {
    AccessClaims {
        iss: "bench".into(),
        sub: "alice".into(),
        aud: vec!["api".into()],
        exp: now + 900,
        nbf: now,
        iat: now,
        jti: "a1b2c3d4e5f6g7h8i9j0kw".into(),
        sid: "s1b2c3d4e5f6g7h8i9j0kw".into(),
        tid: "acme".into(),
        roles: vec!["admin".into()],
        scope: "read write".into(),
        cnf: None,
        act: None,
        custom: Default::default(),
    }
}

fn sign_and_verify(c: &mut Criterion) {
    let now = tessera_core::unix_now_ms() / 1000;
    let policy = VerifyPolicy {
        issuer: "bench".into(),
        leeway: 30,
    };
    for (alg, name) in [
        (KeyAlg::Eddsa, "eddsa"),
        (KeyAlg::Es256, "es256"),
        (KeyAlg::Rs256, "rs256"),
        (KeyAlg::Hs256, "hs256"),
    ] {
        let pem = generate_pem(alg).unwrap();
        let keys = KeySet::from_bytes(pem.as_bytes(), Some(alg), "bench").unwrap();
        let token = tokens::mint(&keys, &claims(now)).unwrap();
        c.bench_function(&format!("sign/{name}"), |b| {
            b.iter(|| tokens::mint(&keys, &claims(now)).unwrap())
        });
        c.bench_function(&format!("verify/{name}"), |b| {
            b.iter(|| tokens::verify(&keys, &token, now, &policy).unwrap())
        });
        let key = keys.verifier(&keys.signer.kid).unwrap();
        let mut validation = jsonwebtoken::Validation::new(key.alg);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        validation.validate_aud = false;
        c.bench_function(&format!("raw_jsonwebtoken_verify/{name}"), |b| {
            b.iter(|| {
                jsonwebtoken::decode::<serde_json::Value>(&token, &key.decoding, &validation)
                    .unwrap()
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = sign_and_verify
}
criterion_main!(benches);
