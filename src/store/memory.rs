//! The embedded store: a complete single-node authority in process memory.
//!
//! It keeps the semantics of the Redis store — one critical section per
//! operation where Redis runs one script, the same TTLs, an ordered log with
//! `<ms>-<seq>` cursors — so the same conformance tests run on both. Expired
//! entries are dropped lazily and by a sweep every [`SWEEP_EVERY`] writes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{broadcast, mpsc};

use super::schema;
use super::{
    ClientInfo, CreateOutcome, FeedSignal, NewSession, Position, RateLimit, RenewOutcome,
    RenewRequest, RevocationEvent, RevocationKind, RevocationState, RevokeRequest, RevokeTarget,
    RotateOutcome, RotateRequest, Rotation, SessionData, SessionPage, SessionView, Store,
    REUSE_HISTORY,
};
use crate::error::StoreError;

/// Sweep expired entries every this many writes: amortised O(1), bounded memory.
const SWEEP_EVERY: u64 = 1024;
/// Capacity of the in-process notification channel; a lagging subscriber
/// gets `Lost` and re-reads the log, so nothing depends on this being large.
const NOTIFY_CAPACITY: usize = 1024;

struct Session {
    data: SessionData,
    subject_key: String,
    current: String,
    previous: String,
    older: VecDeque<String>,
    rotated_at_ms: i64,
    generation: u64,
    sealed: String,
    refresh_exp_ms: i64,
    /// Kept (and revocable, and counted for its subject) until then.
    keep_until_ms: i64,
    revoked: bool,
    client: ClientInfo,
}

#[derive(Default)]
struct State {
    sessions: HashMap<String, Session>,
    /// Token and session markers: key → (event cursor, expires at ms).
    markers: HashMap<String, (String, i64)>,
    /// GCRA: rate key → theoretical arrival time (ms), which is also its expiry.
    rates: HashMap<String, i64>,
    /// Renewal single-flight: presented jti → (successor iat ms, expires at ms).
    renewals: HashMap<String, (i64, i64)>,
    /// `first_use` keys → expires at ms.
    used: HashMap<String, i64>,
    /// `shared_value` keys → (value, expires at ms).
    shared: HashMap<String, (String, i64)>,
    /// Subject cut-offs: subject key → (cut-off ms, expires at ms).
    cutoffs: HashMap<String, (i64, i64)>,
    /// Subject key → its sessions (the `ss:` index of the Redis store).
    by_subject: HashMap<String, HashSet<String>>,
    log: VecDeque<RevocationEvent>,
    last_id: (u64, u64),
    writes: u64,
}

/// In-memory [`Store`].
#[derive(Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    notify: broadcast::Sender<()>,
    deployment: u64,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        let (notify, _) = broadcast::channel(NOTIFY_CAPACITY);
        MemoryStore {
            state: Arc::new(Mutex::new(State::default())),
            notify,
            deployment: super::partition::new_deployment_id(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-written
        // operation visible: every operation mutates only after all checks.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of live entries (sessions, markers, cut-offs, log); for tests
    /// that check housekeeping.
    pub fn entry_count(&self, now_ms: i64) -> usize {
        let mut st = self.lock();
        st.sweep(now_ms);
        st.sessions.len() + st.markers.len() + st.cutoffs.len() + st.log.len()
    }
}

impl State {
    fn tick(&mut self, now_ms: i64) {
        self.writes += 1;
        if self.writes % SWEEP_EVERY == 0 {
            self.sweep(now_ms);
        }
    }

    fn sweep(&mut self, now_ms: i64) {
        let by_subject = &mut self.by_subject;
        self.sessions.retain(|sid, s| {
            let keep = s.keep_until_ms > now_ms;
            if !keep {
                if let Some(set) = by_subject.get_mut(&s.subject_key) {
                    set.remove(sid);
                }
            }
            keep
        });
        self.by_subject.retain(|_, set| !set.is_empty());
        self.markers.retain(|_, (_, exp)| *exp > now_ms);
        self.cutoffs.retain(|_, (_, exp)| *exp > now_ms);
        self.renewals.retain(|_, (_, exp)| *exp > now_ms);
        self.used.retain(|_, exp| *exp > now_ms);
        self.shared.retain(|_, (_, exp)| *exp > now_ms);
        self.rates.retain(|_, tat| *tat > now_ms);
    }

    fn gcra(&mut self, key: &str, limit: RateLimit, now_ms: i64) -> Result<(), i64> {
        let tat = limit.step(self.rates.get(key).copied(), now_ms)?;
        self.rates.insert(key.to_owned(), tat);
        Ok(())
    }

    /// The session, if it can still be used at `now_ms`: not revoked (flag
    /// or marker), not killed by its subject's cut-off, within its idle and
    /// absolute expiry. The same checks as `session_usable` in common.lua.
    fn usable_session(&self, sid: &str, now_ms: i64) -> Option<&Session> {
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
    fn kept_session(&self, sid: &str, now_ms: i64) -> Option<&Session> {
        self.sessions.get(sid).filter(|s| s.keep_until_ms > now_ms)
    }

    /// Does the subject have a session that is still kept?
    fn subject_has_sessions(&self, subject_key: &str, now_ms: i64) -> bool {
        self.by_subject.get(subject_key).is_some_and(|sids| {
            sids.iter()
                .any(|sid| self.kept_session(sid, now_ms).is_some())
        })
    }

    /// The subject's usable sessions as (created ms, session id), oldest first.
    fn usable_of_subject(&self, subject_key: &str, now_ms: i64) -> Vec<(i64, String)> {
        let mut out: Vec<(i64, String)> = self
            .by_subject
            .get(subject_key)
            .into_iter()
            .flatten()
            .filter_map(|sid| {
                self.usable_session(sid, now_ms)
                    .map(|s| (s.data.created_ms, sid.clone()))
            })
            .collect();
        out.sort();
        out
    }

    /// The subject's sessions that a revocation would still change: kept,
    /// not revoked, not killed by the subject's cut-off (the same test as
    /// revoke.lua's others branch).
    fn revocable_of_subject(&self, subject_key: &str, now_ms: i64) -> Vec<String> {
        let cut = self.cutoff(subject_key, now_ms);
        let mut out: Vec<String> = self
            .by_subject
            .get(subject_key)
            .into_iter()
            .flatten()
            .filter(|sid| {
                self.kept_session(sid, now_ms).is_some_and(|s| {
                    !s.revoked
                        && self.marker(&schema::session_marker(sid), now_ms).is_none()
                        && cut.is_none_or(|c| c < s.data.created_ms)
                })
            })
            .cloned()
            .collect();
        out.sort();
        out
    }

    fn marker(&self, key: &str, now_ms: i64) -> Option<&String> {
        self.markers
            .get(key)
            .filter(|(_, exp)| *exp > now_ms)
            .map(|(c, _)| c)
    }

    fn cutoff(&self, key: &str, now_ms: i64) -> Option<i64> {
        self.cutoffs
            .get(key)
            .filter(|(_, exp)| *exp > now_ms)
            .map(|(c, _)| *c)
    }

    /// Append to the log with an id like Redis streams give: `<ms>-<seq>`,
    /// strictly increasing even if the clock steps back.
    fn append(&mut self, mut ev: RevocationEvent, now_ms: i64, retention_ms: i64) -> String {
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
        let cursor = super::event_ref(0, &ev.cursor);
        self.log.push_back(ev);
        cursor
    }

    fn revoke_session(&mut self, sid: &str, now_ms: i64, feed: &super::FeedPolicy) -> String {
        let key = schema::session_marker(sid);
        if let Some(c) = self.marker(&key, now_ms) {
            return c.clone();
        }
        let (tenant, subject) = match self.sessions.get_mut(sid) {
            Some(s) => {
                s.revoked = true;
                // Nothing of it is alive now: it leaves its subject's index.
                if let Some(set) = self.by_subject.get_mut(&s.subject_key) {
                    set.remove(sid);
                }
                (s.data.tenant.clone(), s.data.subject.clone())
            }
            None => (String::new(), String::new()),
        };
        let expires = now_ms + feed.access_horizon_ms;
        let cursor = self.append(
            RevocationEvent {
                cursor: String::new(),
                partition: 0,
                kind: RevocationKind::Session,
                token_id: String::new(),
                session_id: sid.to_owned(),
                tenant,
                subject,
                revoked_at_ms: now_ms,
                issued_before_ms: 0,
                expires_at_ms: expires,
            },
            now_ms,
            feed.retention_ms,
        );
        self.markers.insert(key, (cursor.clone(), expires));
        cursor
    }
}

fn rotation(s: &Session) -> Rotation {
    Rotation {
        data: s.data.clone(),
        generation: s.generation,
        rotated_at_ms: s.rotated_at_ms,
        refresh_exp_ms: s.refresh_exp_ms,
    }
}

impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn log_partitions(&self) -> u32 {
        1
    }

    async fn deployment(&self) -> Result<u64, StoreError> {
        Ok(self.deployment)
    }

    async fn create_session(&self, s: &NewSession) -> Result<CreateOutcome, StoreError> {
        let mut st = self.lock();
        let now = s.data.created_ms;
        st.tick(now);
        if let Some((key, limit)) = &s.caller_rate {
            if let Err(retry_after_ms) = st.gcra(key, *limit, now) {
                return Ok(CreateOutcome::RateLimited { retry_after_ms });
            }
        }
        if let Some(limit) = s.rate_limit {
            if let Err(retry_after_ms) = st.gcra(&schema::issue_budget(&s.subject_key), limit, now)
            {
                return Ok(CreateOutcome::RateLimited { retry_after_ms });
            }
        }
        // The cap: refuse, or revoke the oldest until there is room.
        let mut evicted = Vec::new();
        let mut cursor = String::new();
        if let Some(cap) = s.cap {
            let live = st.usable_of_subject(&s.subject_key, now);
            let over = (live.len() + 1).saturating_sub(cap.max as usize);
            if over > 0 && !cap.evict_oldest {
                return Ok(CreateOutcome::SessionLimit);
            }
            for (_, sid) in live.into_iter().take(over) {
                cursor = st.revoke_session(&sid, now, &s.feed);
                evicted.push(sid);
            }
        }
        st.sessions.insert(
            s.data.sid.clone(),
            Session {
                data: s.data.clone(),
                subject_key: s.subject_key.clone(),
                current: s.refresh_hash.clone(),
                previous: String::new(),
                older: VecDeque::new(),
                rotated_at_ms: now,
                generation: 0,
                sealed: String::new(),
                refresh_exp_ms: s.refresh_exp_ms,
                keep_until_ms: s.keep_until_ms,
                revoked: false,
                client: s.client.clone(),
            },
        );
        st.by_subject
            .entry(s.subject_key.clone())
            .or_default()
            .insert(s.data.sid.clone());
        drop(st);
        if !evicted.is_empty() {
            let _ = self.notify.send(());
        }
        Ok(CreateOutcome::Created { evicted, cursor })
    }

    async fn list_sessions(
        &self,
        subject_key: &str,
        after: &str,
        limit: usize,
        now_ms: i64,
    ) -> Result<SessionPage, StoreError> {
        let st = self.lock();
        let mut sids: Vec<&String> = st
            .by_subject
            .get(subject_key)
            .into_iter()
            .flatten()
            .filter(|sid| sid.as_str() > after)
            .collect();
        sids.sort();
        let mut page = SessionPage::default();
        for sid in sids {
            let Some(s) = st.usable_session(sid, now_ms) else {
                continue;
            };
            if page.sessions.len() == limit {
                // One more live session exists: there is a next page.
                page.next = page
                    .sessions
                    .last()
                    .map(|v| v.data.sid.clone())
                    .unwrap_or_default();
                break;
            }
            page.sessions.push(SessionView {
                data: s.data.clone(),
                last_refreshed_ms: s.rotated_at_ms,
                idle_exp_ms: s.refresh_exp_ms,
                client: s.client.clone(),
            });
        }
        Ok(page)
    }

    async fn rotate(&self, r: &RotateRequest) -> Result<RotateOutcome, StoreError> {
        let mut st = self.lock();
        st.tick(r.now_ms);
        let now = r.now_ms;
        let Some(s) = st.usable_session(&r.sid, now) else {
            return Ok(RotateOutcome::Invalid);
        };
        // Checked only for a holder of the current (or, in the grace window,
        // the previous) secret: the same order as rotate.lua.
        let foreign_device = s
            .data
            .fingerprint_hash
            .as_ref()
            .is_some_and(|bound| r.fingerprint_hash.as_ref() != Some(bound));
        let foreign_key = s
            .data
            .dpop_jkt
            .as_ref()
            .is_some_and(|bound| r.dpop_jkt.as_ref() != Some(bound));
        if r.presented_hash == s.current {
            if foreign_key {
                return Ok(RotateOutcome::BindingMismatch);
            }
            if foreign_device {
                return Ok(RotateOutcome::FingerprintMismatch);
            }
            // Only real rotations count against the subject's budget.
            if let Some(limit) = r.rate_limit {
                let key = schema::refresh_budget(&s.subject_key);
                if let Err(retry_after_ms) = st.gcra(&key, limit, now) {
                    return Ok(RotateOutcome::RateLimited { retry_after_ms });
                }
            }
            let Some(s) = st.sessions.get_mut(&r.sid) else {
                return Ok(RotateOutcome::Invalid);
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
            if !r.client.ip_address.is_empty() {
                s.client.ip_address = r.client.ip_address.clone();
            }
            if !r.client.user_agent.is_empty() {
                s.client.user_agent = r.client.user_agent.clone();
            }
            return Ok(RotateOutcome::Rotated(rotation(s)));
        }
        let replay = r.presented_hash == s.previous;
        // A window of 0 is no window (the same rule as rotate.lua).
        if replay && r.grace_ms > 0 && now - s.rotated_at_ms <= r.grace_ms {
            if foreign_key {
                return Ok(RotateOutcome::BindingMismatch);
            }
            if foreign_device {
                return Ok(RotateOutcome::FingerprintMismatch);
            }
            return Ok(RotateOutcome::Grace {
                rotation: rotation(s),
                sealed: s.sealed.clone(),
            });
        }
        if replay || s.older.contains(&r.presented_hash) {
            let cursor = st.revoke_session(&r.sid, now, &r.feed);
            drop(st);
            let _ = self.notify.send(());
            return Ok(RotateOutcome::Reused { cursor });
        }
        Ok(RotateOutcome::Invalid)
    }

    async fn renew(&self, r: &RenewRequest) -> Result<RenewOutcome, StoreError> {
        let mut st = self.lock();
        let now = r.now_ms;
        st.tick(now);
        let Some(s) = st.usable_session(&r.sid, now) else {
            return Ok(RenewOutcome::Invalid);
        };
        let absolute_exp_ms = s.data.absolute_exp_ms;
        let new_exp = (now + s.data.idle_ms).min(absolute_exp_ms);
        if let Some(s) = st.sessions.get_mut(&r.sid) {
            s.refresh_exp_ms = s.refresh_exp_ms.max(new_exp);
            s.keep_until_ms = s.keep_until_ms.max(s.refresh_exp_ms).max(r.keep_until_ms);
        }
        if !r.mint {
            return Ok(RenewOutcome::Extended);
        }
        let iat_ms = match st.renewals.get(&r.jti) {
            Some((iat, exp)) if *exp > now => *iat,
            _ => {
                st.renewals
                    .insert(r.jti.clone(), (now, now + r.marker_ttl_ms));
                now
            }
        };
        Ok(RenewOutcome::Renewed {
            iat_ms,
            absolute_exp_ms,
        })
    }

    async fn rate_limit(
        &self,
        key: &str,
        limit: RateLimit,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let mut st = self.lock();
        st.tick(now_ms);
        Ok(st.gcra(key, limit, now_ms).err())
    }

    async fn revoke(&self, r: &RevokeRequest) -> Result<Option<String>, StoreError> {
        let mut st = self.lock();
        let now = r.now_ms;
        st.tick(now);
        let cursor = match &r.target {
            RevokeTarget::Token {
                jti,
                sid,
                tenant,
                subject,
                exp_ms,
            } => {
                // A token already dead needs nothing, revoked before or not
                // (the same order as the Redis store; the differential test
                // found them answering differently).
                let expires = *exp_ms;
                if expires <= now {
                    return Ok(None);
                }
                let key = schema::token_marker(jti);
                if let Some(c) = st.marker(&key, now) {
                    return Ok(Some(c.clone()));
                }
                let cursor = st.append(
                    RevocationEvent {
                        cursor: String::new(),
                        partition: 0,
                        kind: RevocationKind::Token,
                        token_id: jti.clone(),
                        session_id: sid.clone(),
                        tenant: tenant.clone(),
                        subject: subject.clone(),
                        revoked_at_ms: now,
                        issued_before_ms: 0,
                        expires_at_ms: expires,
                    },
                    now,
                    r.feed.retention_ms,
                );
                st.markers.insert(key, (cursor.clone(), expires));
                cursor
            }
            RevokeTarget::Session { sid, refresh_hash } => {
                if let Some(c) = st.marker(&schema::session_marker(sid), now) {
                    return Ok(Some(c.clone()));
                }
                // Nothing of a session that is not kept can be alive.
                let Some(s) = st.kept_session(sid, now) else {
                    return Ok(None);
                };
                if let Some(hash) = refresh_hash {
                    let known = &s.current == hash || &s.previous == hash || s.older.contains(hash);
                    if !known {
                        return Ok(None);
                    }
                }
                st.revoke_session(sid, now, &r.feed)
            }
            RevokeTarget::Subject { tenant, subject } => {
                let key = super::subject_key(tenant, subject);
                if !st.subject_has_sessions(&key, now) {
                    return Ok(None); // nobody to log out
                }
                let cutoff = st.cutoff(&key, now).map_or(now, |c| c.max(now));
                st.cutoffs
                    .insert(key, (cutoff, now + r.feed.subject_horizon_ms));
                st.append(
                    RevocationEvent {
                        cursor: String::new(),
                        partition: 0,
                        kind: RevocationKind::Subject,

                        token_id: String::new(),
                        session_id: String::new(),
                        tenant: tenant.clone(),
                        subject: subject.clone(),
                        revoked_at_ms: now,
                        issued_before_ms: cutoff,
                        expires_at_ms: now + r.feed.access_horizon_ms,
                    },
                    now,
                    r.feed.retention_ms,
                )
            }
            RevokeTarget::SubjectExcept {
                tenant,
                subject,
                keep_sid,
            } => {
                let key = super::subject_key(tenant, subject);
                let mut last = None;
                for sid in st.revocable_of_subject(&key, now) {
                    if &sid != keep_sid {
                        last = Some(st.revoke_session(&sid, now, &r.feed));
                    }
                }
                match last {
                    Some(cursor) => cursor,
                    None => return Ok(None), // nobody else to log out
                }
            }
        };
        drop(st);
        let _ = self.notify.send(());
        Ok(Some(cursor))
    }

    async fn revocation_state(
        &self,
        jti: &str,
        sid: &str,
        subject_key: &str,
        now: i64,
    ) -> Result<RevocationState, StoreError> {
        let st = self.lock();
        Ok(RevocationState {
            token: st.marker(&schema::token_marker(jti), now).is_some(),
            session: st.marker(&schema::session_marker(sid), now).is_some(),
            subject_cutoff_ms: st.cutoff(subject_key, now),
        })
    }

    async fn read_log(
        &self,
        after: &Position,
        only: Option<u32>,
        limit: usize,
    ) -> Result<Vec<RevocationEvent>, StoreError> {
        if only.is_some_and(|p| p != 0) {
            return Ok(Vec::new());
        }
        let after = after.get(0);
        let st = self.lock();
        // The log is ordered: binary search for the first entry after the cursor.
        let start = st
            .log
            .partition_point(|e| super::parse_cursor(&e.cursor).is_some_and(|c| c <= after));
        Ok(st.log.iter().skip(start).take(limit).cloned().collect())
    }

    async fn log_head(&self) -> Result<Position, StoreError> {
        let mut head = Position::start(1);
        head.advance(0, self.lock().last_id);
        Ok(head)
    }

    async fn subscribe(&self) -> Result<mpsc::Receiver<FeedSignal>, StoreError> {
        let mut rx = self.notify.subscribe();
        let (tx, out) = mpsc::channel(16);
        // In process there is nothing to connect: subscribed from the start.
        let _ = tx.try_send(FeedSignal::Restored);
        tokio::spawn(async move {
            loop {
                let signal = match rx.recv().await {
                    Ok(()) => FeedSignal::Appended(Some(0)),
                    // Lagged: some notifications were dropped; the reader
                    // re-reads the log from its cursor, which loses nothing.
                    Err(broadcast::error::RecvError::Lagged(_)) => FeedSignal::Appended(Some(0)),
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                // Coalesce: one pending Appended is as good as many.
                if tx.try_send(signal).is_err() && tx.is_closed() {
                    return;
                }
            }
        });
        Ok(out)
    }

    async fn shared_value(
        &self,
        key: &str,
        candidate: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<String, StoreError> {
        let mut st = self.lock();
        st.tick(now_ms);
        match st.shared.get(key) {
            Some((value, exp)) if *exp > now_ms => Ok(value.clone()),
            _ => {
                st.shared
                    .insert(key.to_owned(), (candidate.to_owned(), expires_at_ms));
                Ok(candidate.to_owned())
            }
        }
    }

    async fn first_use(
        &self,
        key: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut st = self.lock();
        st.tick(now_ms);
        match st.used.get(key) {
            Some(exp) if *exp > now_ms => Ok(false),
            _ => {
                st.used.insert(key.to_owned(), expires_at_ms);
                Ok(true)
            }
        }
    }

    async fn ping(&self) -> Result<Option<i64>, StoreError> {
        Ok(None) // this process's clock is the only one
    }
}
