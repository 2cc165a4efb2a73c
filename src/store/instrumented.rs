//! [`Instrumented`]: any [`Store`] with every call timed into
//! `tessera_store_duration_seconds{op, outcome}`, in one place rather than at
//! each call site, and, with tracing on, in a span of its own (src/trace.rs).
//! The feed reader's log reads and the health pings are timed too.

use std::future::Future;

use tokio::sync::mpsc;

use super::{
    CreateOutcome, FeedSignal, NewSession, Position, RateLimit, RenewOutcome, RenewRequest,
    RevocationEvent, RevocationState, RevokeRequest, RotateOutcome, RotateRequest, SessionPage,
    Store,
};
use crate::store::StoreError;
use crate::telemetry::store_op;

/// A store whose every call is timed (see the module docs).
pub struct Instrumented<S>(pub S);

impl<S: Store> Instrumented<S> {
    /// Time `fut`, the store operation `op`, inside its span. Boxed: a
    /// store call's future (a Redis round trip's, several KB) would
    /// otherwise be inline in the future of every RPC that may make it,
    /// and be copied with it whether it runs or not (BENCHMARKS.md).
    fn timed<F, T, E>(&self, op: &'static str, fut: F) -> impl Future<Output = Result<T, E>> + Send
    where
        F: Future<Output = Result<T, E>> + Send,
        T: Send,
        E: Send,
    {
        Box::pin(crate::trace::in_store_span(
            self.0.kind(),
            op,
            store_op(op, fut),
        ))
    }
}

impl<S: Store> Store for Instrumented<S> {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }

    fn log_partitions(&self) -> u32 {
        self.0.log_partitions()
    }

    fn deployment(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.0.deployment()
    }

    fn create_session(
        &self,
        s: &NewSession,
    ) -> impl Future<Output = Result<CreateOutcome, StoreError>> + Send {
        self.timed("create_session", self.0.create_session(s))
    }

    fn shared_value(
        &self,
        key: &str,
        candidate: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> impl Future<Output = Result<String, StoreError>> + Send {
        self.timed(
            "shared_value",
            self.0.shared_value(key, candidate, expires_at_ms, now_ms),
        )
    }

    fn session_tenant(
        &self,
        sid: &str,
        refresh_hash: Option<&str>,
        now_ms: i64,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send {
        Box::pin(store_op(
            "session_tenant",
            self.0.session_tenant(sid, refresh_hash, now_ms),
        ))
    }

    fn first_use(
        &self,
        key: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.timed("first_use", self.0.first_use(key, expires_at_ms, now_ms))
    }

    fn list_sessions(
        &self,
        subject_key: &str,
        after: &str,
        limit: usize,
        now_ms: i64,
    ) -> impl Future<Output = Result<SessionPage, StoreError>> + Send {
        self.timed(
            "list_sessions",
            self.0.list_sessions(subject_key, after, limit, now_ms),
        )
    }

    fn rotate(
        &self,
        r: &RotateRequest,
    ) -> impl Future<Output = Result<RotateOutcome, StoreError>> + Send {
        self.timed("rotate", self.0.rotate(r))
    }

    fn renew(
        &self,
        r: &RenewRequest,
    ) -> impl Future<Output = Result<RenewOutcome, StoreError>> + Send {
        self.timed("renew", self.0.renew(r))
    }

    fn rate_limit(
        &self,
        key: &str,
        limit: RateLimit,
        now_ms: i64,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send {
        self.timed("rate_limit", self.0.rate_limit(key, limit, now_ms))
    }

    fn revoke(
        &self,
        r: &RevokeRequest,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send {
        self.timed("revoke", self.0.revoke(r))
    }

    fn revocation_state(
        &self,
        jti: &str,
        sid: &str,
        subject_key: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<RevocationState, StoreError>> + Send {
        self.timed(
            "revocation_state",
            self.0.revocation_state(jti, sid, subject_key, now_ms),
        )
    }

    fn read_log(
        &self,
        after: &Position,
        only: Option<u32>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RevocationEvent>, StoreError>> + Send {
        self.timed("read_log", self.0.read_log(after, only, limit))
    }

    fn log_head(&self) -> impl Future<Output = Result<Position, StoreError>> + Send {
        self.timed("log_head", self.0.log_head())
    }

    fn subscribe(
        &self,
    ) -> impl Future<Output = Result<mpsc::Receiver<FeedSignal>, StoreError>> + Send {
        self.0.subscribe()
    }

    fn ping(&self) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send {
        self.timed("ping", self.0.ping())
    }
}
