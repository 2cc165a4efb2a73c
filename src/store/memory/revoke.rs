//! Revocation in the memory store: revoke.lua's steps for each target,
//! under the store's one lock.

use std::sync::MutexGuard;

use crate::store::schema;
use crate::store::{RevocationEvent, RevocationKind, RevokeRequest, RevokeTarget};

use super::state::{new_event, State};
use super::MemoryStore;

/// What a revocation did.
pub(super) enum Revoked {
    /// A new event was appended: its reference (subscribers are told).
    Appended(String),
    /// It was revoked before: the earlier event's reference.
    Earlier(String),
    /// Nothing to revoke; nothing was written.
    Nothing,
}

impl MemoryStore {
    /// Revoke `r.target`; the lock is released when this returns.
    pub(super) fn revoke_target(&self, r: &RevokeRequest) -> Revoked {
        let mut st = self.lock();
        st.tick(r.now_ms);
        match &r.target {
            RevokeTarget::Token {
                jti,
                sid,
                tenant,
                subject,
                exp_ms,
            } => revoke_token(&mut st, r, jti, sid, (tenant, subject), *exp_ms),
            RevokeTarget::Session { sid, refresh_hash } => {
                revoke_session(&mut st, r, sid, refresh_hash.as_deref())
            }
            RevokeTarget::Subject { tenant, subject } => {
                revoke_subject(&mut st, r, tenant, subject)
            }
            RevokeTarget::SubjectExcept {
                tenant,
                subject,
                keep_sid,
            } => {
                let key = crate::store::subject_key(tenant, subject);
                self.revoke_others(st, r, &key, keep_sid)
            }
        }
    }

    /// Every session of the subject but `keep_sid`, in bounded batches with
    /// the lock released between them, as the Redis store calls its script
    /// (no critical section grows with the subject's size).
    fn revoke_others<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        r: &RevokeRequest,
        subject_key: &str,
        keep_sid: &str,
    ) -> Revoked {
        let mut last = None;
        loop {
            let (batch_last, more) = st.revoke_others_batch(subject_key, keep_sid, r);
            last = batch_last.or(last);
            if !more {
                break;
            }
            drop(st);
            st = self.lock();
        }
        match last {
            Some(cursor) => Revoked::Appended(cursor),
            None => Revoked::Nothing, // nobody else to log out
        }
    }
}

/// One access token, marked until `expires` (its `exp` plus leeway).
fn revoke_token(
    st: &mut State,
    r: &RevokeRequest,
    jti: &str,
    sid: &str,
    (tenant, subject): (&str, &str),
    expires: i64,
) -> Revoked {
    let now = r.now_ms;
    // A token already dead needs nothing, revoked before or not (the same
    // order as the Redis store; the differential test found them answering
    // differently).
    if expires <= now {
        return Revoked::Nothing;
    }
    let key = schema::token_marker(jti);
    if let Some(c) = st.marker(&key, now) {
        return Revoked::Earlier(c.clone());
    }
    let (tenant, subject) = (tenant.to_owned(), subject.to_owned());
    let event = RevocationEvent {
        token_id: jti.to_owned(),
        session_id: sid.to_owned(),
        ..new_event(
            RevocationKind::Token,
            tenant,
            subject,
            now,
            expires,
            &r.traceparent,
        )
    };
    let cursor = st.append(event, now, r.feed.retention_ms);
    st.markers.insert(key, (cursor.clone(), expires));
    Revoked::Appended(cursor)
}

/// A session; with `refresh_hash`, only if that refresh token belongs to it.
fn revoke_session(
    st: &mut State,
    r: &RevokeRequest,
    sid: &str,
    refresh_hash: Option<&str>,
) -> Revoked {
    let now = r.now_ms;
    if let Some(c) = st.marker(&schema::session_marker(sid), now) {
        return Revoked::Earlier(c.clone());
    }
    // Nothing of a session that is not kept can be alive.
    let Some(s) = st.kept_session(sid, now) else {
        return Revoked::Nothing;
    };
    if refresh_hash.is_some_and(|h| !s.holds(h)) {
        return Revoked::Nothing;
    }
    Revoked::Appended(st.revoke_session(sid, now, &r.feed, &r.traceparent))
}

/// Every session and token of a subject issued before now: a cut-off.
fn revoke_subject(st: &mut State, r: &RevokeRequest, tenant: &str, subject: &str) -> Revoked {
    let now = r.now_ms;
    let key = crate::store::subject_key(tenant, subject);
    if !st.subject_has_sessions(&key, now) {
        return Revoked::Nothing; // nobody to log out
    }
    let cutoff = st.cutoff(&key, now).map_or(now, |c| c.max(now));
    // Every session it held is dead: its indexes go (revoke.lua).
    st.by_subject.remove(&key);
    st.cutoffs
        .insert(key, (cutoff, now + r.feed.subject_horizon_ms));
    let expires = now + r.feed.access_horizon_ms;
    let (tenant, subject) = (tenant.to_owned(), subject.to_owned());
    let event = RevocationEvent {
        issued_before_ms: cutoff,
        ..new_event(
            RevocationKind::Subject,
            tenant,
            subject,
            now,
            expires,
            &r.traceparent,
        )
    };
    Revoked::Appended(st.append(event, now, r.feed.retention_ms))
}
