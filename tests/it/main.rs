//! The integration tests: one binary (it links once), a module per
//! capability. Each starts real servers — `tessera` on `127.0.0.1:0`, a
//! `redis-server` on a free port — through the shared harness (`crates/tessera-test-support`).
//! (`tests/cache_memory.rs` stays a binary of its own: it measures the RSS
//! of its own process, which other tests running beside it would disturb.)

/// The shared harness (`crates/tessera-test-support`).
mod support {
    pub use tessera_test_support::*;
}
use tessera_test_support::hostile_cases;

mod architecture;
mod authority;
mod big_subject;
mod callers;
mod cli;
mod cluster;
mod deploy;
mod dpop;
mod examples;
mod exchange;
mod ext_authz;
mod feed;
mod fuzz_seeds;
mod hardening;
mod hardening2;
mod hardening2_http;
mod hostile_tokens;
mod key_rotation;
mod lifecycle;
mod log_secrecy;
mod oauth;
mod operations;
mod rate_limits;
mod redis_store;
mod redis_tls;
mod reliability;
mod rooms;
mod sentinel;
mod sessions;
mod soak;
mod store_conformance;
mod store_differential;
mod tenant_keys;
mod tenants;
mod tls;
mod token_budget;
mod tracing;
mod verify_cache;
