//! The memory store's state behind its one lock, and the steps every
//! operation shares (sweep, lookups, the log, revoking a session).

use std::collections::{HashMap, VecDeque};

use crate::store::schema;
use crate::store::{
    ClientInfo, RateLimit, RevocationEvent, RevocationKind, RevokeRequest, RotateRequest, Rotation,
    SessionData,
};

use super::index::SubjectIndex;

/// Sweep expired entries every this many writes: amortised O(1), bounded memory.
const SWEEP_EVERY: u64 = 1024;

pub(super) struct Session {
    pub(super) data: SessionData,
    pub(super) subject_key: String,
    pub(super) current: String,
    pub(super) previous: String,
    pub(super) older: VecDeque<String>,
    pub(super) rotated_at_ms: i64,
    pub(super) generation: u64,
    pub(super) sealed: String,
    pub(super) refresh_exp_ms: i64,
    /// Kept (and revocable, and counted for its subject) until then.
    pub(super) keep_until_ms: i64,
    pub(super) revoked: bool,
    pub(super) client: ClientInfo,
}

impl Session {
    /// Is `hash` the hash of this session's current refresh token or of one
    /// it superseded and remembers?
    pub(super) fn holds(&self, hash: &str) -> bool {
        self.current == hash || self.previous == hash || self.older.iter().any(|h| h == hash)
    }
}

#[derive(Default)]
pub(super) struct State {
    pub(super) sessions: HashMap<String, Session>,
    /// Token and session markers: key → (event cursor, expires at ms).
    pub(super) markers: HashMap<String, (String, i64)>,
    /// GCRA: rate key → theoretical arrival time (ms), which is also its expiry.
    pub(super) rates: HashMap<String, i64>,
    /// Renewal single-flight: presented jti → (successor iat ms, expires at ms).
    pub(super) renewals: HashMap<String, (i64, i64)>,
    /// `first_use` keys → expires at ms.
    pub(super) used: HashMap<String, i64>,
    /// `shared_value` keys → (value, expires at ms).
    pub(super) shared: HashMap<String, (String, i64)>,
    /// Subject cut-offs: subject key → (cut-off ms, expires at ms).
    pub(super) cutoffs: HashMap<String, (i64, i64)>,
    /// Subject key → its session indexes (`ss:` and `sc:` of the Redis store).
    pub(super) by_subject: HashMap<String, SubjectIndex>,
    pub(super) log: VecDeque<RevocationEvent>,
    pub(super) last_id: (u64, u64),
    pub(super) writes: u64,
}

impl State {
    pub(super) fn tick(&mut self, now_ms: i64) {
        self.writes += 1;
        if self.writes.is_multiple_of(SWEEP_EVERY) {
            self.sweep(now_ms);
        }
    }

    pub(super) fn sweep(&mut self, now_ms: i64) {
        self.sessions.retain(|_, s| s.keep_until_ms > now_ms);
        // An index goes when its longest-kept member is past (its PEXPIREAT
        // in Redis); before that its members leave as Redis's do.
        self.by_subject.retain(|_, index| !index.expired(now_ms));
        self.markers.retain(|_, (_, exp)| *exp > now_ms);
        self.cutoffs.retain(|_, (_, exp)| *exp > now_ms);
        self.renewals.retain(|_, (_, exp)| *exp > now_ms);
        self.used.retain(|_, exp| *exp > now_ms);
        self.shared.retain(|_, (_, exp)| *exp > now_ms);
        self.rates.retain(|_, tat| *tat > now_ms);
    }

    pub(super) fn gcra(&mut self, key: &str, limit: RateLimit, now_ms: i64) -> Result<(), i64> {
        let tat = limit.step(self.rates.get(key).copied(), now_ms)?;
        self.rates.insert(key.to_owned(), tat);
        Ok(())
    }

    /// The session, if it can still be used at `now_ms`: not revoked (flag
    /// or marker), not killed by its subject's cut-off, within its idle and
    /// absolute expiry. The same checks as `session_usable` in common.lua.
    pub(super) fn usable_session(&self, sid: &str, now_ms: i64) -> Option<&Session> {
        let s = self.sessions.get(sid)?;
        let killed_by_subject = self
            .cutoff(&s.subject_key, now_ms)
            .is_some_and(|c| c >= s.data.created_ms);
        let usable = !s.revoked
            && self.marker(&schema::session_marker(sid), now_ms).is_none()
            && !killed_by_subject
            && now_ms < s.refresh_exp_ms
            && now_ms < s.data.absolute_exp_ms;
        usable.then_some(s)
    }

    /// The session, if it is still kept at `now_ms` (usable or not).
    pub(super) fn kept_session(&self, sid: &str, now_ms: i64) -> Option<&Session> {
        self.sessions.get(sid).filter(|s| s.keep_until_ms > now_ms)
    }

    /// The subject's indexes as Redis would have them at `now_ms`: none
    /// once expired.
    pub(super) fn index(&self, subject_key: &str, now_ms: i64) -> Option<&SubjectIndex> {
        self.by_subject
            .get(subject_key)
            .filter(|index| !index.expired(now_ms))
    }

    /// The subject's indexes to write, started afresh when expired.
    pub(super) fn index_mut(&mut self, subject_key: &str, now_ms: i64) -> &mut SubjectIndex {
        let index = self.by_subject.entry(subject_key.to_owned()).or_default();
        if index.expired(now_ms) {
            *index = SubjectIndex::default();
        }
        index
    }

    /// Does the subject have a session that is still kept?
    pub(super) fn subject_has_sessions(&self, subject_key: &str, now_ms: i64) -> bool {
        self.index(subject_key, now_ms)
            .is_some_and(|index| index.kept(now_ms) > 0)
    }

    /// Could a revocation still change session `sid`: kept, not revoked,
    /// not killed by the subject's cut-off (revoke.lua's 'x' test)?
    pub(super) fn revocable(&self, sid: &str, cut: Option<i64>, now_ms: i64) -> bool {
        self.sessions.get(sid).is_some_and(|s| {
            s.keep_until_ms > now_ms
                && !s.revoked
                && self.marker(&schema::session_marker(sid), now_ms).is_none()
                && cut.is_none_or(|c| c < s.data.created_ms)
        })
    }

    /// One batch of "log out my other devices" (revoke.lua 'x'): the last
    /// event's cursor, and whether more sessions may remain.
    pub(super) fn revoke_others_batch(
        &mut self,
        subject_key: &str,
        keep_sid: &str,
        r: &RevokeRequest,
    ) -> (Option<String>, bool) {
        let now = r.now_ms;
        let batch = schema::LOG_OUT_OTHERS_BATCH;
        let members = self
            .index(subject_key, now)
            .map(|index| index.oldest_until(now, batch + 2))
            .unwrap_or_default();
        let cut = self.cutoff(subject_key, now);
        let (mut last, mut done) = (None, 0);
        for sid in members.iter().filter(|sid| *sid != keep_sid) {
            if done == batch {
                return (last, true);
            }
            if self.revocable(sid, cut, now) {
                last = Some(self.revoke_session(sid, now, &r.feed, &r.traceparent));
            } else if let Some(index) = self.by_subject.get_mut(subject_key) {
                index.remove(sid); // dead already: nothing to log
            }
            done += 1;
        }
        (last, false)
    }

    /// Record `key` in the replay set until `expires_at_ms`; false if it
    /// was there already.
    pub(super) fn first_use(&mut self, key: &str, expires_at_ms: i64, now_ms: i64) -> bool {
        match self.used.get(key) {
            Some(exp) if *exp > now_ms => false,
            _ => {
                self.used.insert(key.to_owned(), expires_at_ms);
                true
            }
        }
    }

    /// rotate.lua's `proof_replayed`: for a DPoP-bound session, record the
    /// refresh's proof now that the session is known; true if it was used.
    pub(super) fn proof_replayed(&mut self, bound: bool, r: &RotateRequest) -> bool {
        match &r.dpop_replay {
            Some(p) if bound => !self.first_use(&p.key, p.expires_at_ms, r.now_ms),
            _ => false,
        }
    }

    pub(super) fn marker(&self, key: &str, now_ms: i64) -> Option<&String> {
        self.markers
            .get(key)
            .filter(|(_, exp)| *exp > now_ms)
            .map(|(c, _)| c)
    }

    pub(super) fn cutoff(&self, key: &str, now_ms: i64) -> Option<i64> {
        self.cutoffs
            .get(key)
            .filter(|(_, exp)| *exp > now_ms)
            .map(|(c, _)| *c)
    }

    /// Append to the log with an id like Redis streams give: `<ms>-<seq>`,
    /// strictly increasing even if the clock steps back.
    pub(super) fn append(
        &mut self,
        mut ev: RevocationEvent,
        now_ms: i64,
        retention_ms: i64,
    ) -> String {
        let ms = (now_ms.max(0) as u64).max(self.last_id.0);
        let id = if ms == self.last_id.0 {
            (ms, self.last_id.1 + 1)
        } else {
            (ms, 0)
        };
        self.last_id = id;
        ev.cursor = format!("{}-{}", id.0, id.1);
        let min = now_ms - retention_ms;
        while self.log.front().is_some_and(|e| e.revoked_at_ms < min) {
            self.log.pop_front();
        }
        let cursor = crate::store::event_ref(0, &ev.cursor);
        self.log.push_back(ev);
        cursor
    }

    /// `traceparent`: of the span that revokes ("" for none).
    pub(super) fn revoke_session(
        &mut self,
        sid: &str,
        now_ms: i64,
        feed: &crate::store::FeedPolicy,
        traceparent: &str,
    ) -> String {
        let key = schema::session_marker(sid);
        if let Some(c) = self.marker(&key, now_ms) {
            return c.clone();
        }
        let (tenant, subject) = match self.sessions.get_mut(sid) {
            Some(s) => {
                s.revoked = true;
                // Nothing of it is alive now: it leaves its subject's indexes.
                if let Some(index) = self.by_subject.get_mut(&s.subject_key) {
                    index.remove(sid);
                }
                (s.data.tenant.clone(), s.data.subject.clone())
            }
            None => (String::new(), String::new()),
        };
        let expires = now_ms + feed.access_horizon_ms;
        let cursor = self.append(
            RevocationEvent {
                session_id: sid.to_owned(),
                ..new_event(
                    RevocationKind::Session,
                    tenant,
                    subject,
                    now_ms,
                    expires,
                    traceparent,
                )
            },
            now_ms,
            feed.retention_ms,
        );
        self.markers.insert(key, (cursor.clone(), expires));
        cursor
    }
}

/// An event of `kind` about a subject, revoked at `now_ms`, before the log
/// gives it a cursor; the caller fills in what its kind names (token id,
/// session id, cut-off).
pub(super) fn new_event(
    kind: RevocationKind,
    tenant: String,
    subject: String,
    now_ms: i64,
    expires_at_ms: i64,
    traceparent: &str,
) -> RevocationEvent {
    RevocationEvent {
        cursor: String::new(),
        partition: 0,
        kind,
        token_id: String::new(),
        session_id: String::new(),
        tenant,
        subject,
        subject_key: String::new(),
        revoked_at_ms: now_ms,
        issued_before_ms: 0,
        expires_at_ms,
        traceparent: traceparent.to_owned(),
    }
}

/// The session's state as a rotation reports it.
pub(super) fn rotation(s: &Session) -> Rotation {
    Rotation {
        data: s.data.clone(),
        generation: s.generation,
        rotated_at_ms: s.rotated_at_ms,
        refresh_exp_ms: s.refresh_exp_ms,
    }
}
