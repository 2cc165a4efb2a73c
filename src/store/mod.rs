//! The `Store` abstraction: sessions, rotation, revocation state and the
//! revocation log. Two implementations pass the same conformance tests
//! (`tests/it/store_conformance.rs`): [`memory::MemoryStore`], the embedded
//! default, and [`redis::RedisStore`] through fred.
//!
//! Every operation that decides something is atomic in the store (one Lua
//! script in Redis, one critical section in memory), and every key written
//! has a TTL equal to the remaining life of what it guards.

use std::future::Future;

use tokio::sync::mpsc;

mod batch;
mod error;
mod ids;
mod instrumented;
pub mod memory;
pub mod partition;
pub mod redis;
pub mod schema;
mod types;

pub use crate::cursor::Position;
pub use error::StoreError;
pub use ids::random_b64;
pub use instrumented::Instrumented;
pub use tessera_core::revocation::{
    cutoff_kills, event_ref, parse_cursor, parse_event_ref, subject_key, RevocationEvent,
    RevocationKind,
};
pub use types::{
    keep_until_ms, page_position, parse_page_position, ClientInfo, CreateOutcome, FeedPolicy,
    FeedSignal, NewSession, ProofUse, RateLimit, RenewOutcome, RenewRequest, RevocationState,
    RevokeRequest, RevokeTarget, RotateOutcome, RotateRequest, Rotation, SessionCap, SessionData,
    SessionPage, SessionView,
};

/// How many older refresh-token generations a session remembers for reuse
/// detection; a token older than that is refused as invalid without
/// revoking the session.
pub const REUSE_HISTORY: usize = 16;

/// The storage behind the authority. Implementations keep the real semantics
/// (atomic rotation, TTLs, ordered log) so the service never branches on which
/// store it runs on.
pub trait Store: Send + Sync + 'static {
    /// A short name for logs: `memory` or `redis`.
    fn kind(&self) -> &'static str;

    /// The number of partitions of the revocation log (1 in memory).
    fn log_partitions(&self) -> u32;

    /// The id of this deployment, which cursors carry (random per process in
    /// memory; kept in Redis beside the layout).
    fn deployment(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Store a new session (Issue), counting its budgets and enforcing the
    /// subject's session cap in the same atomic step. One round trip.
    fn create_session(
        &self,
        s: &NewSession,
    ) -> impl Future<Output = Result<CreateOutcome, StoreError>> + Send;

    /// Up to `limit` live sessions of the subject after position `after`
    /// ("" = from the newest), newest first. Reads at most `2 × limit + 32`
    /// entries of the subject's creation index, never the keyspace, so a
    /// page costs the same whatever the subject holds; behind many dead
    /// entries a page may come back short, with a `next` position.
    fn list_sessions(
        &self,
        subject_key: &str,
        after: &str,
        limit: usize,
        now_ms: i64,
    ) -> impl Future<Output = Result<SessionPage, StoreError>> + Send;

    /// Rotate a refresh token atomically: exactly one concurrent caller
    /// rotates; the others, and retries within the grace window, get the same
    /// successor; a replay after it revokes the session. One round trip.
    fn rotate(
        &self,
        r: &RotateRequest,
    ) -> impl Future<Output = Result<RotateOutcome, StoreError>> + Send;

    /// Sliding renewal: extend the idle expiry and, when minting, agree on
    /// the successor's issue time across replicas. One round trip.
    fn renew(
        &self,
        r: &RenewRequest,
    ) -> impl Future<Output = Result<RenewOutcome, StoreError>> + Send;

    /// Count one event against `limit` under `key`; `Some(retry_after_ms)`
    /// when over budget. Atomic across replicas.
    fn rate_limit(
        &self,
        key: &str,
        limit: RateLimit,
        now_ms: i64,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// Revoke and append to the log. Returns the event's reference
    /// ([`event_ref`]), the earlier event's when it was already revoked, or `None` when there
    /// was nothing to revoke: a session that is not kept (never existed, or
    /// nothing of it can be alive), or a subject with no kept session. Such
    /// calls write nothing and publish no event.
    fn revoke(
        &self,
        r: &RevokeRequest,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// The tenant of session `sid` while the store keeps it (usable or
    /// not: revoked, expired but kept for its live access tokens), so that
    /// a caller scoped to tenants can be checked before anything of the
    /// session changes. With `refresh_hash`, only when that is the hash of
    /// the session's current refresh token or of one it superseded (and
    /// still remembers); `None` otherwise, and for a session not kept. A
    /// read: nothing changes. One round trip.
    fn session_tenant(
        &self,
        sid: &str,
        refresh_hash: Option<&str>,
        now_ms: i64,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Revocation state of a token at `now_ms`, read from the store (strong
    /// consistency). Redis answers by its keys' own expiry; the memory store
    /// by `now_ms`, like every other operation (never its own clock).
    fn revocation_state(
        &self,
        jti: &str,
        sid: &str,
        subject_key: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<RevocationState, StoreError>> + Send;

    /// Up to `limit` log entries after `after`, of partition `only` or of
    /// every partition; in order within each partition (there is no order
    /// across partitions).
    fn read_log(
        &self,
        after: &Position,
        only: Option<u32>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RevocationEvent>, StoreError>> + Send;

    /// The position of the last event ever appended to each partition's
    /// log, even if since trimmed: no valid cursor is beyond it.
    fn log_head(&self) -> impl Future<Output = Result<Position, StoreError>> + Send;

    /// Subscribe to change notifications of the log.
    fn subscribe(
        &self,
    ) -> impl Future<Output = Result<mpsc::Receiver<FeedSignal>, StoreError>> + Send;

    /// Record `key` as used until `expires_at_ms`: `true` the first time,
    /// `false` while it is still recorded. Atomic across replicas (the
    /// replay set of DPoP proofs).
    fn first_use(
        &self,
        key: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The value of `key`: `candidate` if `key` holds none (then kept until
    /// `expires_at_ms`), else the one already there. Every replica gets the
    /// same answer (the DPoP nonce of a time window).
    fn shared_value(
        &self,
        key: &str,
        candidate: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Does the store answer? With its clock (Unix ms) when it has one of
    /// its own, which replicas then share (see `crate::clock`).
    fn ping(&self) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;
}
