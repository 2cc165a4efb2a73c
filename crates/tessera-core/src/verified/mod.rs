//! The verified-token cache: a token that passed full verification once is
//! not parsed or signature-checked again while it stays cached.
//!
//! - **Key:** the exact token string. The map hashes it with a hasher keyed
//!   at random per process (ahash's `RandomState`), so nobody can aim tokens
//!   at one bucket, and every hit compares the full bytes (`Eq` on the whole
//!   string): never a prefix, never the signature alone.
//! - **Value:** the parsed claims, the `kid` that verified them, and the
//!   [`generation`](crate::keys::KeyLookup::generation) of the key set that
//!   did. A hit counts only while that same set is in force and still holds
//!   the `kid`; when another set appears (SIGHUP reload, JWK set refetch)
//!   the whole map is cleared.
//! - **Admission:** only tokens that passed [`crate::tokens::verify`];
//!   a failure is never cached.
//! - **Eviction:** quick_cache's scan-resistant policy (CLOCK-PRO with a
//!   ghost list): a new entry enters a small cold queue and reaches the hot
//!   set only when it is hit again, so a flood of distinct tokens seen once
//!   cycles through the cold queue and leaves the hot set in place.
//! - **Bounds:** entries *and* bytes. Each entry weighs its estimated bytes,
//!   but never less than `max_bytes / max_entries`; the map's weight
//!   capacity is `max_bytes`, so it holds at most `max_entries` entries and
//!   at most `max_bytes` estimated bytes, whichever binds first.
//! - **Expiry:** a hit re-checks `exp`/`nbf`/`iat` against the caller's
//!   clock, and an expired entry is dropped on the spot; a sweep every
//!   [`SWEEP_INTERVAL_S`] drops every expired entry, hit or not.
//!
//! Everything after the signature (revocation, audience, binding, scopes,
//! renewal) is the caller's and runs on every call, hit or miss.

use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, Weighter};

use crate::claims::{AccessClaims, Verified};

/// How often (seconds of the callers' clock) expired entries are swept.
pub const SWEEP_INTERVAL_S: i64 = 10;

/// Bytes an entry costs besides its token and its claims' heap: the claims
/// struct, the entry, the map slot and the `Arc` headers. The claims' heap
/// is about the size of the token's decoded payload, so an entry is
/// estimated at this plus twice the token's length (BENCHMARKS.md compares
/// the estimate with the RSS the cache really took).
const ENTRY_OVERHEAD: u64 = (std::mem::size_of::<AccessClaims>() + 160) as u64;

/// The bounds of a [`VerifiedCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheBounds {
    /// At most this many tokens; `0` turns the cache off.
    pub max_entries: u64,
    /// At most this many (estimated) bytes; `0` turns the cache off.
    pub max_bytes: u64,
}

impl CacheBounds {
    /// 64 Ki entries. An entry with a default-claims token counts ~1.3 KB
    /// (BENCHMARKS.md), so with such tokens [`Self::DEFAULT_BYTES`] binds
    /// first, at ~50,000 entries.
    pub const DEFAULT_ENTRIES: u64 = 65_536;
    /// 64 MiB.
    pub const DEFAULT_BYTES: u64 = 64 * 1024 * 1024;
    /// No cache.
    pub const OFF: CacheBounds = CacheBounds {
        max_entries: 0,
        max_bytes: 0,
    };
}

impl Default for CacheBounds {
    fn default() -> Self {
        CacheBounds {
            max_entries: Self::DEFAULT_ENTRIES,
            max_bytes: Self::DEFAULT_BYTES,
        }
    }
}

/// What the cache has done so far, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that went on to full verification.
    pub misses: u64,
    /// Entries pushed out to make room.
    pub evictions: u64,
    /// Entries dropped because their token expired.
    pub expired: u64,
    /// Times the whole cache was cleared for a new key set.
    pub key_changes: u64,
    /// Entries held now.
    pub entries: u64,
    /// Bytes held now, as counted against `max_bytes`: each entry's
    /// estimate, or `max_bytes / max_entries` when that is more.
    pub bytes: u64,
}

struct Entry {
    claims: Arc<Verified>,
    kid: Box<str>,
    generation: u64,
    weight: u64,
}

#[derive(Clone)]
struct ByWeight;

impl Weighter<Box<str>, Arc<Entry>> for ByWeight {
    fn weight(&self, _token: &Box<str>, entry: &Arc<Entry>) -> u64 {
        entry.weight
    }
}

/// Counts capacity evictions (quick_cache calls it for nothing else).
#[derive(Clone)]
struct CountEvictions(Arc<AtomicU64>);

impl Lifecycle<Box<str>, Arc<Entry>> for CountEvictions {
    type RequestState = ();

    fn begin_request(&self) -> Self::RequestState {}

    fn on_evict(&self, _state: &mut (), _token: Box<str>, _entry: Arc<Entry>) {
        self.0.fetch_add(1, Relaxed);
    }
}

/// A bounded map from token to the claims it verified to. Shared by the
/// server's `Verify` and the SDK's `LocalVerifier` through
/// [`crate::tokens::TokenVerifier`].
pub struct VerifiedCache {
    map: Cache<Box<str>, Arc<Entry>, ByWeight, DefaultHashBuilder, CountEvictions>,
    min_weight: u64,
    /// The key set whose entries the map holds.
    generation: AtomicU64,
    next_sweep_s: AtomicI64,
    hits: AtomicU64,
    misses: AtomicU64,
    expired: AtomicU64,
    key_changes: AtomicU64,
    evictions: Arc<AtomicU64>,
}

impl std::fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedCache")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl VerifiedCache {
    /// A cache within `bounds`; `None` when either bound is 0 (off).
    pub fn new(bounds: CacheBounds) -> Option<Self> {
        if bounds.max_entries == 0 || bounds.max_bytes == 0 {
            return None;
        }
        let evictions = Arc::new(AtomicU64::new(0));
        let map = Cache::with(
            usize::try_from(bounds.max_entries).unwrap_or(usize::MAX),
            bounds.max_bytes,
            ByWeight,
            DefaultHashBuilder::default(),
            CountEvictions(evictions.clone()),
        );
        Some(VerifiedCache {
            map,
            min_weight: (bounds.max_bytes / bounds.max_entries).max(1),
            generation: AtomicU64::new(0),
            next_sweep_s: AtomicI64::new(i64::MIN),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            key_changes: AtomicU64::new(0),
            evictions,
        })
    }

    /// Called before every lookup: clear everything when `generation` (the
    /// key set in force) is not the one the entries were verified by, and
    /// sweep expired entries when a sweep is due at `now` (Unix seconds).
    pub(crate) fn maintain(&self, generation: u64, now: i64, leeway: i64) {
        let held = self.generation.load(Relaxed);
        if held != generation
            && self
                .generation
                .compare_exchange(held, generation, Relaxed, Relaxed)
                .is_ok()
        {
            self.map.clear();
            if held != 0 {
                self.key_changes.fetch_add(1, Relaxed);
            }
        }
        let due = self.next_sweep_s.load(Relaxed);
        if now >= due
            && self
                .next_sweep_s
                .compare_exchange(due, now.saturating_add(SWEEP_INTERVAL_S), Relaxed, Relaxed)
                .is_ok()
        {
            self.sweep(now, leeway);
        }
    }

    /// Drop every entry whose token is expired at `now` (with `leeway`) or
    /// was verified by another key set than the one in force.
    fn sweep(&self, now: i64, leeway: i64) {
        let generation = self.generation.load(Relaxed);
        let dropped = Cell::new(0u64);
        self.map.retain(|_, e| {
            let keep = e.generation == generation && now <= e.claims.exp.saturating_add(leeway);
            if !keep {
                dropped.set(dropped.get() + 1);
            }
            keep
        });
        self.expired.fetch_add(dropped.get(), Relaxed);
    }

    /// The claims `token` verified to, if it is cached, was verified by the
    /// key set `generation` and that set still has its `kid`.
    pub(crate) fn get(
        &self,
        token: &str,
        generation: u64,
        has_kid: impl FnOnce(&str) -> bool,
    ) -> Option<Arc<Verified>> {
        match self.map.get(token) {
            Some(e) if e.generation == generation && has_kid(&e.kid) => {
                self.hits.fetch_add(1, Relaxed);
                Some(e.claims.clone())
            }
            Some(_) => {
                // Verified by a key set no longer in force: verify afresh.
                self.map.remove(token);
                self.misses.fetch_add(1, Relaxed);
                None
            }
            None => {
                self.misses.fetch_add(1, Relaxed);
                None
            }
        }
    }

    /// Remember that `token` verified to `claims` with `kid` of the key set
    /// `generation` (read before the verification began, so that a reload
    /// racing with it leaves an entry no lookup accepts).
    pub(crate) fn insert(&self, token: &str, claims: Arc<Verified>, kid: &str, generation: u64) {
        let estimate = ENTRY_OVERHEAD + 2 * token.len() as u64;
        self.map.insert(
            token.into(),
            Arc::new(Entry {
                claims,
                kid: kid.into(),
                generation,
                weight: estimate.max(self.min_weight),
            }),
        );
    }

    /// Drop `token` (it expired).
    pub(crate) fn remove_expired(&self, token: &str) {
        if self.map.remove(token).is_some() {
            self.expired.fetch_add(1, Relaxed);
        }
    }

    /// Counters and sizes, for metrics.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            expired: self.expired.load(Relaxed),
            key_changes: self.key_changes.load(Relaxed),
            entries: self.map.len() as u64,
            bytes: self.map.weight(),
        }
    }
}

#[cfg(test)]
mod tests;
