//! Tessera's token core, shared by the server and the Rust SDK.
//!
//! - [`tokens`]: access-token claims, minting and verification — pure
//!   functions of (keys, claims, clock) — and [`tokens::TokenVerifier`],
//!   which puts the [`verified`] cache in front of them.
//! - [`keys`]: signing keys, `kid`, the public JWK set, algorithm pinning.
//! - [`checks`]: what `Verify` checks after the signature (audience, device
//!   binding, scopes), so local verifiers check exactly the same.
//! - [`revocation`]: revocation events and the in-memory revocation cache.
//! - [`partition`]: which partition of the revocation log a subject is in.
//! - [`cursor`]: `WatchRevocations` cursors, one position per partition, and
//!   their opaque string form.
//! - [`duration`]: durations as command lines write them (`30s`, `15m`).
//! - [`wire`]: the names on the wire: RPCs, headers, reason codes.
//! - [`error`]: [`TokenError`](error::TokenError), what the checks answer.
//!
//! It depends on no async runtime, Redis client, HTTP server, CLI parser or
//! metrics recorder.
#![forbid(unsafe_code)]

pub mod backoff;
pub mod checks;
pub mod claims;
pub mod cursor;
pub mod digest;
pub mod dpop;
pub mod duration;
pub mod error;
pub mod jwks;
pub mod keys;
pub mod partition;
pub mod revocation;
pub mod tokens;
pub mod verified;
pub mod wire;

/// Unix time in milliseconds on this host's clock.
pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
