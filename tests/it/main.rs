//! The integration tests: one binary (it links once), a module per
//! capability. Each starts real servers — `tessera` on `127.0.0.1:0`, a
//! `redis-server` on a free port — through the helpers in [`support`].
//! (`tests/cache_memory.rs` stays a binary of its own: it measures the RSS
//! of its own process, which other tests running beside it would disturb.)

#[macro_use]
mod support;
mod hostile_cases;

mod authority;
mod callers;
mod cli;
mod deploy;
mod examples;
mod feed;
mod fuzz_seeds;
mod hardening;
mod hostile_tokens;
mod key_rotation;
mod lifecycle;
mod log_secrecy;
mod operations;
mod rate_limits;
mod redis_store;
mod reliability;
mod sentinel;
mod soak;
mod store_conformance;
mod store_differential;
mod tls;
