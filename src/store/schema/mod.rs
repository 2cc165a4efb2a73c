//! The key layout, in one place for both stores. Redis keys are a
//! partition's prefix `tessera:{<tag>}:` (see [`super::partition`]: one hash
//! tag per partition, so every script's keys sit in one Cluster slot)
//! followed by these names; the memory store keys its maps by the same
//! names. The Lua scripts build some of them from the prefix and a
//! session's subject key or id; every key prefix a script spells must be one
//! of this file's (the test `lua_key_prefixes_are_the_schemas` below reads
//! every script and fails on one that is not).

/// The deployment's layout (a hash: `partitions`, `deployment`), written by
/// the first replica to start and checked by every other one. A key of its
/// own, outside every partition.
pub const META: &str = "tessera:meta";
/// A partition's revocation log (a Redis stream).
pub const LOG: &str = "log";

/// A partition's sharded pub/sub channel (`SPUBLISH`) that announces new
/// entries of its log: in its partition's slot, so a Cluster delivers it
/// from that slot's node only.
pub fn channel(prefix: &str) -> String {
    format!("{prefix}revocations")
}
/// A short-lived marker written after a reuse kill when
/// `--redis-wait-replicas` is on, so `WAIT` covers the kill.
pub const DURABLE: &str = "durable";

/// A session's hash: its data, current and superseded refresh hashes,
/// expiries (layout: `common.lua`).
pub fn session(sid: &str) -> String {
    format!("s:{sid}")
}

/// Marker of a revoked session (its event's cursor).
pub fn session_marker(sid: &str) -> String {
    format!("rs:{sid}")
}

/// Marker of a revoked access token, by `jti` (its event's cursor).
pub fn token_marker(jti: &str) -> String {
    format!("rt:{jti}")
}

/// A subject's "log out everywhere" cut-off.
pub fn subject_cutoff(subject_key: &str) -> String {
    format!("ru:{subject_key}")
}

/// A subject's session index (sessions scored by how long they are kept).
pub fn subject_index(subject_key: &str) -> String {
    format!("ss:{subject_key}")
}

/// A subject's creation index: the same sessions as [`subject_index`],
/// scored by their creation (ms), for pages, the cap's oldest and
/// log-out-others' batches in time proportional to their size. Written
/// from the subject's second session on: a subject's only session is in
/// [`subject_index`] alone, and readers adopt it (`adopt_legacy` in
/// `common.lua`), which spares every first sign-in a key (issue #30).
pub fn creation_index(subject_key: &str) -> String {
    format!("sc:{subject_key}")
}

/// A subject's mark of how far the upgrade of its sessions written before the
/// creation index has got (`adopt_legacy` in `common.lua`).
pub fn adoption_mark(subject_key: &str) -> String {
    format!("sm:{subject_key}")
}

/// The successor of a session sealed for the grace window.
pub fn sealed_successor(sid: &str) -> String {
    format!("sl:{sid}")
}

/// Single-flight marker of a renewal of the token `jti`.
pub fn renewal(jti: &str) -> String {
    format!("rn:{jti}")
}

/// The replay marker of a DPoP proof (`key` is already a hash).
pub fn dpop_proof(key: &str) -> String {
    format!("dp:{key}")
}

/// A value every replica shares (`shared_value`), e.g. a DPoP nonce.
pub fn shared(name: &str) -> String {
    format!("sv:{name}")
}

/// A GCRA budget's state (Redis adds this prefix to the budget's name).
pub fn rate(name: &str) -> String {
    format!("rl:{name}")
}

/// Name of a subject's Issue budget.
pub fn issue_budget(subject_key: &str) -> String {
    format!("issue:{subject_key}")
}

/// Name of a subject's Refresh budget.
pub fn refresh_budget(subject_key: &str) -> String {
    format!("refresh:{subject_key}")
}

// === Redis script calls ===
//
// The keys and arguments of each script, in the order its header comment
// (src/store/scripts/*.lua) lists them: one place to read beside the key
// layout above.

use super::{NewSession, RenewRequest, RotateRequest, SessionData};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

// === A session's data in its Redis hash ===
//
// The hash holds the fields the scripts read (`t` tenant, `u` subject, `c`
// created, `a` absolute and `e` idle expiry as milliseconds after `c`, `i`
// idle lifetime, `f` device hash, …; the whole layout is at the top of
// `common.lua`) and, in `d`, only what no other field holds, with
// one-letter names and nothing empty: with the default claims every value
// then stays under Redis's `hash-max-listpack-value` (64 bytes), so the hash
// is a listpack rather than a hash table (BENCHMARKS.md, memory per
// session). The device hash is kept as its first 22 characters: a session's
// data read back by ListSessions carries that prefix (enough to say it is
// bound), and a rotation, which only proceeds for the same device, the
// whole hash presented. Sessions written before keep their long `data`;
// both read back.

/// The `d` (data) field of a session hash.
#[derive(Serialize, Deserialize, Default)]
struct StoredData {
    #[serde(
        rename = "a",
        alias = "audience",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    audience: Vec<String>,
    #[serde(
        rename = "r",
        alias = "roles",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    roles: Vec<String>,
    #[serde(
        rename = "s",
        alias = "scopes",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    scopes: Vec<String>,
    #[serde(
        rename = "c",
        alias = "custom",
        default,
        skip_serializing_if = "Map::is_empty"
    )]
    custom: Map<String, Value>,
    #[serde(rename = "t", alias = "access_ttl")]
    access_ttl: i64,
    #[serde(
        rename = "n",
        alias = "device_name",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    device_name: String,
    #[serde(
        rename = "i",
        alias = "client_id",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    client_id: String,
    #[serde(
        rename = "x",
        alias = "cert_thumbprint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    cert_thumbprint: Option<String>,
    #[serde(
        rename = "k",
        alias = "dpop_jkt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    dpop_jkt: Option<String>,
}

/// `data` for a new session hash.
pub fn encode_data(d: &SessionData) -> Result<String, StoreError> {
    serde_json::to_string(&StoredData {
        audience: d.audience.clone(),
        roles: d.roles.clone(),
        scopes: d.scopes.clone(),
        custom: d.custom.clone(),
        access_ttl: d.access_ttl,
        device_name: d.device_name.clone(),
        client_id: d.client_id.clone(),
        cert_thumbprint: d.cert_thumbprint.clone(),
        dpop_jkt: d.dpop_jkt.clone(),
    })
    .map_err(|e| StoreError::Corrupt(format!("session data: {e}")))
}

/// The hash fields a session's data is rebuilt from, besides `data`.
pub struct SessionFields<'a> {
    pub sid: &'a str,
    pub data: &'a str,
    pub tenant: &'a str,
    pub subject: &'a str,
    pub created_ms: &'a str,
    pub absolute_exp_ms: &'a str,
    pub idle_ms: &'a str,
    /// "" = not bound.
    pub fingerprint_hash: &'a str,
}

/// The session's data from its hash.
pub fn decode_data(f: &SessionFields<'_>) -> Result<SessionData, StoreError> {
    let d: StoredData = serde_json::from_str(f.data)
        .map_err(|e| StoreError::Corrupt(format!("session data: {e}")))?;
    let num = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| StoreError::Corrupt(format!("expected a number, got {s:?}")))
    };
    Ok(SessionData {
        sid: f.sid.to_owned(),
        tenant: f.tenant.to_owned(),
        subject: f.subject.to_owned(),
        audience: d.audience,
        roles: d.roles,
        scopes: d.scopes,
        custom: d.custom,
        fingerprint_hash: (!f.fingerprint_hash.is_empty()).then(|| f.fingerprint_hash.to_owned()),
        access_ttl: d.access_ttl,
        idle_ms: num(f.idle_ms)?,
        created_ms: num(f.created_ms)?,
        absolute_exp_ms: num(f.absolute_exp_ms)?,
        device_name: d.device_name,
        client_id: d.client_id,
        cert_thumbprint: d.cert_thumbprint,
        dpop_jkt: d.dpop_jkt,
    })
}
use crate::store::StoreError;

/// A Redis key: a partition's prefix and a name of the layout above.
pub fn redis_key(prefix: &str, name: &str) -> String {
    format!("{prefix}{name}")
}

/// The keys and arguments of one script call. Arguments are fred values:
/// numbers go as integers (fred writes their digits straight into the
/// command, where a `String` cost a formatting and an allocation each) and
/// constants as static strings.
pub struct ScriptCall {
    pub keys: Vec<String>,
    pub args: Vec<Arg>,
    /// A batched script's SHARED: the arguments its calls under one policy
    /// have in common, sent once per batch whose calls agree (`batch.lua`).
    pub shared: Vec<Arg>,
}

/// One script argument.
pub type Arg = fred::types::Value;

/// A fixed argument (a flag), without an allocation.
fn flag(on: bool) -> Arg {
    Arg::from_static_str(if on { "1" } else { "0" })
}

/// `create.lua` in the partition under `prefix`. `caller` is the caller's
/// budget as its whole key (in the caller's own partition) and limit, to be
/// counted in the same step: `None` when there is none, or when it was
/// counted before (on a Cluster, where a script cannot reach another slot).
pub fn create_call(
    s: &NewSession,
    prefix: &str,
    caller: Option<(String, super::RateLimit)>,
) -> Result<ScriptCall, StoreError> {
    let key = |name: &str| redis_key(prefix, name);
    let data = encode_data(&s.data)?;
    let (rate_key, interval, burst) = match &s.rate_limit {
        Some(l) => (
            key(&rate(&issue_budget(&s.subject_key))),
            l.interval_ms,
            l.burst_ms,
        ),
        None => (String::new(), 0, 0),
    };
    let (caller_key, caller_interval, caller_burst) = match caller {
        Some((key, l)) => (key, l.interval_ms, l.burst_ms),
        None => (String::new(), 0, 0),
    };
    let (cap, evict) = match s.cap {
        Some(c) => (c.max, c.evict_oldest),
        None => (0, false),
    };
    Ok(ScriptCall {
        keys: vec![key(&session(&s.data.sid))],
        args: vec![
            data.into(),
            s.refresh_hash.as_str().into(),
            s.data.created_ms.into(),
            (s.refresh_exp_ms - s.data.created_ms).into(),
            (s.data.absolute_exp_ms - s.data.created_ms).into(),
            s.data.idle_ms.into(),
            s.subject_key.as_str().into(),
            s.data.tenant.as_str().into(),
            s.data.subject.as_str().into(),
            s.data
                .fingerprint_hash
                .as_deref()
                .unwrap_or_default()
                .into(),
            rate_key.into(),
            s.keep_until_ms.into(),
            s.data.sid.as_str().into(),
            caller_key.into(),
            s.client.ip_address.as_str().into(),
            s.client.user_agent.as_str().into(),
            prefix.into(),
            s.data.dpop_jkt.as_deref().unwrap_or_default().into(),
        ],
        shared: vec![
            interval.into(),
            burst.into(),
            caller_interval.into(),
            caller_burst.into(),
            cap.into(),
            flag(evict),
            s.feed.retention_ms.into(),
            s.feed.access_horizon_ms.into(),
            (CAP_EVICTIONS_PER_ISSUE as i64).into(),
        ],
    })
}

/// Sessions one Issue evicts at most under `--session-cap-policy
/// evict-oldest` (create.lua): a subject far over the cap (after the cap
/// was lowered) comes down over a few Issues, each a short script.
pub const CAP_EVICTIONS_PER_ISSUE: usize = 16;

/// `list.lua`.
pub fn list_call(
    subject_key: &str,
    after: &str,
    limit: usize,
    now_ms: i64,
    prefix: &str,
) -> ScriptCall {
    ScriptCall {
        keys: vec![redis_key(prefix, &creation_index(subject_key))],
        args: vec![
            prefix.into(),
            now_ms.into(),
            after.into(),
            (limit as i64).into(),
        ],
        shared: Vec::new(),
    }
}

/// `rotate.lua`.
pub fn rotate_call(r: &RotateRequest, prefix: &str) -> ScriptCall {
    ScriptCall {
        keys: vec![redis_key(prefix, &session(&r.sid))],
        args: vec![
            r.presented_hash.as_str().into(),
            r.new_hash.as_str().into(),
            r.sealed_successor.as_str().into(),
            r.now_ms.into(),
            prefix.into(),
            r.sid.as_str().into(),
            r.fingerprint_hash.as_deref().unwrap_or_default().into(),
            r.keep_until_ms.into(),
            r.client.ip_address.as_str().into(),
            r.client.user_agent.as_str().into(),
            r.dpop_jkt.as_deref().unwrap_or_default().into(),
            r.dpop_replay
                .as_ref()
                .map(|p| redis_key(prefix, &dpop_proof(&p.key)))
                .unwrap_or_default()
                .into(),
            r.dpop_replay.as_ref().map_or(0, |p| p.expires_at_ms).into(),
            r.cert_thumbprint.as_deref().unwrap_or_default().into(),
            r.client_id.as_deref().unwrap_or_default().into(),
        ],
        shared: vec![
            r.grace_ms.into(),
            r.feed.retention_ms.into(),
            r.feed.access_horizon_ms.into(),
            r.rate_limit.map_or(0, |l| l.interval_ms).into(),
            r.rate_limit.map_or(0, |l| l.burst_ms).into(),
            // The sealed successor outlives the window by a second, for the
            // clocks of replica and Redis to disagree.
            (r.grace_ms + 1000).into(),
        ],
    }
}

/// `renew.lua`.
pub fn renew_call(r: &RenewRequest, prefix: &str) -> ScriptCall {
    ScriptCall {
        keys: vec![
            redis_key(prefix, &session(&r.sid)),
            redis_key(prefix, &renewal(&r.jti)),
        ],
        args: vec![
            r.now_ms.into(),
            flag(r.mint),
            r.marker_ttl_ms.max(1).into(),
            prefix.into(),
            r.keep_until_ms.into(),
            r.sid.as_str().into(),
        ],
        shared: Vec::new(),
    }
}

mod revoke;
pub use revoke::{revoke_call, LOG_OUT_OTHERS_BATCH};

#[cfg(test)]
mod lua_tests;
