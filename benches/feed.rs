//! Criterion benchmarks of the server's revocation feed: the cache lookup
//! at 10 k and 1 M entries, and the whole in-process default `Verify`.
//! Run: `cargo bench --bench feed`. Sign and verify alone are the core's
//! (`cargo bench -p tessera-core --bench tokens`).

use criterion::{criterion_group, criterion_main, Criterion};
use tessera::config::KeyAlg;
use tessera::feed::Feed;
use tessera::keys::{generate_pem, KeySet};
use tessera::store::{subject_key, RevocationEvent, RevocationKind};
use tessera::tokens::{self, AccessClaims, VerifyPolicy};

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

fn event(i: usize, now_ms: i64) -> RevocationEvent {
    RevocationEvent {
        cursor: format!("{}-{i}", now_ms),
        partition: 0,
        kind: RevocationKind::Token,
        token_id: format!("jti-{i:016}"),
        session_id: String::new(),
        tenant: String::new(),
        subject: String::new(),
        subject_key: String::new(),
        revoked_at_ms: now_ms,
        issued_before_ms: 0,
        expires_at_ms: now_ms + 3_600_000,
        traceparent: String::new(),
    }
}

fn cache_lookup(c: &mut Criterion) {
    let now_ms = tessera::clock::now_ms();
    let skey = subject_key("acme", "alice");
    for size in [10_000usize, 1_000_000] {
        let feed = Feed::new(1);
        let events: Vec<RevocationEvent> = (0..size).map(|i| event(i, now_ms)).collect();
        for chunk in events.chunks(10_000) {
            feed.apply(chunk);
        }
        feed.set_in_sync(true);
        c.bench_function(&format!("cache_check/miss/{size}"), |b| {
            b.iter(|| feed.check("jti-not-there", "sid", &skey, now_ms / 1000, now_ms))
        });
        c.bench_function(&format!("cache_check/hit/{size}"), |b| {
            b.iter(|| feed.check("jti-0000000000000042", "sid", &skey, now_ms / 1000, now_ms))
        });
    }
}

/// The whole in-process default `Verify`: parse, verify, audience/binding,
/// revocation cache lookup (100 k entries), scopes — no network.
fn verify_path(c: &mut Criterion) {
    let now_ms = tessera::clock::now_ms();
    let now = now_ms / 1000;
    let pem = generate_pem(KeyAlg::Eddsa).unwrap();
    let keys = KeySet::from_bytes(pem.as_bytes(), None, "bench").unwrap();
    let policy = VerifyPolicy {
        issuer: "bench".into(),
        leeway: 30,
    };
    let token = tokens::mint(&keys, &claims(now)).unwrap();
    let feed = Feed::new(1);
    let events: Vec<RevocationEvent> = (0..100_000).map(|i| event(i, now_ms)).collect();
    feed.apply(&events);
    feed.set_in_sync(true);
    let scopes = vec!["read".to_owned()];
    c.bench_function("verify_path/eddsa", |b| {
        b.iter(|| {
            let claims = tokens::verify(&keys, &token, now, &policy).unwrap();
            tessera_core::checks::check_audience_and_binding(&claims, "api", "").unwrap();
            let skey = subject_key(&claims.tid, &claims.sub);
            let answer = feed.check(&claims.jti, &claims.sid, &skey, claims.iat, now_ms);
            tessera_core::checks::check_scopes(&claims, &scopes).unwrap();
            answer
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = cache_lookup, verify_path
}
criterion_main!(benches);
