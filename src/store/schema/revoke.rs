//! The keys and arguments of `revoke.lua`, for each kind of target.

use super::{
    channel, redis_key, session, session_marker, subject_cutoff, subject_index, token_marker, Arg,
    ScriptCall, LOG,
};
use crate::store::{RevocationKind, RevokeRequest, RevokeTarget};

/// What `revoke.lua` is told about one target: its keys and the fields of
/// the event it appends.
struct RevokeParts {
    kind: RevocationKind,
    /// The marker (or cut-off, or index) key that says "already revoked".
    marker: String,
    /// The session (or subject index) key.
    session: String,
    /// How long the marker lives, ms.
    ttl: i64,
    jti: String,
    sid: String,
    tenant: String,
    subject: String,
    /// The event's expiry, Unix ms.
    expires: i64,
    refresh_hash: String,
    subject_key: String,
}

impl RevokeParts {
    /// The keys and lifetimes; every event field empty.
    fn new(kind: RevocationKind, marker: String, session: String, ttl: i64, expires: i64) -> Self {
        RevokeParts {
            kind,
            marker,
            session,
            ttl,
            jti: String::new(),
            sid: String::new(),
            tenant: String::new(),
            subject: String::new(),
            expires,
            refresh_hash: String::new(),
            subject_key: String::new(),
        }
    }

    /// The parts of `r.target` under `prefix`; `None` for a token already
    /// dead.
    fn of(r: &RevokeRequest, prefix: &str) -> Option<Self> {
        let redis_key = |name: &str| redis_key(prefix, name);
        let now = r.now_ms;
        let horizon = r.feed.access_horizon_ms;
        Some(match &r.target {
            RevokeTarget::Token {
                jti,
                sid,
                tenant,
                subject,
                exp_ms,
            } => {
                if *exp_ms <= now {
                    return None;
                }
                let marker = redis_key(&token_marker(jti));
                let (kind, ttl) = (RevocationKind::Token, exp_ms - now);
                RevokeParts {
                    jti: jti.clone(),
                    sid: sid.clone(),
                    tenant: tenant.clone(),
                    subject: subject.clone(),
                    ..RevokeParts::new(kind, marker.clone(), marker, ttl, *exp_ms)
                }
            }
            RevokeTarget::Session { sid, refresh_hash } => {
                let (marker, session) = (redis_key(&session_marker(sid)), redis_key(&session(sid)));
                RevokeParts {
                    sid: sid.clone(),
                    refresh_hash: refresh_hash.clone().unwrap_or_default(),
                    ..RevokeParts::new(
                        RevocationKind::Session,
                        marker,
                        session,
                        horizon,
                        now + horizon,
                    )
                }
            }
            RevokeTarget::SubjectExcept {
                tenant,
                subject,
                keep_sid,
            } => {
                let subject_key = crate::store::subject_key(tenant, subject);
                let index = redis_key(&subject_index(&subject_key));
                let kind = RevocationKind::Session;
                RevokeParts {
                    sid: keep_sid.clone(),
                    tenant: tenant.clone(),
                    subject: subject.clone(),
                    subject_key,
                    ..RevokeParts::new(kind, index.clone(), index, horizon, now + horizon)
                }
            }
            RevokeTarget::Subject { tenant, subject } => {
                let subject_key = crate::store::subject_key(tenant, subject);
                let cutoff = redis_key(&subject_cutoff(&subject_key));
                let index = redis_key(&subject_index(&subject_key));
                let (kind, ttl) = (RevocationKind::Subject, r.feed.subject_horizon_ms);
                RevokeParts {
                    tenant: tenant.clone(),
                    subject: subject.clone(),
                    subject_key,
                    ..RevokeParts::new(kind, cutoff, index, ttl, now + horizon)
                }
            }
        })
    }
}

/// `revoke.lua` in the partition under `prefix`; `None` for a token
/// already dead (nothing to revoke).
pub fn revoke_call(r: &RevokeRequest, prefix: &str) -> Option<ScriptCall> {
    let parts = RevokeParts::of(r, prefix)?;
    let now = r.now_ms;
    let code = match r.target {
        RevokeTarget::SubjectExcept { .. } => "x",
        _ => parts.kind.code(),
    };
    Some(ScriptCall {
        keys: vec![parts.marker, redis_key(prefix, LOG), parts.session],
        args: vec![
            Arg::from_static_str(code),
            now.into(),
            parts.ttl.max(1).into(),
            r.feed.retention_ms.into(),
            channel(prefix).into(),
            parts.jti.into(),
            parts.sid.into(),
            parts.tenant.into(),
            parts.subject.into(),
            parts.expires.into(),
            parts.refresh_hash.into(),
            prefix.into(),
            parts.subject_key.into(),
            // 'x': sessions created up to the request's start, a batch at a time.
            now.into(),
            (LOG_OUT_OTHERS_BATCH as i64).into(),
            r.traceparent.as_str().into(),
        ],
        shared: Vec::new(),
    })
}

/// Sessions one call of log-out-others revokes at most (revoke.lua 'x'):
/// well under a millisecond of Redis time; the store calls again until done.
pub const LOG_OUT_OTHERS_BATCH: usize = 20;
