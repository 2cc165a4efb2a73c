//! The embedded store: a complete single-node authority in process memory.
//!
//! It keeps the semantics of the Redis store — one critical section per
//! operation where Redis runs one script, the same TTLs, an ordered log with
//! `<ms>-<seq>` cursors — so the same conformance tests run on both. Expired
//! entries are dropped lazily and by a sweep every 1,024 writes (`state::SWEEP_EVERY`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{broadcast, mpsc};

use super::schema;
use super::{
    CreateOutcome, FeedSignal, NewSession, Position, RateLimit, RenewOutcome, RenewRequest,
    RevocationEvent, RevocationState, RevokeRequest, RotateOutcome, RotateRequest, SessionPage,
    SessionView, Store,
};
use crate::store::StoreError;

mod index;
mod revoke;
mod rotate;
mod state;
use revoke::Revoked;
use state::{Session, State};

/// Capacity of the in-process notification channel; a lagging subscriber
/// gets `Lost` and re-reads the log, so nothing depends on this being large.
const NOTIFY_CAPACITY: usize = 1024;

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
        // The cap: refuse, or revoke the oldest until there is room (at
        // most CAP_EVICTIONS_PER_ISSUE per Issue: create.lua's rule).
        let mut evicted = Vec::new();
        let mut cursor = String::new();
        if let Some(cap) = s.cap {
            let index = st.index(&s.subject_key, now);
            let kept = index.map_or(0, |index| index.kept(now));
            let over = (kept + 1).saturating_sub(cap.max as usize);
            if over > 0 && !cap.evict_oldest {
                return Ok(CreateOutcome::SessionLimit);
            }
            let most = schema::CAP_EVICTIONS_PER_ISSUE;
            let want = over.min(most);
            let oldest = index.map_or_else(Vec::new, |index| index.oldest(2 * most));
            for sid in oldest {
                if evicted.len() == want {
                    break;
                }
                if st.kept_session(&sid, now).is_some() {
                    cursor = st.revoke_session(&sid, now, &s.feed, "");
                    evicted.push(sid);
                } else if let Some(index) = st.by_subject.get_mut(&s.subject_key) {
                    index.remove(&sid); // gone: create.lua drops it too
                }
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
        st.index_mut(&s.subject_key, now)
            .keep(&s.data.sid, s.keep_until_ms, now, now);
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
        // list.lua, step for step: the same reads, so the same pages.
        let st = self.lock();
        let at = match after {
            "" => None,
            a => match super::parse_page_position(a) {
                Some(at) => Some(at),
                None => return Ok(SessionPage::default()),
            },
        };
        let budget = limit * 2 + 32;
        let index = st.index(subject_key, now_ms);
        // Right after the position's session when it is still listed (then
        // nothing to pass over), else from its instant down.
        let (members, at) = match (index, at) {
            (None, _) => (Vec::new(), None),
            (Some(index), Some((c, sid))) => match index.after_member(c, sid, budget) {
                Some(members) => (members, None),
                None => (index.newest(Some(c), budget), at),
            },
            (Some(index), None) => (index.newest(None, budget), None),
        };
        let mut page = SessionPage::default();
        for (created, sid) in &members {
            if at.is_some_and(|(c, at_sid)| *created == c && sid.as_str() >= at_sid) {
                continue; // at the position's instant: came before
            }
            let Some(s) = st.usable_session(sid, now_ms) else {
                continue;
            };
            if page.sessions.len() == limit {
                // One more usable session exists: there is a next page.
                return Ok(page);
            }
            page.next = super::page_position(s.data.created_ms, sid);
            page.sessions.push(SessionView {
                data: s.data.clone(),
                last_refreshed_ms: s.rotated_at_ms,
                idle_exp_ms: s.refresh_exp_ms,
                client: s.client.clone(),
            });
        }
        match members.last() {
            // The budget ran out before the index did: go on from there.
            Some((created, sid)) if members.len() == budget => {
                page.next = super::page_position(*created, sid);
            }
            _ => page.next.clear(),
        }
        Ok(page)
    }

    async fn rotate(&self, r: &RotateRequest) -> Result<RotateOutcome, StoreError> {
        // The guard is a temporary of this statement: unlocked before notifying.
        let outcome = rotate::rotate(&mut self.lock(), r);
        if matches!(outcome, RotateOutcome::Reused { .. }) {
            let _ = self.notify.send(());
        }
        Ok(outcome)
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
            let keep = s.keep_until_ms.max(s.refresh_exp_ms).max(r.keep_until_ms);
            // renew.lua touches the indexes only when the session's keep grows.
            if keep > s.keep_until_ms {
                s.keep_until_ms = keep;
                let (created, skey) = (s.data.created_ms, s.subject_key.clone());
                st.index_mut(&skey, now).keep(&r.sid, keep, created, now);
            }
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
        Ok(match self.revoke_target(r) {
            Revoked::Appended(cursor) => {
                let _ = self.notify.send(());
                Some(cursor)
            }
            Revoked::Earlier(cursor) => Some(cursor),
            Revoked::Nothing => None,
        })
    }

    async fn session_tenant(
        &self,
        sid: &str,
        refresh_hash: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        let st = self.lock();
        Ok(st
            .kept_session(sid, now_ms)
            .filter(|s| refresh_hash.is_none_or(|h| s.holds(h)))
            .map(|s| s.data.tenant.clone()))
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
        Ok(st.first_use(key, expires_at_ms, now_ms))
    }

    async fn ping(&self) -> Result<Option<i64>, StoreError> {
        Ok(None) // this process's clock is the only one
    }
}
