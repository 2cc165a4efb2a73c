use super::*;
use crate::error::TokenError;
use crate::keys::{KeyLookup, KeySet};
use crate::tokens::{mint, verify, TokenVerifier, VerifyPolicy};
use serde_json::Map;

const NOW: i64 = 1_800_000_000;
const LEEWAY: i64 = 30;

fn policy() -> VerifyPolicy {
    VerifyPolicy {
        issuer: "tessera-test".into(),
        leeway: LEEWAY,
    }
}

fn claims(jti: &str, exp: i64) -> AccessClaims {
    AccessClaims {
        iss: "tessera-test".into(),
        sub: "alice".into(),
        aud: vec!["api".into()],
        exp,
        nbf: NOW,
        iat: NOW,
        jti: jti.into(),
        sid: "s1".into(),
        tid: "acme".into(),
        roles: vec!["admin".into()],
        scope: "read write".into(),
        cnf: None,
        act: None,
        custom: Map::new(),
    }
}

fn token(keys: &KeySet, jti: &str) -> String {
    mint(keys, &claims(jti, NOW + 900)).unwrap()
}

fn cached(bounds: CacheBounds) -> TokenVerifier {
    TokenVerifier::with_cache(policy(), bounds)
}

fn stats(v: &TokenVerifier) -> CacheStats {
    v.cache_stats().unwrap()
}

#[test]
fn a_second_verification_is_a_hit_with_the_same_claims() {
    let keys = KeySet::ephemeral().unwrap();
    let v = cached(CacheBounds::default());
    let t = token(&keys, "j1");
    let first = v.verify(&keys, &t, NOW).unwrap();
    let second = v.verify(&keys, &t, NOW + 1).unwrap();
    assert_eq!(*first, *second);
    assert_eq!(second.claims, verify(&keys, &t, NOW, &policy()).unwrap());
    assert_eq!(
        second.subject_key,
        crate::revocation::subject_key("acme", "alice")
    );
    let s = stats(&v);
    assert_eq!((s.hits, s.misses, s.entries), (1, 1, 1));
    assert!(s.bytes >= 2 * t.len() as u64, "{s:?}");
}

#[test]
fn one_byte_changed_anywhere_never_hits_and_fails_as_without_the_cache() {
    let keys = KeySet::ephemeral().unwrap();
    let v = cached(CacheBounds::default());
    let t = token(&keys, "j1");
    v.verify(&keys, &t, NOW).unwrap();
    let dots: Vec<usize> = t.match_indices('.').map(|(i, _)| i).collect();
    // A byte of the header, the payload and the signature, at both ends
    // of each part (the last byte of the signature included).
    let positions = [
        0,
        dots[0] - 1,
        dots[0] + 1,
        dots[1] - 1,
        dots[1] + 1,
        t.len() - 1,
    ];
    for pos in positions {
        let mut bytes = t.clone().into_bytes();
        bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        let hits = stats(&v).hits;
        let with_cache = v.verify(&keys, &tampered, NOW);
        let without = verify(&keys, &tampered, NOW, &policy());
        assert!(with_cache.is_err(), "byte {pos} verified");
        assert_eq!(with_cache.err(), without.err(), "byte {pos}");
        assert_eq!(stats(&v).hits, hits, "byte {pos} hit the cache");
    }
    // Nor a prefix or an extension of the cached token.
    for other in [&t[..t.len() - 1], &format!("{t}A")] {
        assert!(v.verify(&keys, other, NOW).is_err());
    }
    assert_eq!(stats(&v).entries, 1, "no failure was cached");
}

#[test]
fn a_cached_token_expires_with_the_leeway_and_leaves_the_cache() {
    let keys = KeySet::ephemeral().unwrap();
    let v = cached(CacheBounds::default());
    let t = token(&keys, "j1");
    v.verify(&keys, &t, NOW).unwrap();
    assert!(v.verify(&keys, &t, NOW + 900 + LEEWAY).is_ok());
    assert_eq!(
        v.verify(&keys, &t, NOW + 900 + LEEWAY + 1).err(),
        Some(TokenError::TokenExpired)
    );
    let s = stats(&v);
    assert_eq!((s.entries, s.expired), (0, 1), "{s:?}");
    // And a clock gone back before nbf - leeway is refused too.
    let t2 = token(&keys, "j2");
    v.verify(&keys, &t2, NOW).unwrap();
    assert_eq!(
        v.verify(&keys, &t2, NOW - LEEWAY - 1).err(),
        Some(TokenError::TokenNotYetValid)
    );
}

#[test]
fn the_sweep_drops_expired_entries_nobody_asks_for() {
    let keys = KeySet::ephemeral().unwrap();
    let v = cached(CacheBounds::default());
    let short = mint(&keys, &claims("short", NOW + 5)).unwrap();
    let long = token(&keys, "long");
    v.verify(&keys, &short, NOW).unwrap();
    v.verify(&keys, &long, NOW).unwrap();
    assert_eq!(stats(&v).entries, 2);
    // The next sweep is due SWEEP_INTERVAL_S after the first call.
    let later = NOW + 5 + LEEWAY + 1 + SWEEP_INTERVAL_S;
    v.verify(&keys, &long, later).unwrap();
    let s = stats(&v);
    assert_eq!((s.entries, s.expired), (1, 1), "{s:?}");
}

#[test]
fn another_key_set_clears_the_cache_and_a_dropped_key_fails_at_once() {
    let old = KeySet::ephemeral().unwrap();
    let v = cached(CacheBounds::default());
    let t = token(&old, "j1");
    v.verify(&old, &t, NOW).unwrap();
    // The reload brings only a new key: the cached token must not verify.
    let new = KeySet::ephemeral().unwrap();
    assert_eq!(
        v.verify(&new, &t, NOW).err(),
        Some(TokenError::TokenSignatureInvalid)
    );
    let s = stats(&v);
    assert_eq!((s.entries, s.key_changes), (0, 1), "{s:?}");
    // The same key in a new set (a reload that keeps it) verifies again,
    // in full (a miss), then from the cache.
    let pem = crate::keys::generate_pem(crate::keys::KeyAlg::Eddsa).unwrap();
    let a = KeySet::from_bytes(pem.as_bytes(), None, "a").unwrap();
    let b = KeySet::from_bytes(pem.as_bytes(), None, "a").unwrap();
    assert_ne!(a.generation(), b.generation());
    let t = token(&a, "j2");
    v.verify(&a, &t, NOW).unwrap();
    let misses = stats(&v).misses;
    v.verify(&b, &t, NOW).unwrap();
    assert_eq!(stats(&v).misses, misses + 1);
    v.verify(&b, &t, NOW).unwrap();
    assert_eq!(stats(&v).misses, misses + 1);
}

#[test]
fn an_entry_verified_by_a_set_replaced_meanwhile_is_never_a_hit() {
    // A reload racing with a verification: the entry carries the set the
    // verification started with, and a lookup under the new set misses.
    let keys = KeySet::ephemeral().unwrap();
    let cache = VerifiedCache::new(CacheBounds::default()).unwrap();
    let t = token(&keys, "j1");
    let c = Arc::new(Verified::new(verify(&keys, &t, NOW, &policy()).unwrap()));
    cache.insert(&t, c.clone(), &keys.signer.kid, keys.generation());
    assert!(cache.get(&t, keys.generation(), |_| true).is_some());
    assert!(cache.get(&t, keys.generation() + 1, |_| true).is_none());
    cache.insert(&t, c, &keys.signer.kid, keys.generation());
    assert!(
        cache.get(&t, keys.generation(), |_| false).is_none(),
        "a kid the set no longer has"
    );
}

#[test]
fn the_cache_stays_within_its_entry_and_byte_bounds() {
    let keys = KeySet::ephemeral().unwrap();
    let sample = token(&keys, "j0");
    let per_entry = ENTRY_OVERHEAD + 2 * sample.len() as u64;
    for bounds in [
        // Entries bind.
        CacheBounds {
            max_entries: 64,
            max_bytes: CacheBounds::DEFAULT_BYTES,
        },
        // Bytes bind: room for about 40 entries of this size.
        CacheBounds {
            max_entries: 100_000,
            max_bytes: 40 * per_entry,
        },
    ] {
        let v = cached(bounds);
        for i in 0..1_000 {
            v.verify(&keys, &token(&keys, &format!("j{i}")), NOW)
                .unwrap();
            let s = stats(&v);
            assert!(s.entries <= bounds.max_entries, "{bounds:?}: {s:?}");
            assert!(s.bytes <= bounds.max_bytes, "{bounds:?}: {s:?}");
        }
        let s = stats(&v);
        assert!(s.entries > 0 && s.evictions > 0, "{bounds:?}: {s:?}");
        assert_eq!(s.misses, 1_000);
    }
}

#[test]
fn garbage_never_enters_and_a_flood_of_new_tokens_leaves_the_hot_set() {
    let keys = KeySet::ephemeral().unwrap();
    let v = cached(CacheBounds {
        max_entries: 1_000,
        max_bytes: CacheBounds::DEFAULT_BYTES,
    });
    // Half the cache: between two lookups of a hot token come the rest of
    // the hot set and as many new tokens, more than the cache holds, so a
    // plain LRU would have evicted it.
    let hot: Vec<String> = (0..500).map(|i| token(&keys, &format!("hot{i}"))).collect();
    for _ in 0..3 {
        for t in &hot {
            v.verify(&keys, t, NOW).unwrap();
        }
    }
    // 10,000 garbage tokens (a valid token with its signature changed):
    // every one fails, none is cached.
    let base = &hot[0];
    for i in 0..10_000 {
        let forged = format!("{}{:08}", &base[..base.len() - 8], i);
        assert!(v.verify(&keys, &forged, NOW).is_err());
    }
    assert_eq!(stats(&v).entries, 500);
    // 10,000 distinct valid tokens, each seen once, mixed 50/50 with the
    // hot set: the hot set keeps hitting.
    let before = stats(&v);
    let mut hot_lookups = 0;
    let mut hot_hits = 0;
    for i in 0..10_000 {
        v.verify(&keys, &token(&keys, &format!("cold{i}")), NOW)
            .unwrap();
        let h = stats(&v).hits;
        v.verify(&keys, &hot[i % hot.len()], NOW).unwrap();
        hot_lookups += 1;
        hot_hits += stats(&v).hits - h;
    }
    let after = stats(&v);
    assert!(after.entries <= 1_000, "{after:?}");
    assert!(after.evictions > before.evictions, "{after:?}");
    let ratio = hot_hits as f64 / hot_lookups as f64;
    eprintln!("hot-set hit ratio under the flood: {ratio}");
    assert!(ratio >= 0.9, "hot-set hit ratio {ratio} under a flood");
}

#[test]
fn off_means_no_cache() {
    assert!(VerifiedCache::new(CacheBounds::OFF).is_none());
    let v = TokenVerifier::with_cache(
        policy(),
        CacheBounds {
            max_entries: 0,
            max_bytes: 1 << 20,
        },
    );
    assert!(v.cache_stats().is_none());
    let keys = KeySet::ephemeral().unwrap();
    assert!(v.verify(&keys, &token(&keys, "j"), NOW).is_ok());
}
