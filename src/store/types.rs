//! The values the [`Store`](super::Store) trait takes and returns: what
//! Issue writes, rotation and renewal requests and their outcomes, budgets,
//! revocation targets and state. Re-exported by `crate::store`, so every
//! `crate::store::X` path names them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::cutoff_kills;
#[cfg(doc)]
use super::{subject_key, RevocationEvent};

/// The immutable part of a session, fixed at Issue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionData {
    pub sid: String,
    pub tenant: String,
    pub subject: String,
    pub audience: Vec<String>,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub custom: Map<String, Value>,
    /// base64url SHA-256 of the device fingerprint.
    pub fingerprint_hash: Option<String>,
    /// Access-token lifetime of this session, seconds.
    pub access_ttl: i64,
    /// Idle timeout, milliseconds: each rotation moves the refresh expiry to now + idle.
    pub idle_ms: i64,
    /// Creation time, Unix milliseconds.
    pub created_ms: i64,
    /// Absolute end of the session, Unix milliseconds; nothing extends it.
    pub absolute_exp_ms: i64,
    /// What the user calls the device (shown by ListSessions); "" = none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub device_name: String,
    /// The client that logged the user in; "" = none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_id: String,
    /// RFC 8705: the `x5t#S256` the session's tokens are bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_thumbprint: Option<String>,
    /// RFC 9449: the thumbprint of the DPoP key the session is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
}

/// Where a session was last used from, as the caller reports it (Issue,
/// then each Refresh that gives it). Empty fields are "not given": a
/// Refresh without them keeps the values already stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip_address: String,
    pub user_agent: String,
}

/// `--max-sessions-per-subject`: at most `max` live sessions per subject;
/// at the cap, Issue revokes the oldest (`evict_oldest`) or is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCap {
    pub max: u32,
    pub evict_oldest: bool,
}

/// What `create_session` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// Stored; `evicted` are the sessions the cap revoked to make room (oldest
    /// first), `cursor` the last of their events ("" for none).
    Created {
        evicted: Vec<String>,
        cursor: String,
    },
    /// A budget is spent; nothing was written.
    RateLimited { retry_after_ms: i64 },
    /// The subject is at its session cap and the cap refuses; nothing was written.
    SessionLimit,
}

impl CreateOutcome {
    /// Stored, with nothing evicted.
    pub const CREATED: CreateOutcome = CreateOutcome::Created {
        evicted: Vec::new(),
        cursor: String::new(),
    };

    /// Refused by a budget?
    pub fn is_limited(&self) -> bool {
        matches!(self, CreateOutcome::RateLimited { .. })
    }
}

/// A live session as ListSessions shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionView {
    pub data: SessionData,
    /// The last rotation (the creation before the first one), Unix ms.
    pub last_refreshed_ms: i64,
    /// When the refresh token expires unless used, Unix ms.
    pub idle_exp_ms: i64,
    pub client: ClientInfo,
}

/// One page of a subject's live sessions, newest first (creation, then
/// session id, descending).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionPage {
    pub sessions: Vec<SessionView>,
    /// The position to continue after ([`page_position`]); "" on the last page.
    pub next: String,
}

/// A position in a subject's sessions as pages hand it on:
/// `<created ms>-<session id>` (list.lua writes the same).
pub fn page_position(created_ms: i64, sid: &str) -> String {
    format!("{created_ms}-{sid}")
}

/// The (created ms, session id) of a [`page_position`]; `None` for anything else.
pub fn parse_page_position(position: &str) -> Option<(i64, &str)> {
    let (created, sid) = position.split_once('-')?;
    if created.is_empty() || !created.bytes().all(|b| b.is_ascii_digit()) || sid.is_empty() {
        return None;
    }
    Some((created.parse().ok()?, sid))
}

/// What Issue writes.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub data: SessionData,
    /// base64url SHA-256 of the refresh secret.
    pub refresh_hash: String,
    /// When the first refresh token expires, Unix milliseconds.
    pub refresh_exp_ms: i64,
    /// Until when the session is kept (Unix ms): the later of its refresh
    /// expiry and the revocation horizon of the access token minted with it,
    /// so that a session whose refresh token has expired can still be
    /// revoked while its access tokens live. See [`keep_until_ms`].
    pub keep_until_ms: i64,
    /// Key of the subject's revocation cut-off (see [`subject_key`]).
    pub subject_key: String,
    /// Per-subject Issue budget, counted in the same atomic step.
    pub rate_limit: Option<RateLimit>,
    /// Per-caller Issue budget and its key, counted in the same step (before
    /// the subject's: a refused call still counts against its caller).
    pub caller_rate: Option<(String, RateLimit)>,
    /// Where the session is used from.
    pub client: ClientInfo,
    /// The per-subject cap on live sessions, enforced in the same step.
    pub cap: Option<SessionCap>,
    /// For the revocations the cap makes.
    pub feed: FeedPolicy,
}

/// One atomic rotation attempt.
#[derive(Debug, Clone)]
pub struct RotateRequest {
    pub sid: String,
    pub presented_hash: String,
    pub new_hash: String,
    /// The successor secret sealed under a key only the presenter can derive.
    pub sealed_successor: String,
    pub now_ms: i64,
    pub grace_ms: i64,
    /// Hash of the fingerprint the caller presented; a bound session
    /// rotates only when it matches.
    pub fingerprint_hash: Option<String>,
    /// Per-subject Refresh budget, counted in the same atomic step.
    pub rate_limit: Option<RateLimit>,
    pub feed: FeedPolicy,
    /// A rotation keeps the session at least until this instant (Unix ms):
    /// the revocation horizon of the access token it mints.
    pub keep_until_ms: i64,
    /// Where the session is used from now (stored on a real rotation).
    pub client: ClientInfo,
    /// The thumbprint of the DPoP key whose proof came with the refresh; a
    /// DPoP-bound session rotates only for its key.
    pub dpop_jkt: Option<String>,
    /// The `x5t#S256` of the client certificate the refresh came with
    /// (RFC 8705); a certificate-bound session rotates only for its
    /// certificate.
    pub cert_thumbprint: Option<String>,
    /// The `client_id` a public client named on the token endpoint: a
    /// session issued to another client rotates for it no more than for a
    /// foreign key (`BindingMismatch`). `None`, or a session without a
    /// client id: not compared.
    pub client_id: Option<String>,
    /// The proof's replay-set entry, recorded by the rotation itself and
    /// only once the session is known, usable and bound to that key (issue
    /// #32: a made-up refresh token with a fresh proof wrote an entry each).
    pub dpop_replay: Option<ProofUse>,
}

/// One DPoP proof's entry in the replay set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofUse {
    /// The entry's name (a hash of the proof's key thumbprint and `jti`).
    pub key: String,
    /// When the proof stops being accepted anyway (Unix ms): its `iat` plus
    /// the window and the leeway, plus a second.
    pub expires_at_ms: i64,
}

/// Session state returned by a rotation.
#[derive(Debug, Clone, PartialEq)]
pub struct Rotation {
    pub data: SessionData,
    /// Generation of the successor pair.
    pub generation: u64,
    /// When the successor was minted, Unix milliseconds.
    pub rotated_at_ms: i64,
    /// Expiry of the successor refresh token, Unix milliseconds.
    pub refresh_exp_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RotateOutcome {
    /// This call rotated the token.
    Rotated(Rotation),
    /// The token was rotated moments ago: here is the same successor, sealed.
    Grace { rotation: Rotation, sealed: String },
    /// A rotated token was replayed after the grace window: the session is
    /// now revoked; `cursor` is the revocation event.
    Reused { cursor: String },
    /// Unknown, expired or revoked.
    Invalid,
    /// The session is bound to another device; nothing changed.
    FingerprintMismatch,
    /// The session is bound to a DPoP key and the refresh came without a
    /// proof of it; nothing changed (not a reuse).
    BindingMismatch,
    /// The DPoP proof that came with the refresh was used before; nothing
    /// changed.
    ProofReplayed,
    /// The subject's refresh budget is spent; nothing changed.
    RateLimited { retry_after_ms: i64 },
}

/// A GCRA budget: `rate` events per second with bursts of `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Emission interval, ms (1000 / rate).
    pub interval_ms: i64,
    /// Burst window, ms (burst × interval).
    pub burst_ms: i64,
}

impl RateLimit {
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        if per_second == 0 {
            return None;
        }
        let interval_ms = (1000 / per_second as i64).max(1);
        Some(RateLimit {
            interval_ms,
            burst_ms: interval_ms * burst.max(1) as i64,
        })
    }

    /// The GCRA step on a stored theoretical arrival time: `Ok(new_tat)`
    /// when allowed, `Err(retry_after_ms)` when not. Shared by the memory
    /// store; `scripts/rate.lua` is the same arithmetic.
    pub fn step(&self, stored_tat: Option<i64>, now_ms: i64) -> Result<i64, i64> {
        let tat = stored_tat.unwrap_or(0).max(now_ms);
        let new_tat = tat + self.interval_ms;
        let over = new_tat - now_ms - self.burst_ms;
        if over > 0 {
            Err(over)
        } else {
            Ok(new_tat)
        }
    }
}

/// One sliding-renewal attempt.
#[derive(Debug, Clone)]
pub struct RenewRequest {
    pub sid: String,
    /// `jti` of the presented token: the single-flight key.
    pub jti: String,
    /// Mint a successor (critical band) or only extend the idle expiry.
    pub mint: bool,
    pub now_ms: i64,
    /// How long the single-flight marker must live (the presented token's
    /// remaining life plus leeway), ms.
    pub marker_ttl_ms: i64,
    /// A renewal keeps the session at least until this instant (Unix ms):
    /// the revocation horizon of the access token it may mint.
    pub keep_until_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewOutcome {
    /// Revoked, expired or unknown session: never renewed.
    Invalid,
    /// Idle expiry extended.
    Extended,
    /// Mint the successor at `iat_ms`; no token may outlive `absolute_exp_ms`.
    Renewed { iat_ms: i64, absolute_exp_ms: i64 },
}

/// Retention and lifetimes that revocation writes need.
#[derive(Debug, Clone, Copy)]
pub struct FeedPolicy {
    /// Events older than this many milliseconds may be trimmed from the log.
    pub retention_ms: i64,
    /// Longest life of any access token plus leeway, milliseconds: how long a
    /// session or subject revocation must be remembered by verifiers.
    pub access_horizon_ms: i64,
    /// How long a subject cut-off is kept, ms: so long that no session
    /// created before it can be refreshed (the absolute session lifetime)
    /// and, as strong Verify reads it, no access token issued before it
    /// verifies (the access horizon), whichever is longer.
    pub subject_horizon_ms: i64,
}

/// What to revoke.
#[derive(Debug, Clone)]
pub enum RevokeTarget {
    /// One access token, by `jti`; `exp_ms` is when it is dead anyway
    /// (its `exp` plus leeway): the marker and the event live until then.
    Token {
        jti: String,
        sid: String,
        tenant: String,
        subject: String,
        exp_ms: i64,
    },
    /// A session; with `refresh_hash`, only if that refresh token belongs to it.
    Session {
        sid: String,
        refresh_hash: Option<String>,
    },
    /// Every session and token of a subject issued before now.
    Subject { tenant: String, subject: String },
    /// Every session of a subject but `keep_sid`, each revoked as a session
    /// (one event each), so the kept one stays valid. The cursor returned is
    /// the last event's.
    SubjectExcept {
        tenant: String,
        subject: String,
        keep_sid: String,
    },
}

#[derive(Debug, Clone)]
pub struct RevokeRequest {
    pub target: RevokeTarget,
    pub now_ms: i64,
    pub feed: FeedPolicy,
    /// The W3C `traceparent` its events carry ([`RevocationEvent::traceparent`]);
    /// "" for none.
    pub traceparent: String,
}

/// Revocation state of one access token, read from the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RevocationState {
    pub token: bool,
    pub session: bool,
    pub subject_cutoff_ms: Option<i64>,
}

impl RevocationState {
    /// Is a token issued at `iat` (seconds) dead?
    pub fn revokes(&self, iat: i64) -> bool {
        self.token
            || self.session
            || self
                .subject_cutoff_ms
                .is_some_and(|cut| cutoff_kills(iat, cut))
    }
}

/// Until when a session must be kept after a write at `now_ms` that leaves
/// its refresh token valid until `refresh_exp_ms`: a session is also the
/// handle by which its live access tokens are revoked, and the subject index
/// says whether a subject has anything alive to revoke.
pub fn keep_until_ms(refresh_exp_ms: i64, now_ms: i64, feed: &FeedPolicy) -> i64 {
    refresh_exp_ms.max(now_ms.saturating_add(feed.access_horizon_ms))
}

/// Signals from the store's change notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedSignal {
    /// Something was appended to a partition's log (`None`: to any); read it.
    Appended(Option<u32>),
    /// Notifications may have been missed (disconnect, lag): the local cache
    /// must not be trusted until the log has been read again.
    Lost,
    /// The subscription is back; read the log from the last cursor.
    Restored,
}
