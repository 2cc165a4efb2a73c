//! Revocation events, the position of an event in the feed (its cursor),
//! and the in-memory cache of revocations in force that the server's
//! replicas and the SDK's local verifier keep.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RevocationKind {
    Token,
    Session,
    Subject,
}

impl RevocationKind {
    pub fn code(self) -> &'static str {
        match self {
            RevocationKind::Token => "t",
            RevocationKind::Session => "s",
            RevocationKind::Subject => "u",
        }
    }
    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "t" => Some(RevocationKind::Token),
            "s" => Some(RevocationKind::Session),
            "u" => Some(RevocationKind::Subject),
            _ => None,
        }
    }
}

/// An entry of the revocation log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationEvent {
    /// Position in its partition's log (`<ms>-<seq>`, ordered within the
    /// partition; see [`parse_cursor`]). `WatchRevocations` sends a composite
    /// of every partition's position instead.
    pub cursor: String,
    /// The log partition the event was appended to (0 on a store with one log).
    pub partition: u32,
    pub kind: RevocationKind,
    pub token_id: String,
    pub session_id: String,
    pub tenant: String,
    pub subject: String,
    /// Subject kind, as `WatchRevocations` sends it: the [`subject_key`] of
    /// (tenant, subject), which is all the cache needs; "" when the key is
    /// to be computed from `tenant` and `subject` (the store's own events,
    /// and servers before the key was sent).
    pub subject_key: String,
    pub revoked_at_ms: i64,
    /// Subject kind: access tokens issued before this are dead (Unix ms).
    pub issued_before_ms: i64,
    /// After this the entry can be forgotten (Unix ms).
    pub expires_at_ms: i64,
    /// The W3C `traceparent` of the sampled span that made the revocation
    /// (a `Revoke`), so a replica applying it can link back; "" for none
    /// (tracing off, unsampled, or an entry written before it existed).
    pub traceparent: String,
}

/// Does a subject cut-off (ms) kill an access token issued at `iat` (whole
/// seconds)? Every token issued before the cut-off is dead; one issued in
/// the same second, even just after it, is too (`Revoke` documents it).
pub fn cutoff_kills(iat: i64, cutoff_ms: i64) -> bool {
    iat.saturating_mul(1000) < cutoff_ms
}

/// The key of a subject's revocation cut-off: a hash, so tenant and subject
/// of any bytes cannot collide or inject into key names.
///
/// The first 22 characters (132 bits) of the base64url SHA-256: out of reach
/// of collisions for any number of subjects, and 21 bytes shorter in every
/// Redis key name and session hash that carries it.
pub fn subject_key(tenant: &str, subject: &str) -> String {
    let mut key = crate::digest::sha256_b64(format!("{}\u{0}{}", tenant, subject).as_bytes());
    key.truncate(22);
    key
}

/// Parse a cursor `<ms>-<seq>` into a comparable pair. `""` is the beginning.
pub fn parse_cursor(cursor: &str) -> Option<(u64, u64)> {
    if cursor.is_empty() {
        return Some((0, 0));
    }
    let (ms, seq) = cursor.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// A reference to one event, as the store returns it from a write:
/// `<partition>/<ms>-<seq>`.
pub fn event_ref(partition: u32, cursor: &str) -> String {
    format!("{partition}/{cursor}")
}

/// Parse [`event_ref`]'s form into the partition and the position there.
pub fn parse_event_ref(r: &str) -> Option<(u32, (u64, u64))> {
    let (p, cursor) = r.split_once('/')?;
    if cursor.is_empty() {
        return None;
    }
    Some((p.parse().ok()?, parse_cursor(cursor)?))
}

/// Answer of the cache for one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheAnswer {
    Revoked,
    NotRevoked,
    /// The cache is out of sync: ask the store (or the server).
    Unknown,
}

/// Revocations still in force, by what they kill.
#[derive(Default)]
struct Entries {
    /// jti → expires at (ms)
    tokens: HashMap<String, i64>,
    /// sid → expires at (ms)
    sessions: HashMap<String, i64>,
    /// subject key → (cut-off ms, expires at ms)
    subjects: HashMap<String, (i64, i64)>,
}

/// The revocations in force, fed in log order from the revocation feed, and
/// whether they are complete. Entries are dropped once what they kill has
/// expired ([`RevocationCache::expire`]).
#[derive(Default)]
pub struct RevocationCache {
    entries: RwLock<Entries>,
    in_sync: AtomicBool,
}

impl RevocationCache {
    /// Is the cache complete up to the feed's head? Until it is, every
    /// answer is [`CacheAnswer::Unknown`] (fail closed).
    pub fn in_sync(&self) -> bool {
        self.in_sync.load(Ordering::Acquire)
    }

    /// Declare the cache complete (or not).
    pub fn set_in_sync(&self, in_sync: bool) {
        self.in_sync.store(in_sync, Ordering::Release);
    }

    /// Apply events, in log order.
    pub fn apply(&self, events: &[RevocationEvent]) {
        let mut e = self.entries.write().unwrap_or_else(|p| p.into_inner());
        for ev in events {
            match ev.kind {
                RevocationKind::Token => {
                    e.tokens.insert(ev.token_id.clone(), ev.expires_at_ms);
                }
                RevocationKind::Session => {
                    e.sessions.insert(ev.session_id.clone(), ev.expires_at_ms);
                }
                RevocationKind::Subject => {
                    let key = if ev.subject_key.is_empty() {
                        subject_key(&ev.tenant, &ev.subject)
                    } else {
                        ev.subject_key.clone()
                    };
                    let entry = e.subjects.entry(key).or_insert((0, 0));
                    entry.0 = entry.0.max(ev.issued_before_ms);
                    entry.1 = entry.1.max(ev.expires_at_ms);
                }
            }
        }
    }

    /// Drop entries whose tokens have expired by `now_ms`.
    pub fn expire(&self, now_ms: i64) {
        let mut e = self.entries.write().unwrap_or_else(|p| p.into_inner());
        e.tokens.retain(|_, exp| *exp > now_ms);
        e.sessions.retain(|_, exp| *exp > now_ms);
        e.subjects.retain(|_, (_, exp)| *exp > now_ms);
    }

    /// Is a token (`jti`, session, subject key, `iat` in seconds) revoked at `now_ms`?
    pub fn check(
        &self,
        jti: &str,
        sid: &str,
        subject_key: &str,
        iat: i64,
        now_ms: i64,
    ) -> CacheAnswer {
        if !self.in_sync() {
            return CacheAnswer::Unknown;
        }
        let e = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let live = |exp: Option<&i64>| exp.is_some_and(|x| *x > now_ms);
        let by_subject = e
            .subjects
            .get(subject_key)
            .is_some_and(|(cut, exp)| *exp > now_ms && cutoff_kills(iat, *cut));
        if live(e.tokens.get(jti)) || live(e.sessions.get(sid)) || by_subject {
            CacheAnswer::Revoked
        } else {
            CacheAnswer::NotRevoked
        }
    }

    /// Number of cached revocations.
    pub fn len(&self) -> usize {
        let e = self.entries.read().unwrap_or_else(|p| p.into_inner());
        e.tokens.len() + e.sessions.len() + e.subjects.len()
    }

    /// Is nothing cached?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_events_match_by_the_key_alone() {
        // The key every verifier library computes (their tests pin the
        // same case).
        assert_eq!(subject_key("acme", "dave"), "d_0dg3l8kfzk32ilysEoUq");
        let cache = RevocationCache::default();
        cache.set_in_sync(true);
        let event = |subject: &str, key: &str| RevocationEvent {
            cursor: "1-0".into(),
            partition: 0,
            kind: RevocationKind::Subject,
            token_id: String::new(),
            session_id: String::new(),
            tenant: "acme".into(),
            subject: subject.into(),
            subject_key: key.into(),
            revoked_at_ms: 1_000,
            issued_before_ms: 5_000,
            expires_at_ms: 60_000,
            traceparent: String::new(),
        };
        cache.apply(&[event("", &subject_key("acme", "dave")), event("erin", "")]);
        for subject in ["dave", "erin"] {
            let key = subject_key("acme", subject);
            assert_eq!(cache.check("j", "s", &key, 4, 10_000), CacheAnswer::Revoked);
            assert_eq!(
                cache.check("j", "s", &key, 6, 10_000),
                CacheAnswer::NotRevoked
            );
        }
        let other = subject_key("globex", "dave");
        assert_eq!(
            cache.check("j", "s", &other, 4, 10_000),
            CacheAnswer::NotRevoked
        );
    }
}
