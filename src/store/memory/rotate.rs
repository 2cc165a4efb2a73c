//! Rotation in the memory store: rotate.lua's steps, in its order, under the
//! store's one lock.

use crate::store::schema;
use crate::store::{RotateOutcome, RotateRequest, REUSE_HISTORY};

use super::state::{rotation, Session, State};

/// Which of a session's bindings the request fails. Checked only for a
/// holder of the current (or, in the grace window, the previous) secret:
/// the same order as rotate.lua.
struct Bindings {
    foreign_device: bool,
    foreign_key: bool,
    /// The session is bound to a DPoP key (its proof goes to the replay set).
    bound: bool,
}

impl Bindings {
    /// Compare the request's fingerprint, key, certificate and client with
    /// the session's.
    fn of(s: &Session, r: &RotateRequest) -> Self {
        let foreign_device = s
            .data
            .fingerprint_hash
            .as_ref()
            .is_some_and(|bound| r.fingerprint_hash.as_ref() != Some(bound));
        let foreign_key = s
            .data
            .dpop_jkt
            .as_ref()
            .is_some_and(|bound| r.dpop_jkt.as_ref() != Some(bound))
            || s.data
                .cert_thumbprint
                .as_ref()
                .is_some_and(|bound| r.cert_thumbprint.as_ref() != Some(bound))
            || r.client_id.as_ref().is_some_and(|presented| {
                !presented.is_empty()
                    && !s.data.client_id.is_empty()
                    && *presented != s.data.client_id
            });
        Bindings {
            foreign_device,
            foreign_key,
            bound: s.data.dpop_jkt.is_some(),
        }
    }

    /// A holder's refusals, in rotate.lua's order; the proof is recorded
    /// only when nothing else refuses.
    fn refusal(&self, st: &mut State, r: &RotateRequest) -> Option<RotateOutcome> {
        if self.foreign_key {
            Some(RotateOutcome::BindingMismatch)
        } else if self.foreign_device {
            Some(RotateOutcome::FingerprintMismatch)
        } else if st.proof_replayed(self.bound, r) {
            Some(RotateOutcome::ProofReplayed)
        } else {
            None
        }
    }
}

/// One rotation attempt under the lock (the caller holds it and notifies
/// subscribers of a `Reused`, whose revocation appended an event).
pub(super) fn rotate(st: &mut State, r: &RotateRequest) -> RotateOutcome {
    st.tick(r.now_ms);
    let now = r.now_ms;
    let Some(s) = st.usable_session(&r.sid, now) else {
        return RotateOutcome::Invalid;
    };
    let bindings = Bindings::of(s, r);
    if r.presented_hash == s.current {
        if let Some(refused) = bindings.refusal(st, r) {
            return refused;
        }
        return advance(st, r);
    }
    let replay = r.presented_hash == s.previous;
    // A window of 0 is no window (the same rule as rotate.lua).
    if replay && r.grace_ms > 0 && now - s.rotated_at_ms <= r.grace_ms {
        if let Some(refused) = bindings.refusal(st, r) {
            return refused;
        }
        let Some(s) = st.usable_session(&r.sid, now) else {
            return RotateOutcome::Invalid;
        };
        return RotateOutcome::Grace {
            rotation: rotation(s),
            sealed: s.sealed.clone(),
        };
    }
    if replay || s.older.contains(&r.presented_hash) {
        let cursor = st.revoke_session(&r.sid, now, &r.feed, "");
        return RotateOutcome::Reused { cursor };
    }
    RotateOutcome::Invalid
}

/// The real rotation for the holder of the current secret: count the
/// subject's budget, move the secrets down the history, extend the idle
/// expiry and the keep, and record where the session is used from.
fn advance(st: &mut State, r: &RotateRequest) -> RotateOutcome {
    let now = r.now_ms;
    let Some(s) = st.usable_session(&r.sid, now) else {
        return RotateOutcome::Invalid;
    };
    // Only real rotations count against the subject's budget.
    if let Some(limit) = r.rate_limit {
        let key = schema::refresh_budget(&s.subject_key);
        if let Err(retry_after_ms) = st.gcra(&key, limit, now) {
            return RotateOutcome::RateLimited { retry_after_ms };
        }
    }
    let Some(s) = st.sessions.get_mut(&r.sid) else {
        return RotateOutcome::Invalid;
    };
    if !s.previous.is_empty() {
        let prev = std::mem::take(&mut s.previous);
        s.older.push_front(prev);
        s.older.truncate(REUSE_HISTORY);
    }
    s.previous = std::mem::replace(&mut s.current, r.new_hash.clone());
    s.sealed = r.sealed_successor.clone();
    s.generation += 1;
    s.rotated_at_ms = now;
    s.refresh_exp_ms = (now + s.data.idle_ms).min(s.data.absolute_exp_ms);
    s.keep_until_ms = s.keep_until_ms.max(s.refresh_exp_ms).max(r.keep_until_ms);
    let (keep, created, skey) = (s.keep_until_ms, s.data.created_ms, s.subject_key.clone());
    st.index_mut(&skey, now).keep(&r.sid, keep, created, now);
    let Some(s) = st.sessions.get_mut(&r.sid) else {
        return RotateOutcome::Invalid;
    };
    if !r.client.ip_address.is_empty() {
        s.client.ip_address = r.client.ip_address.clone();
    }
    if !r.client.user_agent.is_empty() {
        s.client.user_agent = r.client.user_agent.clone();
    }
    RotateOutcome::Rotated(rotation(s))
}
